/**
 * The job directory on the shared filesystem, so any login node can find and inspect a job:
 *
 *   <remote_job_dir>/jobs/<key>/
 *     sbatch.sh        the rendered script (resubmittable with plain `sbatch`)
 *     job.json         manifest: ids, names, command, resources, attempts, state (no secret values)
 *     attempts.tsv     one `start`/`end` line per attempt, written by the script itself
 *     configs/ code/   written by the caller (job/train config, code package)
 *     logs/sbatch-<name>_<jobid>.out         the batch shell's log
 *     logs/log-<name>_<jobid>_<attempt>.out  the task output of each attempt
 *   <remote_job_dir>/.nemotron-secrets-<uid>/<32 hex>.env   (dir 0700, file 0600) secret env values
 *
 * Writes that matter are atomic (temp file in the same directory, then rename).
 *
 * On a shared filesystem other users must not be able to swap or edit a job dir between its
 * packaging and the job's start (that would run their code as you). So, like OpenSSH's
 * StrictModes, `remote_job_dir` and every directory above it must be owned by you or root and not
 * writable by group or others unless sticky (`/tmp`-style; then the next directory must be yours
 * or root's), and job dirs are created 0700 (0750 with profile `job_dir_group`).
 */
import * as path from "../path.ts";
import { writeFileAtomic } from "../atomic.ts";
import { RuntimeFailure, UsageError } from "../errors.ts";
import { shellQuote } from "../shell.ts";
import { type PipelineRef, secretsDirName, secretValues, type SlurmJob } from "./slurm.ts";
import { type PathProblem, untrustedPathComponent } from "../trusted_path.ts";
import { tunnelJobOf } from "./ssh.ts";
export { type PathProblem, untrustedPathComponent } from "../trusted_path.ts";

