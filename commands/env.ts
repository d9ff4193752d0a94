/**
 * `nemotron env list [--json]` and `nemotron env show PROFILE [--json] [--reveal]`: the env.toml in
 * use and its resolved profiles. Secret-looking values print as `******` unless `--reveal`.
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import { extendsChain, loadEnvFile, profileNames, resolveProfile } from "../lib/env_toml.ts";
import { checkProfileKeys } from "../lib/profile_keys.ts";
import { redactSecrets } from "../lib/secrets.ts";

function requireEnvFile() {
  const env = loadEnvFile();
  if (!env) {
    throw new UsageError("no env.toml found", {
      hint:
        "create env.toml in this directory (or a parent up to the repository root), set NEMOTRON_ENV_FILE, or write ~/.config/nemotron/env.toml",
    });
  }
  return env;
}

export function envCommand(_cli: CliContext): Command {
  const group = new Command("env").description("Show env.toml profiles")
    .examples([
      ["nemotron env list", "The env.toml in use and its profiles"],
      ["nemotron env show cluster", "One profile, resolved (secrets hidden)"],
    ]);

  group.command("list")
    .description("print the env.toml in use and each profile with its extends chain")
    .examples([
      ["nemotron env list --json", "Machine-readable"],
    ])
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      const env = loadEnvFile();
      // One bad profile (an extends cycle, an unknown parent, an unknown key) must not hide the
      // others: each is listed, a bad one with its problem.
      const profiles = env
        ? profileNames(env).map((name) => {
          let chain: string[] = [name];
          try {
            chain = extendsChain(env, name);
            checkProfileKeys(
              env.path,
              env.lines,
              chain.map((n) => ({ name: n, table: env.data[n] as Record<string, unknown> })),
            );
            return { name, extends: chain.slice(1), error: null as string | null };
          } catch (err) {
            if (!(err instanceof UsageError)) throw err;
            return { name, extends: chain.slice(1), error: err.message.split("\n")[0] };
          }
        })
        : [];
      if (opts.json) {
        console.log(JSON.stringify({ file: env?.path ?? null, profiles }, null, 2));
        return;
      }
      if (!env) {
        console.log("no env.toml found (looked at NEMOTRON_ENV_FILE, ./env.toml and parents,");
        console.log("~/.config/nemotron/env.toml)");
        return;
      }
      console.log(`env.toml: ${env.path}`);
      if (profiles.length === 0) console.log("  (no profiles)");
      for (const p of profiles) {
        if (p.error !== null) {
          console.log(`  ${p.name}  (invalid: ${p.error}; see nemotron env show ${p.name})`);
          continue;
        }
        console.log(
          `  ${p.name}${p.extends.length ? `  (extends ${p.extends.join(" -> ")})` : ""}`,
        );
      }
    });

  group.command("show")
    .description("print a resolved profile (secrets shown as ****** unless --reveal)")
    .examples([
      ["nemotron env show cluster --json", "As JSON"],
      ["nemotron env show cluster --reveal", "Show secret-looking values too"],
    ])
    .argument("<profile>", "profile name")
    .option("--json", "print JSON")
    .option("--reveal", "show secret-looking values")
    .action(async (name: string, opts: { json?: boolean; reveal?: boolean }) => {
      const env = requireEnvFile();
      const profile = resolveProfile(env, name);
      const shown = opts.reveal ? profile : redactSecrets(profile);
      if (opts.json) console.log(JSON.stringify(shown, null, 2));
      else {
        const { stringify } = await import("yaml");
        console.log(`# profile '${name}' from ${env.path}`);
        console.log(stringify(shown).trimEnd());
      }
    });
  return group;
}
