/**
 * Slurm jobs: from a profile, a runspec's launch/resources and a command to a frozen job
 * description (`buildSlurmJob`), and from that to an sbatch script (`renderSbatch`).
 *
 * Everything the profile says is checked here, before anything is written or submitted: a bad key
 * is a UsageError naming the key (and its env.toml line when the caller gives a locator). The
 * script is rendered from `templates/slurm.sub.j2` (or the profile's `sbatch_template`) with a
 * plain-data context; every value enters the script through the `sh` filter (lib/shell.ts).
 *
 * Differences from NeMo-Run on purpose: env values are literal (quoted), never shell expressions;
 * names keep their case; `--requeue` only with `retries = N` (otherwise `--no-requeue`); torchrun
 * reads the node rank inside each task; no topology `srun` on single-node jobs; bare-metal mode
 * uses real paths (no string replace); secrets never enter the script.
 */
import * as path from "../path.ts";
import builtinTemplate from "../../templates/slurm.sub.j2" with { type: "text" };
import denoJson from "../../deno.json" with { type: "json" };
import type { SourceLocation } from "../errors.ts";
import { UsageError } from "../errors.ts";
import { isSecretName } from "../secrets.ts";
import { shellQuote } from "../shell.ts";
import type { Launch } from "../runspec.ts";
import { renderJinja } from "./jinja.ts";
import { RAY_TEMPLATE, raySettings } from "./ray.ts";
import { hasSecretArgRefs, hideSecretArgs, SECRET_ARG_EXPANDER } from "./run_env.ts";
import { type EnvFile, extendsChain } from "../env_toml.ts";
import { locateKey } from "../toml.ts";
import * as resume from "./resume.ts";
import { PROFILE_KEYS } from "../profile_keys.ts";

/** A resolved env.toml profile (plain data). */
export type Profile = Readonly<Record<string, unknown>>;

/** `run` = attached (`--run PROFILE`), `batch` = detached (`--batch PROFILE`). */
export type SlurmMode = "run" | "batch";

/** Where a job sits in a pipeline: stages are submitted in order with `afterok` dependencies. */
export interface PipelineRef {
  /** Shared by all stages of one pipeline submission, e.g. `demo-pipe-20260101-120000-ab12cd`. */
  readonly id: string;
  /** 0-based position of this stage. */
  readonly stage: number;
  /** Number of stages. */
  readonly stages: number;
}

/** Input of `buildSlurmJob`. */
export interface SlurmJobSpec {
  /** Display name, e.g. the runspec name `demo/train`; the Slurm job name is derived from it. */
  readonly name: string;
  /** The resolved profile (`lib/env_toml.ts` resolveProfile). */
  readonly profile: Profile;
  /** The profile's name, recorded in the manifest and the job store. */
  readonly profileName?: string;
  /** Maps a profile key to its place in env.toml, for error messages (see `profileLocator`). */
  readonly locate?: (key: string) => SourceLocation | undefined;
  readonly mode: SlurmMode;
  /** The runspec's `run.launch`. */
  readonly launch: Launch;
  /** The runspec's resources; profile `nodes` / `gpus_per_node` win over them. */
  readonly resources?: {
    readonly nodes?: number;
    readonly gpus_per_node?: number | "gpu";
  };
  /**
   * Container image for pyxis (normally the squashed `.sqsh` path), or null/undefined for
   * bare-metal. Use `resolveImage(profile, runspec.image)` to pick it.
   */
  readonly image?: string | null;
  /**
   * What runs in each task. `direct` / `ray`: the whole argv (e.g. `["python3", "main.py",
   * "--config", "config.yaml"]`). `torchrun`: what follows the torchrun flags (e.g. `["main.py",
   * "--config", "config.yaml"]`). Relative paths are relative to the job's code dir, the task's cwd.
   */
  readonly command: readonly string[];
  /**
   * Environment for the job, public and secret together; secret-looking names (lib/secrets.ts) go
   * to a private file, never to the script. Profile `env_vars` are applied on top.
   */
  readonly env?: Readonly<Record<string, string>>;
  /** Container mounts besides the profile's `mounts` and `lustre_mount`. */
  readonly mounts?: readonly string[];
  readonly pipeline?: PipelineRef;
  /** Directory that a relative `sbatch_template` is resolved against (the env.toml's directory). */
  readonly templateBaseDir?: string;
  /** Fixed job key (tests, goldens); default `<slurm name>-<UTC stamp>-<random>`. */
  readonly jobKey?: string;
  /** Fixed secrets file id (tests, goldens); default random. */
  readonly secretsId?: string;
  /** Uid naming the per-user secrets dir (tests, goldens); default the current user's. */
  readonly uid?: number;
}

/** One `#SBATCH --flag[=value]` line; `value` null renders a bare flag. */
export interface SbatchDirective {
  readonly flag: string;
  readonly value: string | null;
}

