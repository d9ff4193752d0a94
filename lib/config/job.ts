/**
 * The job config (full provenance under `run`, what job.yaml holds) and the train config (what
 * the script receives), built exactly as nemotron's loader does (reference §1.3 step 3, §1.4),
 * and the files written into a job directory.
 */
import { join } from "../path.ts";
import type { RecipeArgs } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { redactArgv, redactSecrets } from "../secrets.ts";
import { applyDotlist } from "./dotlist.ts";
import { type ResolveOptions, resolveTree } from "./interpolate.ts";
import { mergeConfigs } from "./merge.ts";
import {
  isArtifactReference,
  remotePwdFor,
  resolveRunInterpolations,
  rewritePathsForRemote,
} from "./run_refs.ts";
import { cloneTree, type ConfigMap, type ConfigNode, fromPlain, positionOf } from "./tree.ts";
import { toJson, toToml, toYaml } from "./write.ts";
import { writeFileAtomic } from "../atomic.ts";

/** Keys of `run.env` the recipe owns: a YAML value beats the profile's. */
export const RESOURCE_KEYS = [
  "container_image",
  "nodes",
  "gpus_per_node",
  "ntasks_per_node",
  "nproc_per_node",
] as const;

/** Everything `buildJobConfig` needs. */
export interface JobConfigInput {
  /** The loaded config (`defaults:` applied, dotlist applied once). Not modified. */
  readonly config: ConfigMap;
  /** The parsed command line of the recipe leaf. */
  readonly args: RecipeArgs;
  /** The resolved env.toml profile, or undefined when running locally without one. */
  readonly profile?: Readonly<Record<string, unknown>>;
  /** env.toml `[wandb]` (becomes `run.wandb`), if any. */
  readonly wandb?: Readonly<Record<string, unknown>>;
  /** env.toml `[artifacts]` (merged into top-level `artifacts`, YAML keys win), if any. */
  readonly artifacts?: Readonly<Record<string, unknown>>;
  /** Recipe name from the runspec, e.g. `nano3/pretrain`. */
  readonly recipeName: string;
  /** The script path recorded in `run.recipe.script`. */
  readonly scriptPath: string;
  /** The config name or path used (`-c` value or the runspec default); recorded in run.cli.config. */
  readonly configName?: string;
}

function asMap(v: ConfigNode | undefined, what: string): ConfigMap {
  if (v === undefined || v === null) return new Map();
  if (!(v instanceof Map)) {
    throw new UsageError(`'${what}' must be a mapping in the config`, {
      hint: `write ${what}: followed by indented key: value lines`,
    });
  }
  return v;
}

/**
 * `run.env` keys whose values become shell code run as the user (or pick the script's template).
 * They are taken only from env.toml profiles (and the user's own command line), never from a
 * config file: a config may come from someone else, and running it must not run their shell.
 */
export const SHELL_KEYS = [
  "setup_lines",
  "startup_commands",
  "sbatch_template",
  "ray_template",
  "python", // the interpreter torchrun runs: picks the program, like a template
] as const;

/** Refuse shell-bearing `run.env` keys written in a config file (see `SHELL_KEYS`). */
function refuseShellKeys(yamlEnv: ConfigMap): void {
  for (const key of SHELL_KEYS) {
    if (!yamlEnv.has(key)) continue;
    const pos = positionOf(yamlEnv, key);
    // Typed on the user's own command line (dotlist positions name `<command line>`).
    if (pos && (pos.file === "<command line>" || pos.file.startsWith("override '"))) continue;
    throw new UsageError(`run.env.${key} cannot be set in a config file`, {
      location: pos,
      hint:
        `${key} is shell code that runs as you; put it in an env.toml profile (your own file) and select it with --run/--batch PROFILE`,
    });
  }
}