/** Why other users could swap `remote_job_dir` or what nemotron keeps in it, or undefined. */
export function remoteJobDirProblem(dir: string): PathProblem | undefined {
  for (const sub of ["jobs", "git-cache", secretsDirName()]) {
    const problem = untrustedPathComponent(path.join(dir, sub));
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Refuse (exit 2) a `remote_job_dir` that other users could swap (see `untrustedPathComponent`):
 * the directory itself and the ones nemotron uses inside it (`jobs/`, `git-cache/` and the
 * per-user secrets dir), so a `jobs/` someone else created in a shared `remote_job_dir` is refused
 * too. `what` names the setting in the message.
 */
export function checkRemoteJobDir(dir: string, what = "remote_job_dir"): void {
  const problem = remoteJobDirProblem(dir);
  if (problem) {
    throw new UsageError(
      `${what} ${dir} is not safe: ${problem.dir}: ${problem.reason}`,
      {
        hint:
          `another user could replace your job dir there and run code as you. ${problem.fix}, and point ${what} there`,
      },
    );
  }
}

/** The gid of group `name` (a number is taken as is), via `getent group`. */
function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  let out: Deno.CommandOutput | undefined;
  try {
    out = new Deno.Command("getent", { args: ["group", name], stdout: "piped", stderr: "null" })
      .outputSync();
  } catch { /* no getent */ }
  const gid = out?.success ? Number(new TextDecoder().decode(out.stdout).split(":")[2]) : NaN;
  if (!Number.isInteger(gid)) {
    throw new UsageError(`job_dir_group: no group '${name}' on this machine`, {
      hint: "`id -Gn` lists your groups; remove job_dir_group to keep job dirs private (0700)",
    });
  }
  return gid;
}

/** One attempt of a job as recorded by the script in attempts.tsv. */
export interface AttemptRecord {
  readonly attempt: number;
  readonly slurmJobId: string;
  readonly startedAt: string | null;
  readonly endedAt: string | null;
  /** Exit code of the attempt's srun; null while it runs (or if it was killed). */
  readonly exitCode: number | null;
  readonly nodes: string;
  /**
   * long runs: how the script saw the attempt end (5th field of its `end` line): `exit`,
   * `timelimit` (the checkpoint signal came first), `finished` (marker present, nothing ran),
   * `budget` (max_restarts used up, nothing ran); null for older records or no `end` line.
   */
  readonly reason: string | null;
}

/** The job.json manifest. */
export interface JobManifest {
  readonly format: "nemotron-job/1";
  readonly key: string;
  readonly name: string;
  readonly slurm_name: string;
  readonly profile: string | null;
  readonly mode: "run" | "batch";
  readonly launch: string;
  readonly created_at: string;
  readonly submit_host: string;
  readonly user: string;
  readonly job_dir: string;
  readonly script: string;
  readonly logs_dir: string;
  readonly command: readonly string[];
  readonly task_argv: readonly string[];
  readonly nodes: number;
  readonly ntasks_per_node: number;
  readonly partition: string | null;
  readonly image: string | null;
  readonly retries: number;
  /** long runs: the auto-resume policy (lib/exec/resume.ts); absent in older manifests. */
  readonly auto_resume?: boolean;
  readonly max_restarts?: number;
  readonly signal_before?: number;
  readonly env_names: readonly string[];
  readonly secret_names: readonly string[];
  readonly secrets_file: string | null;
  readonly pipeline: PipelineRef | null;
  readonly dependency: string | null;
  readonly slurm_job_id: string | null;
  readonly submitted_at: string | null;
  readonly submit_error: string | null;
  readonly state: string;
  readonly exit_code: number | null;
  readonly attempts: readonly AttemptRecord[];
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/** The manifest of a job that has been prepared but not yet submitted. */
export function initialManifest(job: SlurmJob): JobManifest {
  return {
    format: "nemotron-job/1",
    key: job.key,
    name: job.name,
    slurm_name: job.slurmName,
    profile: job.profileName,
    mode: job.mode,
    launch: job.launch,
    created_at: new Date().toISOString(),
    submit_host: hostname(),
    user: Deno.env.get("USER") ?? Deno.env.get("LOGNAME") ?? String(Deno.uid?.() ?? ""),
    job_dir: job.jobDir,
    script: path.basename(job.scriptPath),
    logs_dir: path.basename(job.logsDir),
    command: job.command,
    task_argv: job.taskArgv,
    nodes: job.nodes,
    ntasks_per_node: job.ntasksPerNode,
    partition: job.partition,
    image: job.image,
    retries: job.retries,
    auto_resume: job.resume.autoResume, // long runs
    max_restarts: job.resume.maxRestarts,
    signal_before: job.resume.signalBefore,
    env_names: Object.keys(job.publicEnv).sort(),
    secret_names: job.secretNames,
    secrets_file: job.secretsFile,
    pipeline: job.pipeline,
    dependency: null,
    slurm_job_id: null,
    submitted_at: null,
    submit_error: null,
    state: "PREPARED",
    exit_code: null,
    attempts: [],
  };
}

/** Paths of a prepared job dir. */
export interface PreparedJobDir {
  readonly jobDir: string;
  readonly scriptPath: string;
  readonly manifestPath: string;
  readonly configsDir: string;
  readonly codeDir: string;
  readonly logsDir: string;
  readonly secretsFile: string | null;
}

/**
 * Create the job dir with the rendered script, `job.json`, empty `configs/`, `code/` and `logs/`,
 * and, when the job has secrets, the private env file (dir 0700, file 0600, created exclusively).
 * Fails if the job dir already exists. The caller then writes configs and code, and submits.
 */
export function prepareJobDir(job: SlurmJob, script: string): PreparedJobDir {
  // ssh tunnel (issue 12): built in a private local staging dir, copied to the cluster on submit.
  if (tunnelJobOf(job)) return prepareStagedJobDir(job, script);
  checkRemoteJobDir(job.remoteJobDir);
  const gid = job.jobDirGroup === null ? null : groupId(job.jobDirGroup);
  const mode = gid === null ? 0o700 : 0o750;
  try {
    Deno.mkdirSync(path.dirname(job.jobDir), { recursive: true, mode });
    Deno.mkdirSync(job.jobDir, { mode }); // exclusive: fails if anything is there already
  } catch (err) {
    throw new RuntimeFailure(`cannot create the job dir ${job.jobDir}: ${errMessage(err)}`, {
      hint: "check that remote_job_dir is on a writable shared filesystem (`nemotron doctor`)",
      cause: err,
    });
  }
  const configsDir = path.join(job.jobDir, "configs");
  const codeDir = path.join(job.jobDir, "code");
  try {
    if (gid !== null) Deno.chownSync(job.jobDir, null, gid);
    Deno.chmodSync(job.jobDir, mode); // the umask may have taken bits away (0750)
    for (const d of [configsDir, codeDir, job.logsDir]) Deno.mkdirSync(d, { recursive: true });
    writeFileAtomic(job.scriptPath, script, 0o755);
    writeFileAtomic(job.manifestPath, JSON.stringify(initialManifest(job), null, 2) + "\n");
    if (job.secretsFile !== null) writeSecretsFile(job.secretsFile, secretValues(job));
  } catch (err) {
    // Leave nothing half-made behind: the job dir and the private env file go.
    try {
      Deno.removeSync(job.jobDir, { recursive: true });
    } catch { /* best effort */ }
    if (err instanceof UsageError || err instanceof RuntimeFailure) throw err;
    throw new RuntimeFailure(`cannot write the job dir ${job.jobDir}: ${errMessage(err)}`, {
      hint: "check free space and permissions of remote_job_dir (`nemotron doctor`)",
      cause: err,
    });
  }
  return {
    jobDir: job.jobDir,
    scriptPath: job.scriptPath,
    manifestPath: job.manifestPath,
    configsDir,
    codeDir,
    logsDir: job.logsDir,
    secretsFile: job.secretsFile,
  };
}

// ---- ssh tunnel (issue 12) ----
/**
 * `prepareJobDir` for a tunnel job: the same files, written into the private local staging dir
 * instead of the job dir on the cluster — but never the secrets file (that goes straight to the
 * cluster from stdin at submit time).
 */
function prepareStagedJobDir(job: SlurmJob, script: string): PreparedJobDir {
  const t = tunnelJobOf(job)!;
  const root = t.stageDir;
  const rel = (p: string) => path.join(root, path.relative(job.jobDir, p));
  try {
    Deno.mkdirSync(path.dirname(root), { recursive: true, mode: 0o700 });
    Deno.mkdirSync(root, { mode: 0o700 });
  } catch (err) {
    throw new RuntimeFailure(`cannot create the staging dir ${root}: ${String(err)}`);
  }
  const configsDir = path.join(root, "configs");
  const codeDir = path.join(root, "code");
  for (const d of [configsDir, codeDir, rel(job.logsDir)]) Deno.mkdirSync(d, { recursive: true });
  writeFileAtomic(rel(job.scriptPath), script, 0o755);
  writeFileAtomic(rel(job.manifestPath), JSON.stringify(initialManifest(job), null, 2) + "\n");
  return {
    jobDir: root,
    scriptPath: rel(job.scriptPath),
    manifestPath: rel(job.manifestPath),
    configsDir,
    codeDir,
    logsDir: rel(job.logsDir),
    secretsFile: job.secretsFile,
  };
}

// ----

/**
 * Write the private env file: `export NAME=<quoted value>` lines, file 0600 created exclusively,
 * in the per-user dir `.nemotron-secrets-<uid>` (0700). That dir must be a real directory of
 * yours; anything else there (another user's dir, a symlink) is refused, naming it.
 */
export function writeSecretsFile(file: string, values: Readonly<Record<string, string>>): void {
  const dir = path.dirname(file);
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const st = Deno.lstatSync(dir);
  const uid = Deno.uid();
  if (!st.isDirectory || (uid !== null && st.uid !== uid)) {
    throw new RuntimeFailure(
      `${dir} is not your private secrets directory (${
        st.isDirectory ? `it belongs to uid ${st.uid}` : "not a directory"
      })`,
      {
        hint: `nemotron keeps secret env values there; remove it (or ask its owner to) and retry`,
      },
    );
  }
  if (((st.mode ?? 0) & 0o077) !== 0) Deno.chmodSync(dir, 0o700);
  const text = Object.keys(values).sort().map((k) => `export ${k}=${shellQuote(values[k])}\n`)
    .join("");
  const f = Deno.openSync(file, { createNew: true, write: true, mode: 0o600 });
  try {
    Deno.chmodSync(file, 0o600);
    f.writeSync(new TextEncoder().encode(text));
  } finally {
    f.close();
  }
}

/**
 * Whether `file` is where nemotron puts the private env file of the job in `jobDir`:
 * `<remote_job_dir>/.nemotron-secrets-<your uid>/<32 hex>.env` with `jobDir` =
 * `<remote_job_dir>/jobs/<key>`. Nothing else is ever deleted as a "secrets file".
 */
export function isOwnSecretsFilePath(file: string, jobDir: string): boolean {
  const dir = path.dirname(file);
  // `.nemotron-secrets` is where jobs submitted before the per-user dir kept theirs.
  return /^[0-9a-f]{32}\.env$/.test(path.basename(file)) &&
    [secretsDirName(), ".nemotron-secrets"].includes(path.basename(dir)) &&
    path.dirname(dir) === path.dirname(path.dirname(path.resolve(jobDir))) &&
    path.resolve(file) === file;
}

/**
 * Remove a job's private env file if it is still there (after the job ended or failed to submit).
 * Only a file at the job's own secrets path (`isOwnSecretsFilePath`) that is a regular file of
 * yours in a directory of yours is removed; anything else is left alone.
 */
export function removeSecretsFile(file: string | null, jobDir: string): void {
  if (file === null || !isOwnSecretsFilePath(file, jobDir)) return;
  const uid = Deno.uid();
  try {
    const d = Deno.lstatSync(path.dirname(file));
    const f = Deno.lstatSync(file);
    if (!d.isDirectory || !f.isFile || (uid !== null && (d.uid !== uid || f.uid !== uid))) return;
    Deno.removeSync(file);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Read a job dir's manifest; undefined when there is none. */
export function readManifest(jobDir: string): JobManifest | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(path.join(jobDir, "job.json"));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  return JSON.parse(text) as JobManifest;
}

/** Update fields of a job dir's manifest (atomic read-modify-write). */
export function updateManifest(jobDir: string, patch: Partial<JobManifest>): JobManifest {
  const current = readManifest(jobDir);
  if (!current) throw new RuntimeFailure(`no job.json in ${jobDir}`);
  const next = { ...current, ...patch };
  writeFileAtomic(path.join(jobDir, "job.json"), JSON.stringify(next, null, 2) + "\n");
  return next;
}

/** The attempts the script recorded in `attempts.tsv` (latest record per attempt number). */
export function readAttempts(jobDir: string): AttemptRecord[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path.join(jobDir, "attempts.tsv"));
  } catch {
    return [];
  }
  return parseAttempts(text);
}

/** The attempts in the text of an `attempts.tsv` (latest record per attempt number). */
export function parseAttempts(text: string): AttemptRecord[] {
  const byAttempt = new Map<number, AttemptRecord>();
  const iso = (s: string | undefined) =>
    s && /^\d+$/.test(s) ? new Date(Number(s) * 1000).toISOString() : null;
  for (const line of text.split("\n")) {
    const f = line.split("\t");
    const n = Number(f[1]);
    if (!Number.isInteger(n)) continue;
    if (f[0] === "start") {
      byAttempt.set(n, {
        attempt: n,
        slurmJobId: f[2] ?? "",
        startedAt: iso(f[3]),
        endedAt: null,
        exitCode: null,
        nodes: f[4] ?? "",
        reason: null,
      });
    } else if (f[0] === "end") {
      const prev = byAttempt.get(n);
      const rc = Number(f[2]);
      byAttempt.set(n, {
        attempt: n,
        slurmJobId: prev?.slurmJobId ?? "",
        startedAt: prev?.startedAt ?? null,
        endedAt: iso(f[3]),
        exitCode: f[2] !== "" && Number.isInteger(rc) ? rc : null,
        nodes: prev?.nodes ?? "",
        reason: f[4] || null,
      });
    }
  }
  return [...byAttempt.values()].sort((a, b) => a.attempt - b.attempt);
}

/** The task log of one attempt: `<jobDir>/logs/log-<slurm name>_<job id>_<attempt>.out`. */
export function attemptLogPath(
  jobDir: string,
  slurmName: string,
  slurmJobId: string,
  attempt: number,
): string {
  return path.join(jobDir, "logs", `log-${slurmName}_${slurmJobId}_${attempt}.out`);
}

/** The batch shell's log: `<jobDir>/logs/sbatch-<slurm name>_<job id>.out`. */
export function sbatchLogPath(jobDir: string, slurmName: string, slurmJobId: string): string {
  return path.join(jobDir, "logs", `sbatch-${slurmName}_${slurmJobId}.out`);
}

/**
 * Attempt numbers that have a task log, ascending: on disk, or in the listing `list` gives (of a
 * job dir on a cluster behind an ssh tunnel).
 */
export function attemptsWithLogs(
  jobDir: string,
  slurmName: string,
  slurmJobId: string,
  list: (dir: string) => readonly string[] = listNames,
): number[] {
  const prefix = `log-${slurmName}_${slurmJobId}_`;
  const out: number[] = [];
  for (const name of list(path.join(jobDir, "logs"))) {
    if (!name.startsWith(prefix) || !name.endsWith(".out")) continue;
    const n = Number(name.slice(prefix.length, -4));
    if (Number.isInteger(n) && n >= 0) out.push(n);
  }
  return out.sort((a, b) => a - b);
}

function listNames(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch {
    return []; // no logs yet
  }
}