/** A job ready to render, write and submit. Frozen; holds no secret values. */
export interface SlurmJob {
  readonly name: string;
  /** Slurm job name: `name` with every run of characters outside `[A-Za-z0-9_.-]` made `-`. */
  readonly slurmName: string;
  /** Unique key of this job; also the job dir's base name. */
  readonly key: string;
  readonly profileName: string | null;
  readonly mode: SlurmMode;
  readonly launch: Launch;
  readonly remoteJobDir: string;
  /** `<remote_job_dir>/jobs/<key>`: script, manifest, configs, code and logs of this job. */
  readonly jobDir: string;
  readonly scriptPath: string;
  readonly manifestPath: string;
  readonly logsDir: string;
  /** The job dir as the task sees it: `/nemo_run` in a container, else the real path. */
  readonly taskJobDir: string;
  /** The task's working directory: `<taskJobDir>/code`. */
  readonly taskCodeDir: string;
  /** `<remote_job_dir>/.nemotron-secrets-<uid>/<id>.env` when there are secrets, else null. */
  readonly secretsFile: string | null;
  /** Profile `job_dir_group`: the group that may read the job dir (mode 0750), or null (0700). */
  readonly jobDirGroup: string | null;
  readonly secretNames: readonly string[];
  readonly publicEnv: Readonly<Record<string, string>>;
  readonly partition: string | null;
  readonly nodes: number;
  readonly ntasksPerNode: number;
  readonly retries: number;
  /** long runs: auto-resume policy (`auto_resume`, `max_restarts`, `signal_before`). */
  readonly resume: resume.ResumePolicy;
  readonly image: string | null;
  readonly command: readonly string[];
  /** The argv srun runs in each task (launcher wrapping applied). */
  readonly taskArgv: readonly string[];
  readonly directives: readonly SbatchDirective[];
  readonly template: { readonly name: string; readonly source: string; readonly builtin: boolean };
  /** The template context (plain data, JSON-serialisable). */
  readonly context: Readonly<Record<string, unknown>>;
  readonly pipeline: PipelineRef | null;
  /** The profile's `dependency` (`TYPE:ID[:ID…]`, checked), joined with a pipeline's `afterok`. */
  readonly dependency: string | null;
  /** Notes for the user (e.g. mounts ignored in bare-metal mode). */
  readonly warnings: readonly string[];
}

/** Secret values of a job, kept out of the frozen (printable, serialisable) job object. */
const SECRET_VALUES = new WeakMap<SlurmJob, Readonly<Record<string, string>>>();

/** The secret env values of `job` (for writing the private env file only). */
export function secretValues(job: SlurmJob): Readonly<Record<string, string>> {
  return SECRET_VALUES.get(job) ?? {};
}

/**
 * Profile keys of the Slurm executor: derived from the one table of known keys
 * (`lib/profile_keys.ts`), where a new key is added (with its README line).
 */
export const SLURM_PROFILE_KEYS: readonly string[] = PROFILE_KEYS
  .filter((k) => k.group === "slurm" || k.group === "profile").map((k) => k.key);

const DEFAULT_TIME = "04:00:00";
const DEFAULT_SRUN_WAIT = 60;
const DEFAULT_RDZV_PORT = 29500;
const CONTAINER_JOB_DIR = "/nemo_run";
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The Slurm job name for a display name: safe characters only, never empty. */
export function slurmJobName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 100);
  return cleaned === "" ? "job" : cleaned;
}

/** Escape `%` for Slurm filename patterns (`--output`), where `%j` etc. are expanded. */
export function slurmPatternEscape(p: string): string {
  return p.replaceAll("%", "%%");
}

/** A UTC time stamp for job keys: `20260101-120000`. */
function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}

/**
 * The per-user directory for private env files in a `remote_job_dir`: `.nemotron-secrets-<uid>`
 * (one per user, so a shared `remote_job_dir` never mixes users' secrets or permissions).
 */
export function secretsDirName(uid: number | null = Deno.uid()): string {
  return `.nemotron-secrets-${uid ?? "nouid"}`;
}

function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** A new unique job key for `name`: `<slurm name>-<UTC stamp>-<6 hex>`. */
export function newJobKey(name: string, now: Date = new Date()): string {
  return `${slurmJobName(name)}-${stamp(now)}-${randomHex(3)}`;
}

/** Reads typed profile keys, raising UsageErrors that name the key and its env.toml line. */
class ProfileReader {
  constructor(
    private readonly profile: Profile,
    private readonly profileName: string | undefined,
    private readonly locate: ((key: string) => SourceLocation | undefined) | undefined,
  ) {}

  fail(key: string, message: string, hint?: string): never {
    const where = this.profileName ? `profile '${this.profileName}': ` : "";
    throw new UsageError(`${where}${key}: ${message}`, { location: this.locate?.(key), hint });
  }

  has(key: string): boolean {
    return this.profile[key] !== undefined && this.profile[key] !== null;
  }