/** `run.env` = YAML env overlaid by the profile, with the original's exceptions. */
function mergeEnv(yamlEnv: ConfigMap, profile: Readonly<Record<string, unknown>>): ConfigMap {
  const prof = fromPlain(profile) as ConfigMap;
  const merged = mergeConfigs(yamlEnv, prof);
  const ym = yamlEnv.get("mounts");
  const pm = prof.get("mounts");
  if (Array.isArray(ym) && Array.isArray(pm)) merged.set("mounts", [...cloneTree(ym), ...pm]);
  for (const k of RESOURCE_KEYS) {
    if (yamlEnv.has(k)) merged.set(k, cloneTree(yamlEnv.get(k)!));
  }
  return merged;
}

/**
 * Build the job config: a copy of the config (interpolations unresolved) whose `run` section gets
 * `mode`, `profile`, `env` (YAML `run.env` overlaid by the profile: `env_vars` merged, `mounts`
 * concatenated, resource keys kept from YAML), `cli {argv, dotlist, passthrough, config}`,
 * `recipe {name, script}` and `wandb`; env.toml `[artifacts]` merged into top-level `artifacts`
 * (YAML keys win); finally the dotlist applied again so the command line beats env.toml.
 */
export function buildJobConfig(input: JobConfigInput): ConfigMap {
  const { args } = input;
  const job = cloneTree(input.config);
  const run = asMap(job.get("run"), "run");
  const yamlEnv = asMap(run.get("env"), "run.env");
  refuseShellKeys(yamlEnv);
  const env = input.profile ? mergeEnv(yamlEnv, input.profile) : cloneTree(yamlEnv);
  run.set("mode", args.mode);
  run.set("profile", args.profile ?? null);
  run.set("env", env);
  run.set(
    "cli",
    new Map<string, ConfigNode>([
      // Provenance, with secret values given on the command line hidden (the values themselves
      // reach run.env / the config through the dotlist, where they are redacted on write).
      ["argv", redactArgv(args.argv)],
      ["dotlist", redactArgv(args.dotlist)],
      ["passthrough", redactArgv(args.passthrough)],
      ["config", input.configName ?? args.config ?? null],
    ]),
  );
  run.set(
    "recipe",
    new Map<string, ConfigNode>([["name", input.recipeName], ["script", input.scriptPath]]),
  );
  if (input.wandb) run.set("wandb", fromPlain(input.wandb));
  job.set("run", run);
  if (input.artifacts) {
    const fromEnv = fromPlain(input.artifacts) as ConfigMap;
    const existing = job.get("artifacts");
    if (existing instanceof Map) {
      for (const [k, v] of fromEnv) if (!existing.has(k)) existing.set(k, v);
    } else if (existing === undefined) job.set("artifacts", fromEnv);
  }
  return applyDotlist(job, args.dotlist, { reapply: true });
}

/** Options of `extractTrainConfig`. */
export interface TrainConfigOptions {
  /** The job runs remotely (`--run`/`--batch`): rewrite local paths to `/nemo_run/…`. */
  readonly forRemote: boolean;
  /** Local repository root for the path rewrite (default: the cwd). */
  readonly repoRoot?: string;
  /** The directory nemotron runs in, when it is a subdirectory of `repoRoot` (maps `${oc.env:PWD}`). */
  readonly cwd?: string;
}

/**
 * How a train config is resolved before it is written as JSON/TOML, and checked (whatever its
 * format) when it is built: every interpolation is resolved except `${art:…}` and `${oc.env:…}`
 * (kept as text: recipes/nemotron_artifacts.py resolves them where the job runs, when the
 * artifact exists and the job's environment is set), calls of resolvers not known here (the
 * script may register them) and `${run.…}` references that the job config cannot fill (kept
 * verbatim, as the original does).
 */
export function trainResolveOptions(resolve: ResolveOptions = {}): ResolveOptions {
  return {
    ...resolve,
    defer: ["art", "oc.env"].filter((n) => !resolve.resolvers?.[n]),
    deferUnknownResolvers: true,
    keepMissing: (key) => key === "run" || key.startsWith("run."),
  };
}

