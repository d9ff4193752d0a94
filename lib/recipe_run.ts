/**
 * Mechanisms the recipe command files share (the orchestration stays in each command file):
 * choosing the executor, the local job directory, the redacted command line, the environment a
 * recipe script receives, and printing a dry run.
 */
import type { RecipeArgs } from "./cli/args.ts";
import { redactEnv, redactTree, renderBlock, renderCompiledConfig } from "./cli/display.ts";
import type { ConfigMap } from "./config/tree.ts";
import { toPlain } from "./config/tree.ts";
import { resolveValue } from "./config/interpolate.ts";
import { parseOverride } from "./config/dotlist.ts";
import { isArtifactReference } from "./config/run_refs.ts";
import { type AutoMount, autoMountResolver } from "./config/resolvers.ts";
import { RuntimeFailure, UsageError } from "./errors.ts";
import {
  buildSlurmJob,
  type PipelineRef,
  profileLocator,
  renderSbatch,
  type SlurmJob,
} from "./exec/slurm.ts";
import { submissionReport, submitJob, type SubmittedJob } from "./exec/submit.ts";
import { followJob } from "./exec/follow.ts";
import { checkRemoteJobDir } from "./exec/job_dir.ts";
import { preflightSbatch } from "./exec/slurm_preflight.ts";
import { syncGitMounts } from "./exec/git_mounts.ts";
import { buildRunEnv, hideSecretArgs, shellJoinSecretRefs } from "./exec/run_env.ts";
import { INTERRUPTED_EXIT_CODE } from "./exec/local_run.ts";
import { updateManifest } from "./exec/job_dir.ts";
import { ignoredProfileKeys } from "./profile_keys.ts";
import { artifactsRoot } from "./artifacts/root.ts";
import { type EnvFile, specialSection } from "./env_toml.ts";
import type { Runspec } from "./runspec.ts";
import { ensureSquashedImage } from "./squash/ensure.ts";
import { checkoutRoot } from "./packaging/git.ts";
import * as path from "./path.ts";
import { redactArgv } from "./secrets.ts";
import { shellJoin, shellQuote } from "./shell.ts";
import { sshCommandLine, tunnelJobOf, tunnelLabel, tunnelSpecOf } from "./exec/ssh.ts";

type Profile = Readonly<Record<string, unknown>>;

/** Where a recipe runs. */
export type Executor = "local" | "slurm";

const KNOWN_EXECUTORS = ["local", "slurm", "docker", "dgxcloud", "lepton"];

/**
 * `local` without `--run/--batch` or with a profile whose `executor = "local"`; `slurm` for a
 * profile with `executor = "slurm"` or no executor key (the Python CLI's default for recipes).
 */
export function executorFor(
  args: RecipeArgs,
  profile: Profile | undefined,
  envFile?: string,
): Executor {
  if (args.mode === "local" || !profile) return "local";
  const ex = profile.executor ?? "slurm";
  if (ex === "local" && args.stage) {
    throw new UsageError(`--stage needs a Slurm profile; '${args.profile}' runs locally`, {
      location: envFile ? { file: envFile } : undefined,
      hint: "use --stage with a profile whose executor is slurm, or drop --stage",
    });
  }
  if (ex === "local" || ex === "slurm") {
    for (const { key, reader } of ignoredProfileKeys(profile, ex)) {
      console.error(
        `warning: profile '${args.profile}': ${key} is read by ${reader}; the ${ex} executor ignores it`,
      );
    }
    return ex;
  }
  if (typeof ex === "string" && KNOWN_EXECUTORS.includes(ex)) {
    throw new UsageError(
      `executor '${ex}' (profile '${args.profile}') is not supported by this nemotron yet`,
      {
        location: envFile ? { file: envFile } : undefined,
        hint: 'use executor = "slurm" or "local"',
      },
    );
  }
  throw new UsageError(
    `Unknown executor type: '${String(ex)}'. Supported: local, slurm`,
    {
      location: envFile ? { file: envFile } : undefined,
      hint: 'set executor = "slurm" or "local" in the profile',
    },
  );
}

/** `nemotron …` as typed, with secret values hidden (see `redactArgv`). */
export function redactedCommandLine(argv: readonly string[]): string {
  return shellJoin(["nemotron", ...redactArgv(argv)]);
}