  string(key: string): string | undefined {
    const v = this.profile[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") this.fail(key, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A value for an `#SBATCH` line: one line, no backslash (sbatch's parser eats them). */
  sbatchString(key: string): string | undefined {
    const v = this.profile[key];
    if (v === undefined || v === null) return undefined;
    let s: string;
    if (typeof v === "string") s = v;
    else if (typeof v === "number" || typeof v === "bigint") s = String(v);
    else return this.fail(key, `must be a string, got ${JSON.stringify(v)}`);
    if (s === "") this.fail(key, "must not be empty", "remove the key to use the cluster default");
    if (CONTROL.test(s) || s.includes("\\")) {
      this.fail(key, "must be one line without control characters or backslashes");
    }
    return s;
  }

  int(key: string, min: number): number | undefined {
    const v = this.profile[key];
    if (v === undefined || v === null) return undefined;
    const n = typeof v === "bigint" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n) || n < min) {
      this.fail(key, `must be an integer >= ${min}, got ${JSON.stringify(String(v))}`);
    }
    return n;
  }

  stringList(key: string): string[] | undefined {
    const v = this.profile[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      this.fail(key, `must be a list of strings, got ${JSON.stringify(v)}`);
    }
    return v as string[];
  }
}

/**
 * The container image a job uses: the profile's `container_image` when the key is present (an
 * empty string means bare-metal), else the runspec's image. Squashing is the caller's business.
 */
export function resolveImage(profile: Profile, runspecImage: string | null): string | null {
  if (profile.container_image !== undefined && profile.container_image !== null) {
    if (typeof profile.container_image !== "string") {
      throw new UsageError(
        `container_image: must be a string, got ${JSON.stringify(profile.container_image)}`,
      );
    }
    return profile.container_image === "" ? null : profile.container_image;
  }
  return runspecImage;
}

function checkMount(r: ProfileReader, key: string, m: string): string {
  if (m === "" || CONTROL.test(m) || m.includes(",")) {
    r.fail(
      key,
      `bad mount ${
        JSON.stringify(m)
      }: a mount is SRC[:DST[:FLAGS]], non-empty, one line, no commas`,
    );
  }
  return m;
}

/** `setup_lines` may be one string (split into lines) or a list of lines. */
function readSetupLines(r: ProfileReader, profile: Profile): string[] {
  const v = profile.setup_lines;
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return v.replace(/\r\n/g, "\n").replace(/\n$/, "").split("\n");
  return r.stringList("setup_lines") ?? [];
}

/**
 * Build the frozen description of one Slurm job from a profile, a launch and a command. Checks
 * every profile key it uses and throws UsageError on bad input; writes nothing.
 */