/**
 * The train config the script receives: the job config without `run`, local paths rewritten for
 * remote jobs, `${run.*}` resolved textually, and a minimal `run` holding only the artifact
 * references (so `${art:NAME,…}` still resolves in the script). Other interpolations are kept
 * (JSON/TOML get them resolved when written, see `renderConfig`), but checked here: an
 * interpolation that cannot resolve (`${train.nope}`) is an `InterpolationError` (exit 2) before
 * a dry run prints or anything is written.
 */
export function extractTrainConfig(job: ConfigMap, opts: TrainConfigOptions): ConfigMap {
  let train: ConfigNode = cloneTree(job);
  const run = (train as ConfigMap).get("run");
  (train as ConfigMap).delete("run");
  if (opts.forRemote) {
    const root = opts.repoRoot ?? Deno.cwd();
    train = rewritePathsForRemote(train, root, remotePwdFor(root, opts.cwd));
  }
  const out = resolveRunInterpolations(train, run) as ConfigMap;
  if (run instanceof Map) {
    const refs = new Map([...run].filter(([, v]) => isArtifactReference(v)));
    if (refs.size > 0) out.set("run", refs);
  }
  resolveTree(out, trainResolveOptions()); // fail fast; the result is made again when written
  return out;
}

/** Config file formats a runspec may ask for (`config.format`). */
export type ConfigFormat = "yaml" | "omegaconf" | "json" | "toml";

/** File extension for a train config in `format`. */
export function configExtension(format: ConfigFormat): string {
  return format === "json" ? "json" : format === "toml" ? "toml" : "yaml";
}

/**
 * Text of a config in `format`. yaml/omegaconf keep interpolations (OmegaConf resolves them in the
 * script); json and toml, which have none, are resolved first (`trainResolveOptions`: `${art:…}`
 * and `${oc.env:…}` stay for the script side unless `resolve` registers them).
 */
export function renderConfig(
  tree: ConfigMap,
  format: ConfigFormat,
  resolve?: ResolveOptions,
): string {
  switch (format) {
    case "yaml":
    case "omegaconf":
      return toYaml(tree);
    case "json":
      return toJson(resolveTree(tree, trainResolveOptions(resolve)));
    case "toml":
      return toToml(resolveTree(tree, { ...trainResolveOptions(resolve), throwOnMissing: true }));
  }
}

/**
 * The job config as it may be shown or written: literal values of secret-looking keys (lib/secrets.ts)
 * replaced by `******` ANYWHERE in the tree (run.env, run.wandb, and e.g. a `wandb.api_key=…`
 * override). References such as `${oc.env:HF_TOKEN}` are kept; numbers and booleans too.
 * The train config is never redacted (the script needs the values): see `writeJobFiles`.
 */
export function redactJobConfig(job: ConfigMap): ConfigMap {
  return redactSecrets(job);
}

/** Paths of the files `writeJobFiles` wrote. */
export interface JobFiles {
  readonly jobConfig: string;
  readonly trainConfig: string;
}

/**
 * Write `job.yaml` (secrets redacted, see `redactJobConfig`) and `train.<ext>` (unredacted, mode
 * 0600) into `dir` atomically. Everything is rendered before the
 * first write, so a config that cannot be rendered leaves the directory untouched.
 */
export function writeJobFiles(
  dir: string,
  job: ConfigMap,
  train: ConfigMap,
  format: ConfigFormat,
  resolve?: ResolveOptions,
): JobFiles {
  const jobText = toYaml(redactJobConfig(job));
  const trainText = renderConfig(train, format, resolve);
  const jobConfig = join(dir, "job.yaml");
  const trainConfig = join(dir, `train.${configExtension(format)}`);
  writeFileAtomic(jobConfig, jobText);
  // Owner-only: the train config carries what the script needs, secret-looking values included
  // (e.g. a `wandb.api_key=…` override); job.yaml is the redacted copy for everyone else.
  writeFileAtomic(trainConfig, trainText, 0o600);
  return { jobConfig, trainConfig };
}
