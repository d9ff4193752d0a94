/**
 * `nemotron __complete WORD… CURRENT` (hidden): the one completion engine the bash, zsh and fish
 * scripts of `nemotron completion` call. WORD… are the words typed after `nemotron` before the
 * cursor, CURRENT the (possibly empty) word under it.
 *
 * It prints one candidate a line (`value` or `value<TAB>description`, already filtered by the
 * prefix CURRENT) and, last, one directive line: `:files` (the shell should also offer file
 * paths) or `:nofiles`. It never fails loudly: a broken env.toml, a missing job store or an
 * unknown word yields fewer candidates, never an error on the user's prompt.
 *
 * Values it knows: subcommands and options of the command being typed; env.toml profile names
 * after `-r/--run`, `-b/--batch` (and for `env show`, `doctor`); config names after `-c/--config`
 * for the built-in recipe being typed; job ids for `jobs status|logs|cancel`; artifact names (and
 * `NAME:vN`/aliases after `NAME:`) for `artifacts show|lineage|alias`; shells for `completion`;
 * recipe names for `run` and `recipes show|export`, and after `run SCRIPT -c` the configs of that
 * script (its runspec's config dir) or of that recipe.
 */
import type { Command } from "../lib/cli/command.ts";
import { loadEnvFile, profileNames } from "../lib/env_toml.ts";
import {
  builtinConfigNames,
  demoData,
  demoDdp,
  demoTrain,
  type EmbeddedConfigDir,
  nano3Eval,
  nano3Pretrain,
  nano3PretrainDataPrep,
  nano3Rl,
  nano3RlDataPrep,
  nano3Sft,
  nano3SftDataPrep,
} from "../recipes/index.ts";

/** The recipe options every recipe leaf accepts (parsed by lib/cli/args.ts, not by Command). */
const RECIPE_FLAGS: readonly (readonly [string, string])[] = [
  ["-c", "config name or YAML path"],
  ["--config", "config name or YAML path"],
  ["-r", "run attached with an env.toml profile"],
  ["--run", "run attached with an env.toml profile"],
  ["-b", "submit detached with an env.toml profile"],
  ["--batch", "submit detached with an env.toml profile"],
  ["-d", "show what would run; write nothing"],
  ["--dry-run", "show what would run; write nothing"],
  ["--json", "with --dry-run or --batch: print JSON"],
  ["--force-squash", "re-import the container image"],
  ["--force-package", "ship a code package over max_package_mb"],
  ["-h", "show help"],
  ["--help", "show help"],
];
const RECIPE_VALUE_FLAGS = new Set(["-c", "--config", "-r", "--run", "-b", "--batch"]);

/**
 * Built-in recipe leaves and their config dirs, by command path. This is data for completion
 * only; which recipe a command runs is decided in its own command file.
 */
const RECIPE_CONFIGS: Readonly<Record<string, EmbeddedConfigDir>> = {
  "demo data": demoData,
  "demo train": demoTrain,
  "demo ddp": demoDdp,
  "demo pipe": demoTrain,
  "nano3 pretrain": nano3Pretrain,
  "nano3 sft": nano3Sft,
  "nano3 rl": nano3Rl,
  "nano3 eval": nano3Eval,
  "nano3 pipe": nano3Pretrain,
  "nano3 data prep pretrain": nano3PretrainDataPrep,
  "nano3 data prep sft": nano3SftDataPrep,
  "nano3 data prep rl": nano3RlDataPrep,
};

/** One completion answer. */
export interface Completion {
  readonly candidates: readonly string[];
  readonly files: boolean;
}

function quietly<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

function profiles(): string[] {
  return quietly(() => {
    const env = loadEnvFile();
    return env ? profileNames(env) : [];
  }, []);
}

/** Recipe names of the catalogue (built-ins and the user's recipe dirs), with their sources. */
async function recipeNames(): Promise<string[]> {
  try {
    const { loadCatalogue, recipeDirs } = await import("../lib/recipe_catalogue.ts");
    const { BUILTIN_RECIPES } = await import("../recipes/index.ts");
    const entries = loadCatalogue(BUILTIN_RECIPES, recipeDirs(loadEnvFile()), () => {});
    return entries.map((e) => `${e.name}\t${e.source}`);
  } catch {
    return [];
  }
}