export function buildSlurmJob(spec: SlurmJobSpec): SlurmJob {
  const r: ProfileReader = new ProfileReader(spec.profile, spec.profileName, spec.locate);
  const p = spec.profile;
  if (spec.command.length === 0) throw new Error("buildSlurmJob: empty command");
  const nulArg = spec.command.find((a) => a.includes("\0"));
  if (nulArg !== undefined) {
    throw new UsageError(
      `a command argument cannot contain a NUL character: ${JSON.stringify(nulArg)}`,
    );
  }

  // ssh tunnel (issue 12): tunnel = "ssh" is checked and handled by lib/exec/ssh*.ts.
  const tunnel = r.string("tunnel");
  if (tunnel !== undefined && tunnel !== "" && tunnel !== "local" && tunnel !== "ssh") {
    r.fail("tunnel", `must be "ssh" or "local", got ${JSON.stringify(tunnel)}`);
  }

  // ---- where the job lives ----
  const rjdRaw = r.string("remote_job_dir");
  if (rjdRaw === undefined || rjdRaw === "") {
    r.fail(
      "remote_job_dir",
      "is required for a Slurm profile",
      "set remote_job_dir to a directory on the cluster's shared filesystem",
    );
  }
  if (CONTROL.test(rjdRaw) || rjdRaw.includes("\\")) {
    r.fail("remote_job_dir", "must be one line without control characters or backslashes");
  }
  const home = Deno.env.get("HOME") ?? "";
  const remoteJobDir = path.resolve(
    rjdRaw === "~" || rjdRaw.startsWith("~/") ? path.join(home, rjdRaw.slice(1)) : rjdRaw,
  );
  const jobDirGroup = r.string("job_dir_group") ?? null;
  if (jobDirGroup !== null && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(jobDirGroup)) {
    r.fail("job_dir_group", "must be a group name or number");
  }
  const slurmName = slurmJobName(spec.name);
  const key = spec.jobKey ?? newJobKey(spec.name);
  if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new Error(`buildSlurmJob: bad job key ${key}`);
  const jobDir = path.join(remoteJobDir, "jobs", key);
  const logsDir = path.join(jobDir, "logs");
  const scriptPath = path.join(jobDir, "sbatch.sh");
  const manifestPath = path.join(jobDir, "job.json");

  const warnings: string[] = [];

  // ---- resources ----
  const nodes = r.int("nodes", 1) ?? spec.resources?.nodes ?? 1;
  let gpusPerNode: number | "gpu" | undefined = r.int("gpus_per_node", 0);
  if (gpusPerNode === undefined) gpusPerNode = spec.resources?.gpus_per_node;
  const rayGpusPerNode = gpusPerNode; // Ray wants the explicit 0 of CPU-only recipes (--num-gpus=0)
  if (gpusPerNode === 0) gpusPerNode = undefined;
  const profileTasks = r.int("ntasks_per_node", 1);
  const nprocPerNode = r.int("nproc_per_node", 1) ?? profileTasks ?? gpusPerNode ?? 1;
  let launch: Launch = spec.launch;
  // Ray: one node runs the command directly (Ray starts in-process); more nodes get a Ray cluster
  // from templates/ray.sub.j2 (lib/exec/ray.ts) with the command as its driver.
  if (launch === "ray" && nodes === 1) launch = "direct";
  const ray = launch === "ray"
    ? raySettings({
      readInt: (k, min) => r.int(k, min),
      fail: (k, m) => r.fail(k, m),
      gpusPerNode: rayGpusPerNode,
      cpusPerTask: r.int("cpus_per_task", 1),
    })
    : null;
  // One Slurm task per node for every launch: torchrun starts nproc_per_node workers itself, and a
  // direct/ray script is one driver (N tasks would run N copies, e.g. publish N artifact versions).
  const ntasksPerNode = 1;
  if (launch !== "torchrun" && profileTasks !== undefined && profileTasks > 1) {
    warnings.push(
      `ntasks_per_node = ${profileTasks} ignored: launch = "${spec.launch}" runs one task per node ` +
        `(one copy of the script); use launch = "torchrun" with nproc_per_node for several ranks`,
    );
  }
  const retries = r.int("retries", 0) ?? 0;
  const resumePolicy = readResumePolicy(r, p, retries);
  if (ray !== null && resumePolicy.autoResume) {
    r.fail(
      "auto_resume",
      `is not supported for a Ray cluster (launch = "ray" on ${nodes} nodes) yet: its template has no checkpoint signal`,
      "use retries = N to requeue a failed Ray job, or run on one node",
    );
  }
  const rdzvPort = r.int("rdzv_port", 1) ?? DEFAULT_RDZV_PORT;

  // ---- container or bare metal ----
  const image = spec.image ?? null;
  if (image !== null && (image === "" || CONTROL.test(image))) {
    throw new UsageError(
      `container image ${JSON.stringify(image)} is not a usable image reference`,
    );
  }
  const taskJobDir = image === null ? jobDir : CONTAINER_JOB_DIR;
  const taskCodeDir = path.join(taskJobDir, "code");

  // ---- environment: public exports vs. the private file ----
  const envAll: Record<string, string> = { ...(spec.env ?? {}) };
  // Secret passthrough arguments (`--password=X`): the value moves to the private env file, the
  // command keeps a `${NEMOTRON_SECRET_ARG_<n>}` reference (see lib/exec/run_env.ts).
  const hiddenArgs = hideSecretArgs(spec.command);
  const command = hiddenArgs.argv;
  Object.assign(envAll, hiddenArgs.env);
  const envVars = p.env_vars;
  if (envVars !== undefined && envVars !== null) {
    if (typeof envVars !== "object" || Array.isArray(envVars)) {
      r.fail("env_vars", "must be a table of NAME = value");
    }
    for (const [k, v] of Object.entries(envVars as Record<string, unknown>)) {
      if (v === null || typeof v === "object") {
        r.fail("env_vars", `${k}: must be a string, number or boolean`);
      }
      envAll[k] = String(v);
    }
  }
  const publicEnv: Record<string, string> = {};
  const secretEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(envAll)) {
    if (!ENV_NAME.test(k)) {
      r.fail("env_vars", `${JSON.stringify(k)} is not a valid environment variable name`);
    }
    if (v.includes("\0")) r.fail("env_vars", `${k}: a value cannot contain a NUL character`);
    if (isSecretName(k)) secretEnv[k] = v;
    else if (!(k === "PYTHONUNBUFFERED" && v === "1")) publicEnv[k] = v; // the script sets it
  }
  const secretNames = Object.keys(secretEnv).sort();
  const secretsId = spec.secretsId ?? randomHex(16);
  const secretsFile = secretNames.length
    ? path.join(remoteJobDir, secretsDirName(spec.uid), `${secretsId}.env`)
    : null;

  // ---- mounts (container mode only) ----
  const mounts: string[] = [];
  const profileMounts = r.stringList("mounts") ?? [];
  // No default: a /lustre mount on a cluster without /lustre makes pyxis fail the job.
  const lustre = r.string("lustre_mount") ?? "";
  const userMounts = [...profileMounts, ...(spec.mounts ?? [])]
    .filter((m) => !m.startsWith("__auto_mount__:"));
  if (image !== null) {
    for (const m of userMounts) mounts.push(checkMount(r, "mounts", m));
    if (lustre !== "") mounts.push(checkMount(r, "lustre_mount", lustre));
    mounts.push(`${checkMount(r, "remote_job_dir", jobDir)}:${CONTAINER_JOB_DIR}`);
  } else if (userMounts.length) {
    warnings.push(`mounts ignored: no container image, the job runs on the nodes' own filesystem`);
  }

  // ---- task command (launcher wrapping) ----
  const startup = r.stringList("startup_commands") ?? [];
  const startupPrefix = startup.length ? `{ ${startup.join(" && ")}; } && ` : "";
  let taskArgv: string[];
  const headNode = launch === "torchrun" && nodes > 1;
  // torchrun: `torchrun` from PATH, or `<python> -m torch.distributed.run` when the profile names
  // the interpreter (its workers run that interpreter too); `torchrun_args` go after our flags
  // (e.g. Debian's torch 1.13 needs `--redirects=1 --tee=1` given explicitly). Flags are spelled
  // with underscores: torch < 2 has no dashed aliases (`--nproc-per-node` is "unrecognized").
  const python = r.string("python");
  if (python !== undefined && (python === "" || CONTROL.test(python))) {
    r.fail("python", "must be a non-empty path or command name on one line");
  }
  const torchrun = python === undefined ? ["torchrun"] : [python, "-m", "torch.distributed.run"];
  const torchrunArgs = r.stringList("torchrun_args") ?? [];
  // With a named interpreter, each task first checks that it has torch (without importing it), so
  // a node without it says so instead of "No module named torch" from deep inside torchrun.
  const torchCheck = python === undefined ? "" : `{ ${shellQuote(python)} -c ${
    shellQuote(
      "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('torch') else 3)",
    )
  } || { echo ${
    shellQuote(
      `[nemotron] error: the profile's python (${python}) cannot import torch on this node; ` +
        "install PyTorch there (Debian: python3-torch) or set python to an interpreter that has it",
    )
  } >&2; exit 2; }; } && `;
  if (launch === "torchrun" && nodes > 1) {
    const inner = `${startupPrefix}${torchCheck}exec ${torchrun.map(shellQuote).join(" ")}` +
      ` --nnodes="$SLURM_NNODES" --node_rank="$SLURM_NODEID"` +
      ` --nproc_per_node=${shellQuote(String(nprocPerNode))} --rdzv_backend=c10d` +
      ` --rdzv_endpoint="$NEMOTRON_HEAD_NODE":${rdzvPort} --rdzv_id="$SLURM_JOB_ID"` +
      torchrunArgs.map((a) => " " + shellQuote(a)).join("") + ` "$@"`;
    taskArgv = ["bash", "-c", inner, "nemotron-torchrun", ...command];
  } else {
    const argv = launch === "torchrun"
      ? [
        ...torchrun,
        "--standalone",
        "--nnodes=1",
        `--nproc_per_node=${nprocPerNode}`,
        ...torchrunArgs,
        ...command,
      ]
      : [...command];
    if (launch === "torchrun" && torchCheck !== "") {
      argv.splice(
        0,
        argv.length,
        "bash",
        "-c",
        `${torchCheck}exec "$@"`,
        "nemotron-torchrun",
        ...argv,
      );
    }
    taskArgv = startup.length
      ? ["bash", "-c", `${startupPrefix}exec "$@"`, "nemotron-task", ...argv]
      : argv;
  }
  // Secret argument references are expanded inside the task, never by the batch shell (whose
  // `set -x` trace and srun argv would show the value).
  if (hasSecretArgRefs(taskArgv)) {
    taskArgv = ["bash", "-c", SECRET_ARG_EXPANDER, "nemotron-args", ...taskArgv];
  }
  // long runs: the checkpoint signal reaches every process of the step; torchrun's agent would
  // die of it, so it ignores SIGUSR1 (inherited by the workers until they install a handler).
  if (resumePolicy.signalBefore > 0 && launch === "torchrun") {
    taskArgv = [
      "bash",
      "-c",
      `trap '' ${resume.RESUME_SIGNAL}; exec "$@"`,
      "nemotron-resume",
      ...taskArgv,
    ];
  }

  // ---- #SBATCH directives, in a fixed order ----
  const partition = (spec.mode === "run" ? r.sbatchString("run_partition") : undefined) ??
    (spec.mode === "batch" ? r.sbatchString("batch_partition") : undefined) ??
    r.sbatchString("partition") ?? null;
  const directives: SbatchDirective[] = [];
  const add = (flag: string, value: string | null | undefined) => {
    if (value !== undefined) directives.push({ flag, value });
  };
  const prefix = r.string("job_name_prefix") ?? "";
  add("job-name", prefix === "" ? slurmName : slurmJobName(prefix + spec.name));
  add("account", r.sbatchString("account"));
  add("partition", partition ?? undefined);
  add("qos", r.sbatchString("qos"));
  add("time", r.sbatchString("time") ?? DEFAULT_TIME);
  add("nodes", String(nodes));
  add("ntasks-per-node", String(ntasksPerNode));
  if (typeof gpusPerNode === "number") add("gpus-per-node", String(gpusPerNode));
  add("cpus-per-task", r.int("cpus_per_task", 1)?.toString());
  add("mem", r.sbatchString("mem"));
  add("gres", r.sbatchString("gres"));
  add("constraint", r.sbatchString("constraint"));
  const exclusive = p.exclusive;
  if (exclusive === true) add("exclusive", null);
  else if (typeof exclusive === "string" && exclusive !== "") {
    add("exclusive", r.sbatchString("exclusive"));
  } else if (
    exclusive !== undefined && exclusive !== false && exclusive !== null && exclusive !== ""
  ) {
    r.fail("exclusive", `must be true, false or a string, got ${JSON.stringify(exclusive)}`);
  }
  // NeMo-Run SlurmExecutor keys users migrate with (one #SBATCH line each)
  add("cpus-per-gpu", r.int("cpus_per_gpu", 1)?.toString());
  add("gpus-per-task", r.sbatchString("gpus_per_task"));
  add("mem-per-gpu", r.sbatchString("mem_per_gpu"));
  add("mem-per-cpu", r.sbatchString("mem_per_cpu"));
  add("exclude", r.sbatchString("exclude"));
  add("nodelist", r.sbatchString("nodelist"));
  add("reservation", r.sbatchString("reservation"));
  add("comment", r.sbatchString("comment"));
  add("signal", readSignal(r));
  add("network", r.sbatchString("network"));
  const dependency = readDependency(r) ?? null;
  if (dependency?.includes("?") && spec.pipeline && spec.pipeline.stage > 0) {
    r.fail(
      "dependency",
      `${JSON.stringify(dependency)} ("any of") cannot be combined with the pipeline's afterok`,
      "use ',' (all of) in the profile's dependency",
    );
  }
  add("dependency", dependency ?? undefined);
  if (r.has("array")) {
    r.fail(
      "array",
      "job arrays are not supported for recipes: a recipe run is one job with one job dir, and N " +
        "array tasks would run the same script N times (e.g. publish N artifact versions)",
      "remove array; to sweep, submit one run per setting (e.g. a shell loop over key=value overrides)",
    );
  }
  add("chdir", jobDir);
  add("output", `${slurmPatternEscape(logsDir)}/sbatch-${slurmName}_%j.out`);
  add("open-mode", "append");
  add(retries > 0 || resumePolicy.autoResume ? "requeue" : "no-requeue", null);
  if (resumePolicy.signalBefore > 0) { // long runs: the checkpoint signal to the batch shell
    add("signal", `B:${resume.RESUME_SIGNAL}@${resumePolicy.signalBefore}`);
  }
  for (const d of readAdditionalParameters(r, p, directives)) directives.push(d);

  // ---- srun flags: --wait, --cpus-per-task (srun does not inherit it since Slurm 22.05), srun_args
  const srunWait = r.int("srun_wait", 0) ?? DEFAULT_SRUN_WAIT;
  const cpusPerTask = r.int("cpus_per_task", 1);
  const srunArgs = r.stringList("srun_args") ?? [];
  for (const a of srunArgs) {
    if (a === "" || CONTROL.test(a)) {
      r.fail("srun_args", `bad argument ${JSON.stringify(a)}: one non-empty line per list item`);
    }
  }
  const srunFlags = [
    ...(srunWait > 0 ? [`--wait=${srunWait}`] : []),
    ...(cpusPerTask !== undefined ? [`--cpus-per-task=${cpusPerTask}`] : []),
    ...srunArgs,
  ];

  // ---- template ----
  let template: SlurmJob["template"] = ray === null
    ? { name: "slurm.sub.j2", source: builtinTemplate, builtin: true }
    : { name: "ray.sub.j2", source: RAY_TEMPLATE, builtin: true };
  const templateKey = ray === null ? "sbatch_template" : "ray_template";
  const userTemplate = r.string(templateKey);
  if (userTemplate !== undefined && userTemplate !== "") {
    const expanded = userTemplate === "~" || userTemplate.startsWith("~/")
      ? path.join(home, userTemplate.slice(1))
      : userTemplate;
    const file = path.resolve(spec.templateBaseDir ?? Deno.cwd(), expanded);
    let source: string;
    try {
      source = Deno.readTextFileSync(file);
    } catch (err) {
      r.fail(
        templateKey,
        `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`,
        "the path is relative to the env.toml's directory",
      );
    }
    template = { name: file, source, builtin: false };
  }

  const containerEnvNames = [
    ...new Set([
      "PYTHONUNBUFFERED",
      "NEMOTRON_JOB_DIR",
      "NEMOTRON_ATTEMPT",
      ...(headNode ? ["NEMOTRON_HEAD_NODE"] : []),
      ...(resumePolicy.autoResume ? RESUME_ENV_NAMES : []),
      ...Object.keys(publicEnv),
      ...secretNames,
    ]),
  ].sort();

  const context = {
    generator: `nemotron ${denoJson.version}`,
    job_name: slurmName,
    job_key: key,
    display_name: spec.name,
    launch,
    mode: spec.mode,
    script_path: scriptPath,
    job_dir: jobDir,
    task_job_dir: taskJobDir,
    logs_dir: logsDir,
    log_prefix: `${slurmPatternEscape(logsDir)}/log-${slurmName}`,
    directives: directives.map((d) => ({ flag: d.flag, value: d.value })),
    retries,
    // long runs (lib/exec/resume.ts)
    auto_resume: resumePolicy.autoResume,
    max_restarts: resumePolicy.maxRestarts,
    signal_before: resumePolicy.signalBefore,
    resume_grace: resumePolicy.graceSeconds,
    checkpoint_dir: path.join(taskJobDir, resume.CHECKPOINT_DIR),
    finished_marker: path.join(taskJobDir, resume.FINISHED_MARKER),
    checkpoint_dir_name: resume.CHECKPOINT_DIR,
    finished_marker_name: resume.FINISHED_MARKER,
    nodes,
    ntasks_per_node: ntasksPerNode,
    srun_flags: srunFlags,
    secrets_file: secretsFile,
    env: Object.entries(publicEnv).map(([name, value]) => ({ name, value })),
    setup_lines: readSetupLines(r, p),
    head_node: headNode,
    container: image === null ? null : {
      image,
      mounts,
      workdir: taskCodeDir,
      env_names: containerEnvNames,
    },
    chdir: image === null ? taskCodeDir : null,
    task_argv: taskArgv,
    command: [...command],
    ray,
  };

  const job: SlurmJob = deepFreeze({
    name: spec.name,
    slurmName,
    key,
    profileName: spec.profileName ?? null,
    mode: spec.mode,
    launch,
    remoteJobDir,
    jobDir,
    scriptPath,
    manifestPath,
    logsDir,
    taskJobDir,
    taskCodeDir,
    secretsFile,
    jobDirGroup,
    secretNames,
    publicEnv,
    partition,
    nodes,
    ntasksPerNode,
    retries,
    resume: resumePolicy,
    image,
    command: [...command],
    taskArgv,
    directives,
    template,
    context,
    pipeline: spec.pipeline ? { ...spec.pipeline } : null,
    dependency,
    warnings,
  });
  SECRET_VALUES.set(job, Object.freeze({ ...secretEnv }));
  return job;
}