/** The base directory of local job dirs: `<cwd>/.nemotron/jobs`. */
export function localJobsBase(cwd: string = Deno.cwd()): string {
  return path.join(cwd, ".nemotron", "jobs");
}

/** A job dir name as `createJobDir` would make it, for dry runs (the suffix is shown as XXXXXX). */
export function plannedJobDir(base: string, name: string, now: Date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${
    p(now.getHours())
  }${p(now.getMinutes())}${p(now.getSeconds())}`;
  return path.join(base, `${stamp}-${name.replaceAll("/", "-")}-XXXXXX`);
}

/**
 * What the script receives besides its config, for the "job dir" line of a local run:
 * `; script arguments: --mock` (shell-quoted), or nothing.
 */
export function scriptArgsNote(passthrough: readonly string[]): string {
  // Secret values (`--password=…`) are shown as ****** (lib/secrets.ts).
  return passthrough.length ? `; script arguments: ${shellJoin(redactArgv(passthrough))}` : "";
}

/** Copy the unpacked recipe's code files (not its configs) into `dest`. */
export function copyRecipeCode(srcDir: string, files: readonly string[], dest: string): void {
  for (const rel of files) {
    const to = path.join(dest, rel);
    Deno.mkdirSync(path.dirname(to), { recursive: true });
    Deno.copyFileSync(path.join(srcDir, rel), to);
  }
}

/** Everything a dry run reports. */
export interface DryRunReport {
  readonly job: ConfigMap;
  readonly train: ConfigMap;
  readonly env: Readonly<Record<string, string>>;
  readonly command: readonly string[];
  readonly executor: Executor;
  readonly jobDir: string;
  readonly forRemote: boolean;
  readonly repoRoot?: string;
  /** The directory nemotron runs in, when it is below `repoRoot` (for `${oc.env:PWD}`). */
  readonly cwd?: string;
  /** The planned code package (slurm): its size and what the deny list left out. */
  readonly codePackage?: {
    readonly root?: string;
    readonly entries: readonly unknown[];
    readonly totalBytes: number;
    readonly excluded: readonly { readonly path: string; readonly reason: string }[];
  };
  /** The rendered sbatch script (slurm), shown in full. */
  readonly script?: string;
  /** What would happen besides (e.g. "would squash IMAGE to PATH"). */
  readonly notes?: readonly string[];
}

/** Print a dry run: human panels, or one JSON object with `--json`. */
export function printDryRun(r: DryRunReport, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(
      {
        job_config: toPlain(redactTree(r.job)),
        train_config: toPlain(redactTree(r.train)),
        env_vars: redactEnv(r.env),
        command: redactArgv(r.command),
        executor: r.executor,
        job_dir: r.jobDir,
        ...(r.codePackage
          ? {
            code_package: {
              root: r.codePackage.root ?? null,
              files: r.codePackage.entries.length,
              bytes: r.codePackage.totalBytes,
              excluded: r.codePackage.excluded,
            },
          }
          : {}),
        ...(r.script !== undefined ? { sbatch_script: r.script } : {}),
        ...(r.notes?.length ? { notes: r.notes } : {}),
      },
      null,
      2,
    ));
    return;
  }
  console.log(
    renderCompiledConfig(r.job, { forRemote: r.forRemote, repoRoot: r.repoRoot, cwd: r.cwd }),
  );
  const env = redactEnv(r.env);
  const envText = Object.keys(env).sort().map((k) => `${k}=${env[k]}`).join("\n") || "(none)";
  console.log(renderBlock("environment", envText));
  console.log(renderBlock(`command (${r.executor})`, shellJoin(redactArgv(r.command))));
  if (r.codePackage) {
    const p = r.codePackage;
    const lines = [
      `${p.entries.length} files, ${(p.totalBytes / (1 << 20)).toFixed(1)} MB from ${
        p.root ?? "the recipe"
      }`,
      ...(p.excluded.length
        ? ["left out (never shipped):", ...p.excluded.map((x) => `  ${x.path}  (${x.reason})`)]
        : []),
    ];
    console.log(renderBlock("code package", lines.join("\n")));
  }
  if (r.script !== undefined) console.log(renderBlock("sbatch script", r.script));
  for (const n of r.notes ?? []) console.log(n);
  console.log(`job dir: ${r.jobDir}`);
  console.log("dry run: nothing was written or submitted");
}

/** What a recipe command did: its exit code and where it ran. */
export interface RecipeOutcome {
  readonly code: number;
  /** The local job dir, or the Slurm job dir. */
  readonly jobDir?: string;
  /** Slurm job ids submitted (in order). */
  readonly slurmJobIds?: readonly string[];
  /** The artifact the recipe publishes (config `artifact.name`), if any. */
  readonly artifact?: string;
  /** What was submitted to Slurm. */
  readonly submitted?: readonly SubmittedJob[];
}

/** How a pipeline runs one of its stages. */
export interface StageOptions {
  /** Slurm ids this stage waits for (`--dependency=afterok:…`). */
  readonly after?: readonly string[];
  /** The pipeline this stage belongs to. */
  readonly pipeline?: PipelineRef;
  /** Submit only: do not print the report or follow the log (the pipeline does that). */
  readonly noFollow?: boolean;
}

/** Unpack a code tarball into `dir` with the system tar (the job dir is on a shared filesystem). */
export async function extractTarball(tarball: string, dir: string): Promise<void> {
  const out = await new Deno.Command("tar", { args: ["-xzf", tarball, "-C", dir], stderr: "piped" })
    .output();
  if (out.code !== 0) {
    throw new RuntimeFailure(
      `cannot unpack ${tarball}: ${new TextDecoder().decode(out.stderr).trim()}`,
      {
        hint: "check free space and permissions of remote_job_dir",
      },
    );
  }
}

/** File name of the train config for a runspec `config.format`. */
export function trainConfigName(format: "omegaconf" | "yaml" | "json" | "toml"): string {
  return `train.${format === "json" ? "json" : format === "toml" ? "toml" : "yaml"}`;
}

/**
 * Report a failed local run: its exit code, the job dir, the last lines of its log and, for a
 * recipe made for a container (`image`), where it is meant to run; the last line says that the
 * script failed. A run ended by Ctrl-C (exit code 130) prints `interrupted` and the job dir only.
 */
export function localRunFailed(
  name: string,
  code: number,
  jobDir: string,
  logPath: string,
  image?: string | null,
): void {
  if (code === INTERRUPTED_EXIT_CODE) {
    // Ctrl-C: the script saw it and said so itself (its traceback is above and in run.log).
    console.error(`interrupted`);
    console.error(`  job dir: ${jobDir}`);
    return;
  }
  let tail: string[] = [];
  try {
    const text = Deno.readTextFileSync(logPath).replace(/\n+$/, "");
    tail = text === "" ? [] : text.split("\n").slice(-10);
  } catch { /* no log */ }
  console.error(`error: ${name} failed with exit code ${code}`);
  console.error(`  job dir: ${jobDir}`);
  if (tail.length) {
    console.error(`  last lines of ${logPath}:`);
    for (const l of tail) console.error(`    ${l}`);
  }
  if (image) {
    console.error(
      `  hint: ${name} is meant to run in the container ${image}: submit it with --run/--batch ` +
        "and a Slurm profile, or run nemotron inside that container",
    );
  }
  // Last line: whose failure it is (a script's exit code 2 is not nemotron's "bad usage" 2).
  console.error(
    `  the script failed: exit code ${code} is its own, not a nemotron error about your input`,
  );
}

/** The effective execution settings of a job and the git repositories its mounts ask for. */
export interface RunSettings {
  /** `run.env` resolved: `${oc.env:…}` and the like filled in, auto-mount placeholders removed. */
  readonly env: Profile;
  /** `${auto_mount:git+URL@REF[,TARGET]}` entries, to clone and mount on Slurm. */
  readonly gitMounts: readonly AutoMount[];
}

/**
 * The effective execution settings of a job: its config's `run.env` (YAML `run.env`, the profile
 * over it with the recipe's resource keys kept, then `run.env.*` command-line overrides), with its
 * interpolations resolved against the whole job config. Each key is resolved on its own and a key
 * that cannot be resolved (`who: ${oc.env:USER}` with USER unset) fails only when it is read —
 * OmegaConf's lazy resolution, as the original has it: a dry run that never reads that key works,
 * a job that needs it stops with the usage error naming the key.
 */
export function runSettingsOf(job: ConfigMap): RunSettings {
  const run = job.get("run");
  if (!(run instanceof Map) || !run.has("env")) return { env: {}, gitMounts: [] };
  const runEnv = run.get("env");
  if (!(runEnv instanceof Map)) {
    throw new UsageError("run.env must be a mapping", {
      hint: "write run.env as key: value lines",
    });
  }
  const gitMounts = new Map<string, AutoMount>();
  const opts = {
    resolvers: { auto_mount: autoMountResolver((m) => gitMounts.set(m.name, m)) },
  };
  const env: Record<string, unknown> = {};
  for (const key of runEnv.keys()) {
    let value: unknown;
    try {
      value = toPlain(resolveValue(job, `run.env.${key}`, opts));
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      Object.defineProperty(env, key, {
        enumerable: true,
        get: () => {
          throw e;
        },
      });
      continue;
    }
    if (key === "mounts" && Array.isArray(value)) {
      value = value.filter((m) => !(typeof m === "string" && m.startsWith("__auto_mount__:")));
    }
    env[key] = value;
  }
  return { env, gitMounts: [...gitMounts.values()] };
}

/**
 * The container image of a job: `container_image` (an empty string means bare metal), else the
 * legacy `container`, else the runspec's image.
 */
export function recipeImage(runEnv: Profile, runspecImage: string | null): string | null {
  for (const key of ["container_image", "container"]) {
    const v = runEnv[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") {
      throw new UsageError(`run.env.${key} must be a string, got ${JSON.stringify(v)}`);
    }
    return v === "" ? null : v;
  }
  return runspecImage;
}

/** Processes per node for a local torchrun: `run.env.nproc_per_node`, else 1. */
export function localNproc(runEnv: Profile): number | string {
  const v = runEnv.nproc_per_node;
  if (v === undefined || v === null) return 1;
  if (v === "gpu" || (typeof v === "number" && Number.isInteger(v) && v > 0)) return v;
  throw new UsageError(
    `run.env.nproc_per_node must be a positive integer or "gpu", got ${JSON.stringify(v)}`,
  );
}

/**
 * The shell command of a runspec with `run.cmd`, run from `run.workdir` when set:
 * `cd WORKDIR && <cmd with {script}/{config}> <passthrough>`. `script` and `config` are inserted
 * as given (callers pass quoted shell words such as `"$NEMOTRON_JOB_DIR"/code/main.py`); the
 * passthrough is quoted. Without `run.cmd`: `python3 SCRIPT --config CONFIG`.
 */
export function workdirCommand(
  runspec: { readonly run: { readonly cmd: string | null; readonly workdir: string | null } },
  script: string,
  config: string,
  passthrough: readonly string[],
): string {
  const cmd = (runspec.run.cmd ?? "python3 {script} --config {config}")
    .replaceAll("{script}", script)
    .replaceAll("{config}", config);
  // Secret arguments (`--password=X`) become `"${NEMOTRON_SECRET_ARG_<n>}"` here; planSlurmJob
  // puts their values in the job's private env file (lib/exec/run_env.ts hideSecretArgs).
  const hidden = hideSecretArgs(passthrough).argv;
  const tail = hidden.length ? " " + shellJoinSecretRefs(hidden) : "";
  return (runspec.run.workdir ? `cd ${shellQuote(runspec.run.workdir)} && ` : "") + cmd + tail;
}

/**
 * Check what can be checked before anything is unpacked or written: `-c NAME` against the
 * recipe's built-in configs (a value with `/` or ending in `.yaml`/`.yml` is a path, checked when
 * it is read) and the syntax of every `key=value` override.
 */
export function checkRecipeInput(
  args: RecipeArgs,
  builtins: readonly string[],
  command: string,
): void {
  for (const item of args.dotlist) parseOverride(item);
  const name = args.config;
  if (name === undefined || name.includes("/") || /\.ya?ml$/.test(name)) return;
  if (!builtins.includes(name)) {
    throw new UsageError(
      `Config '${name}' not found for ${command}. Built-in configs: ${builtins.join(", ")}`,
      {
        hint: `use -c ${
          builtins.includes("tiny") ? "tiny" : builtins[0]
        }, or -c /path/to/your/config.yaml`,
      },
    );
  }
}

/**
 * The environment a recipe script receives: the run environment of reference §1.10 (from the
 * effective `run.env` and `[wandb]`) plus what the artifact helper reads — the registry root
 * (env.toml `[artifacts]`, else `$NEMOTRON_HOME/artifacts`), the recipe name and the redacted
 * command line.
 */
export function recipeEnv(opts: {
  readonly runEnv: Profile;
  readonly wandb?: Readonly<Record<string, unknown>>;
  readonly envFile?: EnvFile;
  readonly recipeName: string;
  readonly argv: readonly string[];
}): Record<string, string> {
  return {
    ...buildRunEnv({ profile: opts.runEnv, wandb: opts.wandb, recipeName: opts.recipeName }),
    NEMOTRON_ARTIFACTS_ROOT: artifactsRoot(
      specialSection(opts.envFile, "artifacts"),
      Deno.env,
      opts.envFile ? path.dirname(opts.envFile.path) : undefined,
    ),
    NEMOTRON_RECIPE: opts.recipeName,
    NEMOTRON_COMMAND: redactedCommandLine(opts.argv),
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
  };
}

/** A Slurm job ready to show (dry run) or write and submit. */
export interface PlannedSlurmJob {
  readonly job: SlurmJob;
  readonly script: string;
  /** What else happens (the image squash). */
  readonly notes: readonly string[];
}

/**
 * Plan a recipe's Slurm job from its effective settings: the image squashed to `.sqsh` for pyxis
 * (a dry run only says so), `${auto_mount:…}` repositories synced into the git cache, the artifact
 * registry mounted at its own path in a container, and the sbatch script rendered. Writes nothing
 * but the squashed image and the git cache (neither on a dry run).
 */
export async function planSlurmJob(opts: {
  readonly args: RecipeArgs;
  readonly settings: RunSettings;
  readonly envFile?: EnvFile;
  readonly runspec: Runspec;
  /** What runs in each task (see `SlurmJobSpec.command`). */
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly pipeline?: PipelineRef;
}): Promise<PlannedSlurmJob> {
  const { args, settings, envFile, runspec } = opts;
  // Values of secret passthrough arguments, referenced by `workdirCommand` command lines (argv
  // commands get theirs from buildSlurmJob): they go to the private env file only.
  const env = { ...opts.env, ...hideSecretArgs(args.passthrough).env };
  const image = recipeImage(settings.env, runspec.image);
  const base = {
    name: runspec.name,
    profile: settings.env,
    profileName: args.profile,
    locate: envFile && args.profile ? profileLocator(envFile, args.profile) : undefined,
    mode: args.mode as "run" | "batch",
    launch: runspec.run.launch,
    resources: runspec.resources,
    command: opts.command,
    env,
    pipeline: opts.pipeline,
    templateBaseDir: envFile ? path.dirname(envFile.path) : undefined,
  };
  // ---- ssh tunnel (issue 12): a cluster reached over OpenSSH is planned in lib/exec/ssh_submit.ts
  const tunnel = tunnelSpecOf(settings.env, { profileName: args.profile, locate: base.locate });
  if (tunnel) {
    const { planTunnelJob } = await import("./exec/ssh_submit.ts");
    return await planTunnelJob({
      args,
      spec: tunnel,
      base,
      image,
      gitMounts: settings.gitMounts,
      env,
    });
  }
  // ----
  // Check the profile and that no other user can swap remote_job_dir before anything is written.
  const bare = buildSlurmJob({ ...base, image: null });
  checkRemoteJobDir(bare.remoteJobDir);
  // Ask Slurm whether it would take this job (partition, account, QOS, time, resources) before
  // anything expensive: a typo must not cost a 20 GB image download.
  if (!args.dryRun) await checkSlurmAccepts(bare, args.profile);
  const sqsh = image === null ? null : await ensureSquashedImage(settings.env, image, {
    force: args.forceSquash,
    dryRun: args.dryRun,
  });
  const spec = { ...base, image: sqsh };
  const draft = buildSlurmJob(spec);
  const gitMounts = await syncGitMounts(settings.gitMounts, draft.remoteJobDir, {
    dryRun: args.dryRun,
  });
  const registry = env.NEMOTRON_ARTIFACTS_ROOT;
  const registryMount = sqsh && registry ? [`${registry}:${registry}`] : [];
  // pyxis refuses a mount whose source does not exist: the first job on a fresh NEMOTRON_HOME
  // would fail. Create the registry before anything is submitted (a dry run creates nothing).
  if (registryMount.length && !args.dryRun) Deno.mkdirSync(registry, { recursive: true });
  const job = buildSlurmJob({
    ...spec,
    jobKey: draft.key,
    mounts: [...gitMounts, ...registryMount],
  });
  const script = await renderSbatch(job);
  for (const w of job.warnings) console.error(`warning: ${w}`);
  return { job, script, notes: sqsh && sqsh !== image ? [`container: ${image} → ${sqsh}`] : [] };
}

/** `sbatch --test-only` with the job's directives; a refusal is bad input (exit 2). */
async function checkSlurmAccepts(job: SlurmJob, profile: string | undefined): Promise<void> {
  const pre = await preflightSbatch(job.directives);
  if (pre.ok) return;
  throw new UsageError(`Slurm would refuse this job: ${pre.message}`, {
    hint: `fix partition, account, qos, time or resources in profile '${profile}' (\`sinfo -s\` ` +
      "lists partitions); `nemotron doctor " + (profile ?? "PROFILE") + "` checks the profile",
  });
}

