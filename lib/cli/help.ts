/** Help text of the root command: the options every recipe command accepts, and examples. */
import { helpRows, helpWidth, wrapWords } from "./layout.ts";

/** The global options block and the examples appended to the root help, laid out for `width`. */
export function globalOptionsHelp(width: number = helpWidth()): string {
  return [
    "",
    "Recipe options:",
    ...helpRows([
      ["-c, --config NAME|PATH", "Config name in the recipe's config dir, or a YAML path"],
      ["-r, --run PROFILE", "Submit with an env.toml profile and wait (attached)"],
      ["-b, --batch PROFILE", "Submit with an env.toml profile and return (detached)"],
      ["-d, --dry-run", "Show what would run; write and submit nothing"],
      ["--stage", "Stage files for interactive debugging (needs -r or -b)"],
      ["--force-squash", "Re-import the container .sqsh even if it exists"],
      ["--force-package", "Ship a code package over max_package_mb"],
    ], width),
    "",
    ...wrapWords(
      "Recipe options may stand before the group or anywhere after a recipe command. After a " +
        "recipe command, key.path=value is a config override and any other token is passed to " +
        "the script; '--' passes everything after it to the script.",
      width,
    ),
    "",
    "Examples:",
    ...helpRows(
      [
        ["nemotron demo pipe -c tiny", "Run the CPU demo pipeline here"],
        ["nemotron demo train -c tiny -d", "Show what would run, write nothing"],
        ["nemotron nano3 pretrain -b cluster", "Submit to the env.toml profile 'cluster'"],
        ["nemotron jobs list", "Jobs submitted from this login node"],
        ["nemotron <COMMAND> --help", "Help of any command"],
      ],
      width,
      36,
    ),
    "",
  ].join("\n");
}