/** long runs: variables the script exports with auto_resume (see the template). */
const RESUME_ENV_NAMES = [
  "NEMOTRON_CHECKPOINT_DIR",
  "NEMOTRON_FINISHED_MARKER",
  "NEMOTRON_RESUME_SIGNAL",
  "NEMOTRON_RESUME_GRACE",
  "NEMOTRON_MAX_RESTARTS",
];

/**
 * long runs: `auto_resume`, `max_restarts`, `signal_before` (profile or `run.env`), checked
 * against each other, `retries` and the time limit.
 */
function readResumePolicy(r: ProfileReader, p: Profile, retries: number): resume.ResumePolicy {
  const auto = p.auto_resume;
  if (auto !== undefined && auto !== null && typeof auto !== "boolean") {
    r.fail("auto_resume", `must be true or false, got ${JSON.stringify(auto)}`);
  }
  const maxRestarts = r.int("max_restarts", 0);
  const hasSignal = r.has("signal_before");
  if (auto !== true) {
    for (const key of ["max_restarts", "signal_before"]) {
      if (r.has(key)) {
        r.fail(key, "only applies with auto_resume = true", "add auto_resume = true, or remove it");
      }
    }
    return resume.NO_RESUME;
  }
  if (retries > 0) {
    r.fail(
      "retries",
      "cannot be combined with auto_resume (max_restarts is its restart budget)",
      `remove retries and set max_restarts = ${retries}`,
    );
  }
  let signalBefore = resume.DEFAULT_SIGNAL_BEFORE;
  if (hasSignal) {
    const v = resume.parseDuration(p.signal_before);
    if (v === undefined) {
      r.fail(
        "signal_before",
        `must be seconds or a duration such as "300s", "5m", got ${
          JSON.stringify(p.signal_before)
        }`,
      );
    }
    if (v !== 0 && (v < resume.MIN_SIGNAL_BEFORE || v > resume.MAX_SIGNAL_BEFORE)) {
      r.fail(
        "signal_before",
        `must be 0 (no signal) or between ${resume.MIN_SIGNAL_BEFORE} and ${resume.MAX_SIGNAL_BEFORE} seconds, got ${v}`,
        `the script gets signal_before - ${resume.REQUEUE_MARGIN} s to checkpoint`,
      );
    }
    signalBefore = v;
  }
  if (signalBefore > 0 && r.has("signal")) {
    r.fail(
      "signal",
      `cannot be combined with auto_resume, which asks for --signal=B:USR1@${signalBefore} (signal_before)`,
      "remove signal, or set signal_before = 0 to manage your own signal",
    );
  }
  const time = r.sbatchString("time") ?? DEFAULT_TIME;
  const limit = resume.slurmTimeSeconds(time);
  if (signalBefore > 0 && limit !== undefined && signalBefore >= limit) {
    r.fail(
      hasSignal ? "signal_before" : "time",
      `signal_before (${signalBefore} s) must be shorter than the time limit ${
        JSON.stringify(time)
      } (${limit} s)`,
      hasSignal
        ? "lower signal_before or raise time"
        : `the default signal_before is ${resume.DEFAULT_SIGNAL_BEFORE} s; set a smaller one`,
    );
  }
  return Object.freeze({
    autoResume: true,
    maxRestarts: maxRestarts ?? resume.DEFAULT_MAX_RESTARTS,
    signalBefore,
    graceSeconds: resume.graceFor(signalBefore),
  });
}