/**
 * How to start a staged job by hand: `sbatch SCRIPT`, or interactively `salloc` with the job's
 * resources running `bash SCRIPT` (its `srun` step runs in the allocation; `#SBATCH` lines are
 * comments there).
 */
export function stagedInstructions(job: SlurmJob): string {
  // ssh tunnel (issue 12): the job dir is on the cluster; the commands run there.
  const t = tunnelJobOf(job);
  const on = t ? `${sshCommandLine(t.tunnel.spec)} ` : "";
  const onTty = t ? `${sshCommandLine(t.tunnel.spec, true)} ` : "";
  const notForSalloc = ["output", "open-mode", "requeue", "no-requeue", "dependency", "chdir"];
  const allocFlags = job.directives.filter((d) => !notForSalloc.includes(d.flag))
    .map((d) => d.value === null ? `--${d.flag}` : `--${d.flag}=${d.value}`);
  const log = path.join(job.logsDir, `log-${job.slurmName}_<JOBID>_0.out`);
  return [
    `staged ${job.name} (not submitted): ${t ? `${tunnelLabel(t.tunnel.spec)}:` : ""}${job.jobDir}`,
    `  submit it:           ${on}sbatch --parsable ${shellQuote(job.scriptPath)}`,
    `  or interactively:    ${onTty}${
      shellJoin(["salloc", ...allocFlags, "bash", job.scriptPath])
    }`,
    `  the task's log:      ${log}`,
    `  edit first if you like: ${path.join(job.jobDir, "code")}/, ${job.scriptPath}`,
  ].join("\n");
}

