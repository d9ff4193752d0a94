/**
 * `nemotron config show CONFIG [key=value ...] [--resolve] [--json]`: load a config — a YAML file,
 * or a built-in config as `RECIPE:CONFIG` (`demo/train:tiny`) — apply its `defaults:` inheritance
 * and the overrides (Hydra's rule), and print it: unresolved, as the job config keeps it, unless
 * `--resolve` (then `???` values and failed interpolations are errors, and `${art:…}` is looked up
 * in the artifact registry).
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import { applyDotlist, parseOverride } from "../lib/config/dotlist.ts";
import { resolveTree } from "../lib/config/interpolate.ts";
import { builtinConfigRefs, builtinConfigsNamed, loadConfig } from "../lib/config/load.ts";
import { artResolver, autoMountResolver, manifestResolver } from "../lib/config/resolvers.ts";
import { toJson, toYaml } from "../lib/config/write.ts";
import { artLookupByRef } from "../lib/artifacts/fields.ts";
import { registryFromEnvironment } from "../lib/artifacts/root.ts";

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

export function configCommand(_cli: CliContext): Command {
  const group = new Command("config").description("Inspect OmegaConf-style YAML configs")
    .examples([
      ["nemotron config show ./my.yaml --resolve", "A config with interpolations resolved"],
      ["nemotron config show demo/train:tiny", "A built-in config"],
    ]);
  group.command("show")
    .description(
      "print a config with defaults: inheritance and key=value overrides applied " +
        "(CONFIG: a YAML file, or a built-in config RECIPE:CONFIG such as demo/train:tiny)",
    )
    .examples([
      ["nemotron config show ./my.yaml train.steps=5", "With an override"],
      ["nemotron config show demo/train:tiny --json", "A built-in config as JSON"],
    ])
    .argument("<config>", "path to a YAML config, or RECIPE:CONFIG")
    .argument("[overrides...]", "key.path=value, +key=value, ++key=value, ~key")
    .option("--resolve", "resolve ${…} interpolations (??? values become errors)")
    .option("--json", "print JSON instead of YAML")
    .action(
      (
        path: string,
        overrides: string[] | undefined,
        opts: { resolve?: boolean; json?: boolean },
      ) => {
        for (const o of overrides ?? []) parseOverride(o); // malformed → UsageError with a hint
        if (!isFile(path) && !/[/:]/.test(path) && !/\.ya?ml$/.test(path)) {
          const named = builtinConfigsNamed(path);
          throw new UsageError(`'${path}' is not a config file`, {
            hint: named.length
              ? `built-in configs named '${path}': ${named.join(", ")} (show one with ` +
                `nemotron config show ${named[0]})`
              : `built-in configs: ${builtinConfigRefs().join(", ")}`,
          });
        }
        let tree = applyDotlist(loadConfig(path), overrides ?? []);
        if (opts.resolve) {
          const registry = registryFromEnvironment();
          tree = resolveTree(tree, {
            throwOnMissing: true,
            resolvers: {
              art: artResolver(artLookupByRef(registry)),
              auto_mount: autoMountResolver(),
              manifest: manifestResolver(),
            },
          });
        }
        Deno.stdout.writeSync(new TextEncoder().encode(opts.json ? toJson(tree) : toYaml(tree)));
      },
    );
  return group;
}