const SIGNAL = /^(?:(?:R|B|RB|BR):)?(?:SIG)?[A-Z0-9]+(?:@\d+)?$/i;
const DEPENDENCY_TYPES = [
  "after",
  "afterany",
  "afterburstbuffer",
  "aftercorr",
  "afternotok",
  "afterok",
];
const DEPENDENCY_ITEM = new RegExp(
  `^(?:singleton|(?:${DEPENDENCY_TYPES.join("|")})(?::\\d+(?:_\\d+)?(?:\\+\\d+)?)+)$`,
);

/** `signal`: sbatch's `[{R|B}:]SIG[@TIME]`, e.g. `B:USR1@300`. */
function readSignal(r: ProfileReader): string | undefined {
  const s = r.sbatchString("signal");
  if (s !== undefined && !SIGNAL.test(s)) {
    r.fail(
      "signal",
      `${JSON.stringify(s)} is not [R:|B:]SIGNAL[@SECONDS]`,
      'e.g. signal = "B:USR1@300"',
    );
  }
  return s;
}

/** `dependency`: `TYPE:ID[:ID…]` items joined by `,` (all) or `?` (any), or `singleton`. */
function readDependency(r: ProfileReader): string | undefined {
  const s = r.sbatchString("dependency");
  if (s === undefined) return undefined;
  const items = s.split(/[,?]/);
  if (s.includes(",") && s.includes("?")) {
    r.fail("dependency", "mixes ',' (all of) and '?' (any of); sbatch takes one of them");
  }
  for (const item of items) {
    if (!DEPENDENCY_ITEM.test(item)) {
      r.fail(
        "dependency",
        `${JSON.stringify(item)} is not TYPE:JOBID[:JOBID…] (TYPE one of ${
          DEPENDENCY_TYPES.join(", ")
        }) or singleton`,
        'e.g. dependency = "afterany:123"',
      );
    }
  }
  return s;
}