/**
 * Submit a written job (after the previous pipeline stage, if any). `--batch` prints how to follow
 * it (unless a pipeline reports for all stages); `--run` streams its log and returns its exit code.
 * `--stage` submits nothing: the job dir is complete and the commands to start it are printed.
 */
export async function submitRecipeJob(
  job: SlurmJob,
  args: RecipeArgs,
  opts: StageOptions,
): Promise<RecipeOutcome> {
  if (args.stage) {
    // ssh tunnel (issue 12): the staged job dir is copied to the cluster, not submitted.
    if (tunnelJobOf(job)) await (await import("./exec/ssh_submit.ts")).stageTunnelJob(job);
    else updateManifest(job.jobDir, { state: "STAGED" });
    console.log(stagedInstructions(job));
    return { code: 0, jobDir: job.jobDir, slurmJobIds: [] };
  }
  // ssh tunnel (issue 12): a job planned for a tunnel is copied and submitted over ssh.
  const sub = tunnelJobOf(job)
    ? await (await import("./exec/ssh_submit.ts")).submitTunnelJob(job, { after: opts.after })
    : await submitJob(job, { after: opts.after });
  const done = { jobDir: sub.job_dir, slurmJobIds: [sub.slurm_job_id], submitted: [sub] };
  if (args.mode === "batch" || opts.noFollow) {
    if (!opts.noFollow) console.log(submissionReport("batch", [sub], args.json));
    return { code: 0, ...done };
  }
  console.error(submissionReport("run", [sub], false));
  const followed = await followJob({ ...sub, slurm_name: job.slurmName });
  return { code: followed.exitCode, ...done };
}

