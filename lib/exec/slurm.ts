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
import { type EnvFile, extendsChain } from "../env_toml.ts";
import { locateKey } from "../toml.ts";

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
  readonly image: string | null;
  readonly command: readonly string[];
  /** The argv srun runs in each task (launcher wrapping applied). */
  readonly taskArgv: readonly string[];
  readonly directives: readonly SbatchDirective[];
  readonly template: { readonly name: string; readonly source: string; readonly builtin: boolean };
  /** The template context (plain data, JSON-serialisable). */
  readonly context: Readonly<Record<string, unknown>>;
  readonly pipeline: PipelineRef | null;
  /** Notes for the user (e.g. mounts ignored in bare-metal mode). */
  readonly warnings: readonly string[];
}

/** Secret values of a job, kept out of the frozen (printable, serialisable) job object. */
const SECRET_VALUES = new WeakMap<SlurmJob, Readonly<Record<string, string>>>();

/** The secret env values of `job` (for writing the private env file only). */
export function secretValues(job: SlurmJob): Readonly<Record<string, string>> {
  return SECRET_VALUES.get(job) ?? {};
}

/** Profile keys this module reads (others are left to other executors and commands). */
export const SLURM_PROFILE_KEYS = [
  "account",
  "partition",
  "run_partition",
  "batch_partition",
  "time",
  "nodes",
  "gpus_per_node",
  "ntasks_per_node",
  "nproc_per_node",
  "cpus_per_task",
  "mem",
  "exclusive",
  "gres",
  "qos",
  "constraint",
  "mounts",
  "lustre_mount",
  "env_vars",
  "startup_commands",
  "setup_lines",
  "container_image",
  "remote_job_dir",
  "retries",
  "sbatch_template",
  "rdzv_port",
  "tunnel",
  "host",
  "user",
  "port",
  "identity",
  "job_dir_group",
] as const;

const DEFAULT_TIME = "04:00:00";
const DEFAULT_LUSTRE_MOUNT = "/lustre:/lustre";
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

  // ---- resources ----
  const nodes = r.int("nodes", 1) ?? spec.resources?.nodes ?? 1;
  let gpusPerNode: number | "gpu" | undefined = r.int("gpus_per_node", 0);
  if (gpusPerNode === undefined) gpusPerNode = spec.resources?.gpus_per_node;
  if (gpusPerNode === 0) gpusPerNode = undefined;
  const profileTasks = r.int("ntasks_per_node", 1);
  const nprocPerNode = r.int("nproc_per_node", 1) ?? profileTasks ?? gpusPerNode ?? 1;
  let launch: Launch = spec.launch;
  if (launch === "ray") {
    if (nodes > 1) {
      r.fail(
        "nodes",
        `launch = "ray" on ${nodes} Slurm nodes is not supported yet (a single-node job runs the command directly and Ray starts in-process)`,
        "set nodes = 1 for this recipe",
      );
    }
    launch = "direct";
  }
  const ntasksPerNode = launch === "torchrun" ? 1 : profileTasks ?? 1;
  const retries = r.int("retries", 0) ?? 0;
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
  const warnings: string[] = [];

  // ---- environment: public exports vs. the private file ----
  const envAll: Record<string, string> = { ...(spec.env ?? {}) };
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
  const lustre = r.string("lustre_mount") ?? DEFAULT_LUSTRE_MOUNT;
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
  if (launch === "torchrun" && nodes > 1) {
    const inner =
      `${startupPrefix}exec torchrun --nnodes="$SLURM_NNODES" --node-rank="$SLURM_NODEID"` +
      ` --nproc-per-node=${shellQuote(String(nprocPerNode))} --rdzv-backend=c10d` +
      ` --rdzv-endpoint="$NEMOTRON_HEAD_NODE":${rdzvPort} --rdzv-id="$SLURM_JOB_ID" "$@"`;
    taskArgv = ["bash", "-c", inner, "nemotron-torchrun", ...spec.command];
  } else {
    const argv = launch === "torchrun"
      ? [
        "torchrun",
        "--standalone",
        "--nnodes=1",
        `--nproc-per-node=${nprocPerNode}`,
        ...spec.command,
      ]
      : [...spec.command];
    taskArgv = startup.length
      ? ["bash", "-c", `${startupPrefix}exec "$@"`, "nemotron-task", ...argv]
      : argv;
  }

  // ---- #SBATCH directives, in a fixed order ----
  const partition = (spec.mode === "run" ? r.sbatchString("run_partition") : undefined) ??
    (spec.mode === "batch" ? r.sbatchString("batch_partition") : undefined) ??
    r.sbatchString("partition") ?? null;
  const directives: SbatchDirective[] = [];
  const add = (flag: string, value: string | null | undefined) => {
    if (value !== undefined) directives.push({ flag, value });
  };
  add("job-name", slurmName);
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
  add("chdir", jobDir);
  add("output", `${slurmPatternEscape(logsDir)}/sbatch-${slurmName}_%j.out`);
  add("open-mode", "append");
  add(retries > 0 ? "requeue" : "no-requeue", null);

  // ---- template ----
  let template: SlurmJob["template"] = {
    name: "slurm.sub.j2",
    source: builtinTemplate,
    builtin: true,
  };
  const userTemplate = r.string("sbatch_template");
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
        "sbatch_template",
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
    nodes,
    ntasks_per_node: ntasksPerNode,
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
    command: [...spec.command],
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
    image,
    command: [...spec.command],
    taskArgv,
    directives,
    template,
    context,
    pipeline: spec.pipeline ? { ...spec.pipeline } : null,
    warnings,
  });
  SECRET_VALUES.set(job, Object.freeze({ ...secretEnv }));
  return job;
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