/** Config names for `nemotron run SCRIPT -c`: the script's config dir, or the named recipe's. */
async function runConfigs(script: string): Promise<string[]> {
  try {
    const isFile = quietly(() => Deno.statSync(script).isFile, false);
    if (isFile || script.endsWith(".py")) {
      const { parseRunspecFile } = await import("../lib/runspec.ts");
      const { runspec } = parseRunspecFile(script);
      return [...Deno.readDirSync(runspec.config.dir)]
        .filter((e) => e.isFile && /\.ya?ml$/.test(e.name))
        .map((e) => e.name.replace(/\.ya?ml$/, ""))
        .sort();
    }
    const { findRecipe, loadCatalogue, recipeDirs } = await import("../lib/recipe_catalogue.ts");
    const { BUILTIN_RECIPES } = await import("../recipes/index.ts");
    const entries = loadCatalogue(BUILTIN_RECIPES, recipeDirs(loadEnvFile()), () => {});
    return [...findRecipe(entries, script).configs];
  } catch {
    return [];
  }
}

async function jobIds(): Promise<string[]> {
  try {
    const { JobStore, defaultStorePath } = await import("../lib/jobs/store.ts");
    const file = defaultStorePath();
    Deno.statSync(file); // never create a store just to complete
    const store = await JobStore.open(file);
    try {
      const out: string[] = [];
      for (const r of store.list({ all: true })) {
        if (r.pipeline && !out.includes(r.pipeline)) {
          out.push(`${r.pipeline}\t${r.name} (pipeline)`);
        }
        out.push(`${r.slurm_job_id}\t${r.name} ${r.state.toLowerCase()}`);
      }
      return out;
    } finally {
      store.close();
    }
  } catch {
    return [];
  }
}

async function artifactRefs(current: string): Promise<string[]> {
  try {
    const { registryFromEnvironment } = await import("../lib/artifacts/root.ts");
    const reg = registryFromEnvironment();
    const colon = current.indexOf(":");
    if (colon < 0) return reg.names();
    const name = current.slice(0, colon);
    const versions = reg.versionNumbers(name).map((v) => `${name}:v${v}`);
    const aliases = Object.keys(reg.aliases(name)).map((a) => `${name}:${a}`);
    return [`${name}:latest`, ...versions.reverse(), ...aliases];
  } catch {
    return [];
  }
}

/** Flags of a command node: its own options and --help. */
function flagsOf(cmd: Command): string[] {
  const out: string[] = [];
  for (const o of cmd.options) {
    for (const f of [o.short, o.long]) if (f) out.push(`${f}\t${o.description}`);
  }
  out.push("--help\tshow help");
  return out;
}

function optionTakingValue(cmd: Command, word: string): boolean {
  return cmd.options.some((o) => (o.short === word || o.long === word) && o.takesValue());
}

/** Positional values for a command path (`jobs status`) at positional index `index`. */
async function positionals(
  commandPath: string,
  index: number,
  current: string,
): Promise<Completion> {
  switch (commandPath) {
    case "jobs status":
    case "jobs logs":
    case "jobs cancel":
      return { candidates: index === 0 ? await jobIds() : [], files: index === 0 };
    case "artifacts show":
    case "artifacts lineage":
      return { candidates: index === 0 ? await artifactRefs(current) : [], files: false };
    case "artifacts alias":
      return {
        candidates: index === 0
          ? await artifactRefs(current.replace(/:.*/, ""))
          : index === 2
          ? (await artifactRefs(`${current.replace(/:.*/, "")}:`)).map((r) => r.replace(/^.*:/, ""))
          : [],
        files: false,
      };
    case "artifacts publish":
      return { candidates: [], files: index === 1 };
    case "env show":
    case "doctor":
      return { candidates: index === 0 ? profiles() : [], files: false };
    case "completion":
      return { candidates: index === 0 ? ["bash", "zsh", "fish"] : [], files: false };
    case "recipes show":
      return { candidates: index === 0 ? await recipeNames() : [], files: false };
    case "recipes export":
      return { candidates: index === 0 ? await recipeNames() : [], files: index === 1 };
    default:
      return { candidates: [], files: true };
  }
}