/** How `nemotron run` ships a script to Slurm: the code packager, or one inlined `main.py`. */
export type Packaging = "code" | "self-contained";

/**
 * Where the code packager will put `script` in its package when it packages the script's own
 * checkout (or, outside a checkout, the script's directory): the package root on disk and the
 * script's path inside the package.
 */
export async function codePackageLayout(
  script: string,
): Promise<{ readonly root: string; readonly scriptArcname: string }> {
  const real = Deno.realPathSync(script);
  const checkout = await checkoutRoot(path.dirname(real));
  const root = checkout ? Deno.realPathSync(checkout) : path.dirname(real);
  return { root, scriptArcname: path.relative(root, real) };
}

/**
 * A `key=value` example for a recipe's help: the first scalar leaf of its default config (outside
 * `run`), with its current value; `key=value` when there is none.
 */
export function exampleOverride(config: ConfigMap | undefined): string {
  const walk = (node: ConfigMap, prefix: string): string | undefined => {
    for (const [k, v] of node) {
      if ((prefix === "" && k === "run") || k === "defaults") continue;
      const key = prefix ? `${prefix}.${k}` : k;
      if (v instanceof Map) {
        const hit = walk(v, key);
        if (hit) return hit;
      } else if (!Array.isArray(v) && v !== null && /^[\w.-]+$/.test(String(v))) {
        return `${key}=${String(v)}`;
      }
    }
    return undefined;
  };
  return (config && walk(config, "")) ?? "key=value";
}

