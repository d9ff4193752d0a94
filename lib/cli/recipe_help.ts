/**
 * The `--help` of a recipe command: usage and description, then the panels of the Python CLI in
 * its order — Global Options, Configs, Artifact Overrides, Run Overrides, env.toml Profiles, Dotlist
 * Overrides, Examples — as plain text that reads well at 80 columns.
 */

export interface RecipeHelpSpec {
  /** `nemotron nano3 pretrain` */
  readonly command: string;
  readonly description: string;
  /** Built-in config names (sorted). */
  readonly configNames: readonly string[];
  /** Input artifacts the recipe reads from `run.<key>`. */
  readonly artifacts: readonly { readonly key: string; readonly description: string }[];
  /** Profiles of the env.toml found by the normal discovery, and that file. */
  readonly profiles?: { readonly file: string; readonly names: readonly string[] };
  /** A config key for the dotlist example, e.g. `train.train_iters=5000`. */
  readonly dotlistExample: string;
  /** Extra lines (e.g. "needs --run or --batch"). */
  readonly notes?: readonly string[];
}

const WIDTH = 80;

function wrap(text: string, indent: number, width = WIDTH): string[] {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let cur = "";
  for (const w of words) {
    if (cur && indent + cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines.length ? lines : [""];
}

function rows(items: readonly (readonly [string, string])[]): string[] {
  const keyWidth = Math.min(28, Math.max(...items.map(([k]) => k.length)));
  const out: string[] = [];
  for (const [k, v] of items) {
    const textIndent = 2 + keyWidth + 2;
    const body = wrap(v, textIndent);
    if (k.length > keyWidth) {
      out.push(`  ${k}`);
      for (const l of body) out.push(" ".repeat(textIndent) + l);
    } else {
      out.push(`  ${k.padEnd(keyWidth)}  ${body[0]}`);
      for (const l of body.slice(1)) out.push(" ".repeat(textIndent) + l);
    }
  }
  return out;
}

function panel(title: string, lines: readonly string[]): string[] {
  return [title, ...lines, ""];
}

/** Render the help text. */
export function renderRecipeHelp(s: RecipeHelpSpec): string {
  const usage = `Usage: ${s.command} [OPTIONS] [key=value ...] [SCRIPT ARGS ...]`;
  const out: string[] = [
    ...(usage.length <= WIDTH
      ? [usage]
      : [`Usage: ${s.command} [OPTIONS]`, "         [key=value ...] [SCRIPT ARGS ...]"]),
    "",
    ...wrap(s.description, 2).map((l) => `  ${l}`),
    "",
  ];
  for (const n of s.notes ?? []) out.push(...wrap(n, 2).map((l) => `  ${l}`));
  if (s.notes?.length) out.push("");
  out.push(...panel(
    "Global Options:",
    rows([
      ["-c, --config NAME|PATH", "Config name or path"],
      ["-r, --run PROFILE", "Submit to cluster (attached: wait and stream logs)"],
      ["-b, --batch PROFILE", "Submit to cluster (detached)"],
      ["-d, --dry-run", "Preview config and command without execution"],
      ["--stage", "Stage files for interactive debugging"],
      ["--force-squash", "Re-import the container .sqsh"],
      ["--force-package", "Ship a code package over max_package_mb"],
      ["--json", "With --dry-run or --batch: machine-readable output"],
      ["-h, --help", "Show this help"],
    ]),
  ));
  const configs: [string, string][] = [];
  if (s.configNames.length) configs.push(["Built-in:", s.configNames.join(", ")]);
  configs.push(["Custom:", "-c /path/to/your/config.yaml"]);
  out.push(...panel("Configs (-c/--config):", rows(configs)));
  if (s.artifacts.length) {
    out.push(...panel(
      "Artifact Overrides (artifact references):",
      rows(s.artifacts.map((a) => [`run.${a.key}`, a.description])),
    ));
  }
  out.push(...panel(
    "Run Overrides (override env.toml settings):",
    rows([
      ["run.env.nodes", "Number of nodes"],
      ["run.env.nproc_per_node", "Processes (GPUs) per node"],
      ["run.env.partition", "Slurm partition"],
      ["run.env.account", "Slurm account"],
      ["run.env.time", "Job time limit (HH:MM:SS)"],
      ["run.env.container_image", "Container image"],
    ]),
  ));
  if (s.profiles && s.profiles.names.length) {
    out.push(...panel("env.toml Profiles:", [
      ...wrap(`Available profiles: ${s.profiles.names.join(", ")}`, 2).map((l) => `  ${l}`),
      ...wrap(`(from ${s.profiles.file})`, 2).map((l) => `  ${l}`),
    ]));
  }
  out.push(...panel("Dotlist Overrides:", [
    "  Override config values: key=value (any number, any position)",
    `  ${s.command} -c ${s.configNames[0] ?? "default"} ${s.dotlistExample}`,
  ]));
  const ex = s.configNames.includes("tiny") ? "tiny" : (s.configNames[0] ?? "default");
  out.push(...panel(
    "Examples:",
    rows([
      [`${s.command} -c ${ex}`, "Local execution"],
      [`${s.command} -c ${ex} --dry-run`, "Preview config"],
      [`${s.command} -c ${ex} --run my-cluster`, "Submit to cluster"],
      [`${s.command} -c ${ex} -r cluster run.env.nodes=4`, "Override nodes"],
    ]),
  ));
  return out.join("\n").trimEnd() + "\n";
}