/** Compute the completion of `current` after `words` (the words after `nemotron`). */
export async function complete(
  program: Command,
  words: readonly string[],
  current: string,
): Promise<Completion> {
  let node = program;
  const path: string[] = [];
  let positional = 0;
  let afterDashDash = false;
  let pendingValue: string | undefined;
  let runScript: string | undefined;
  for (const w of words) {
    if (pendingValue !== undefined) {
      pendingValue = undefined;
      continue;
    }
    if (afterDashDash) {
      positional++;
      continue;
    }
    if (w === "--") {
      afterDashDash = true;
      continue;
    }
    const recipe = path.join(" ") in RECIPE_CONFIGS || path.join(" ") === "run";
    if (w.startsWith("-")) {
      const takesValue = optionTakingValue(node, w) ||
        (recipe && (RECIPE_VALUE_FLAGS.has(w) || w === "--package"));
      if (!w.includes("=") && takesValue) pendingValue = w;
      continue;
    }
    if (path.join(" ") === "run" && runScript === undefined) {
      runScript = w; // `nemotron run SCRIPT …`: the script or recipe name
      continue;
    }
    const sub = node.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (sub && positional === 0) {
      node = await sub.resolve();
      path.push(w);
      continue;
    }
    positional++;
  }
  const commandPath = path.join(" ");
  const recipeConfigs = RECIPE_CONFIGS[commandPath];

  // The value of an option: `-c <TAB>`, or `--config=<TAB>`.
  let option = pendingValue;
  let prefix = "";
  let typed = current;
  const eq = /^(--?[A-Za-z][\w-]*)=(.*)$/.exec(current);
  if (option === undefined && eq) {
    option = eq[1];
    prefix = `${eq[1]}=`;
    typed = eq[2];
  }
  if (option !== undefined) {
    let values: string[] = [];
    let files = false;
    if (["-r", "--run", "-b", "--batch"].includes(option)) values = profiles();
    else if (option === "--on" && commandPath.startsWith("artifacts ")) values = profiles();
    else if (["-c", "--config"].includes(option) && recipeConfigs) {
      values = builtinConfigNames(recipeConfigs);
      files = true;
    } else if (["-c", "--config"].includes(option) && runScript !== undefined) {
      values = await runConfigs(runScript);
      files = true;
    } else if (option === "--package" && commandPath === "run") {
      values = ["code", "self-contained"];
    } else files = true;
    return { candidates: filter(values, typed).map((v) => prefix + v), files };
  }
  if (afterDashDash) return { candidates: [], files: true };
  // `nemotron run`: first the script (a recipe name, or a path), then recipe options.
  if (commandPath === "run") {
    if (runScript === undefined && !current.startsWith("-")) {
      return { candidates: filter(await recipeNames(), current), files: true };
    }
    if (current.startsWith("-")) {
      const flags = [...RECIPE_FLAGS, ["--package", "code or self-contained"] as const];
      return { candidates: filter(flags.map(([f, d]) => `${f}\t${d}`), current), files: false };
    }
    return { candidates: [], files: true }; // overrides and script arguments
  }
  if (current.startsWith("-")) {
    const flags = recipeConfigs ? RECIPE_FLAGS.map(([f, d]) => `${f}\t${d}`) : flagsOf(node);
    return { candidates: filter(flags, current), files: false };
  }
  const subs = node.commands.filter((c) => !c.isHidden()).map((c) =>
    `${c.name()}\t${c.description()}`
  );
  if (subs.length > 0 && positional === 0) {
    return { candidates: filter(subs, current), files: false };
  }
  if (recipeConfigs) return { candidates: [], files: true }; // overrides and script arguments
  const pos = await positionals(commandPath, positional, current);
  return { candidates: filter(pos.candidates, current), files: pos.files };
}

/** Candidates (`value` or `value<TAB>description`) whose value starts with `prefix`. */
function filter(candidates: readonly string[], prefix: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const c of candidates) {
    const value = c.split("\t")[0];
    if (!value.startsWith(prefix) || seen.has(value)) continue;
    seen.add(value);
    out.push(c);
  }
  return out;
}

/** `nemotron __complete …`: print the candidates and the directive; always exit 0. */
export async function runComplete(program: Command, args: readonly string[]): Promise<number> {
  const words = args.slice(0, -1);
  const current = args.length > 0 ? args[args.length - 1] : "";
  let result: Completion;
  try {
    result = await complete(program, words, current);
  } catch {
    result = { candidates: [], files: true };
  }
  const lines = [...result.candidates, result.files ? ":files" : ":nofiles"];
  try {
    await Deno.stdout.write(new TextEncoder().encode(lines.join("\n") + "\n"));
  } catch {
    // A closed pipe: the shell gave up waiting; nothing to report.
  }
  return 0;
}