/**
 * The artifact inputs a config declares: `run.<key>` values that are artifact references
 * (`demo-data:latest`), for the help's Artifact Overrides panel.
 */
export function artifactInputs(
  config: ConfigMap | undefined,
): { readonly key: string; readonly description: string }[] {
  const run = config?.get("run");
  if (!(run instanceof Map)) return [];
  return [...run].filter(([k, v]) => k !== "env" && isArtifactReference(v))
    .map(([k, v]) => ({ key: k, description: `Artifact reference (default: ${String(v)})` }));
}

/**
 * The local torchrun argv of a `launch = "torchrun"` script without `run.cmd`, as `demo ddp` and
 * the Slurm job run it: `<python> -m torch.distributed.run --standalone --nnodes=1
 * --nproc_per_node=N [torchrun_args…] SCRIPT --config CONFIG [args…]`, where `<python>` is
 * $NEMOTRON_PYTHON, else `run.env.python`, else `python3`, and `torchrun_args` comes from `run.env`
 * (e.g. Debian's torch 1.13 needs `--redirects=1 --tee=1`).
 */
export function localTorchrunArgv(opts: {
  readonly runEnv: Profile;
  readonly script: string;
  readonly config: string;
  readonly passthrough: readonly string[];
}): string[] {
  const { runEnv } = opts;
  const py = runEnv.python;
  if (py !== undefined && py !== null && typeof py !== "string") {
    throw new UsageError(`run.env.python must be a string, got ${JSON.stringify(py)}`);
  }
  const extra = runEnv.torchrun_args ?? [];
  if (!Array.isArray(extra) || extra.some((x) => typeof x !== "string")) {
    throw new UsageError(
      `run.env.torchrun_args must be a list of strings, got ${JSON.stringify(extra)}`,
      { hint: 'e.g. torchrun_args = ["--redirects=1", "--tee=1"]' },
    );
  }
  return [
    Deno.env.get("NEMOTRON_PYTHON") || (py ? py : "") || "python3",
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nnodes=1",
    `--nproc_per_node=${localNproc(runEnv)}`,
    ...(extra as string[]),
    opts.script,
    "--config",
    opts.config,
    ...opts.passthrough,
  ];
}