/** Flags nemotron itself sets or manages; `additional_parameters` may not set them. */
const MANAGED_FLAGS = [
  "job-name",
  "output",
  "error",
  "chdir",
  "open-mode",
  "requeue",
  "no-requeue",
  "nodes",
  "ntasks-per-node",
  "ntasks",
  "array",
  "parsable",
  "wrap",
];

/**
 * `additional_parameters`: a table of extra `#SBATCH` flags (`mail_type = "END"` → `--mail-type=END`;
 * `true` → a bare flag, `false` → nothing). Names are checked, values quoted like every other.
 */
function readAdditionalParameters(
  r: ProfileReader,
  p: Profile,
  existing: readonly SbatchDirective[],
): SbatchDirective[] {
  const v = p.additional_parameters;
  if (v === undefined || v === null) return [];
  if (typeof v !== "object" || Array.isArray(v) || v instanceof Date) {
    r.fail("additional_parameters", 'must be a table of sbatch flags, e.g. { mail_type = "END" }');
  }
  const out: SbatchDirective[] = [];
  for (const [name, value] of Object.entries(v as Record<string, unknown>).sort()) {
    const flag = name.replace(/^-+/, "").replaceAll("_", "-").toLowerCase();
    if (!/^[a-z][a-z0-9-]*$/.test(flag)) {
      r.fail("additional_parameters", `${JSON.stringify(name)} is not an sbatch option name`);
    }
    if (MANAGED_FLAGS.includes(flag)) {
      r.fail("additional_parameters", `--${flag} is set by nemotron and cannot be overridden`);
    }
    const profileKey = flag.replaceAll("-", "_");
    if (existing.some((d) => d.flag === flag)) {
      r.fail(
        "additional_parameters",
        `--${flag} is already set (by the profile key ${profileKey} or nemotron)`,
        `set ${profileKey} in the profile instead`,
      );
    }
    if (value === false) continue;
    if (value === true) {
      out.push({ flag, value: null });
      continue;
    }
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "bigint") {
      r.fail("additional_parameters", `${name}: must be a string, number or true/false`);
    }
    const s = String(value);
    if (s === "" || CONTROL.test(s) || s.includes("\\")) {
      r.fail(
        "additional_parameters",
        `${name}: must be one non-empty line without control characters or backslashes`,
      );
    }
    out.push({ flag, value: s });
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Render the job's sbatch script (the builtin template or the profile's `sbatch_template`). Async
 * because the template engine is loaded on first use. Pure: writes nothing.
 */
export async function renderSbatch(job: SlurmJob): Promise<string> {
  return await renderJinja(job.template.name, job.template.source, job.context);
}

/**
 * Locate profile keys in env.toml for error messages: the first table on the profile's `extends`
 * chain that sets the key. Pass the result as `SlurmJobSpec.locate`.
 */
export function profileLocator(
  env: EnvFile,
  profileName: string,
): (key: string) => SourceLocation | undefined {
  const chain = extendsChain(env, profileName);
  return (key) => {
    for (const table of chain) {
      const line = locateKey(env.lines, table, key);
      if (line !== undefined) return { file: env.path, line };
    }
    return { file: env.path };
  };
}
