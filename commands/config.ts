/**
 * `nemotron config show CONFIG [key=value ...] [--resolve] [--json]`: load a config file (a path),
 * apply its `defaults:` inheritance and the overrides, and print it — unresolved, as the job
 * config keeps it, unless `--resolve` (then `???` values and failed interpolations are errors).
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { applyDotlist, parseOverride } from "../lib/config/dotlist.ts";
import { resolveTree } from "../lib/config/interpolate.ts";
import { loadConfig } from "../lib/config/load.ts";
import { autoMountResolver, manifestResolver } from "../lib/config/resolvers.ts";
import { toJson, toYaml } from "../lib/config/write.ts";

export function configCommand(_cli: CliContext): Command {
  const group = new Command("config").description("Inspect OmegaConf-style YAML configs");
  group.command("show")
    .description("print a config with defaults: inheritance and key=value overrides applied")
    .argument("<config>", "path to a YAML config")
    .argument("[overrides...]", "key.path=value overrides")
    .option("--resolve", "resolve ${…} interpolations (??? values become errors)")
    .option("--json", "print JSON instead of YAML")
    .action(
      (
        path: string,
        overrides: string[] | undefined,
        opts: { resolve?: boolean; json?: boolean },
      ) => {
        for (const o of overrides ?? []) parseOverride(o); // malformed → UsageError with a hint
        let tree = applyDotlist(loadConfig(path), overrides ?? []);
        if (opts.resolve) {
          tree = resolveTree(tree, {
            throwOnMissing: true,
            resolvers: { auto_mount: autoMountResolver(), manifest: manifestResolver() },
          });
        }
        Deno.stdout.writeSync(new TextEncoder().encode(opts.json ? toJson(tree) : toYaml(tree)));
      },
    );
  return group;
}
