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
 *   <remote_job_dir>/.nemotron-secrets/<random>.env   (dir 0700, file 0600) secret env values
 *
 * Writes that matter are atomic (temp file in the same directory, then rename).
 */
import * as path from "../path.ts";
import { writeFileAtomic } from "../atomic.ts";
import { RuntimeFailure } from "../errors.ts";
import { shellQuote } from "../shell.ts";
import { type PipelineRef, secretValues, type SlurmJob } from "./slurm.ts";

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
  try {
    Deno.mkdirSync(path.dirname(job.jobDir), { recursive: true });
    Deno.mkdirSync(job.jobDir);
  } catch (err) {
    throw new RuntimeFailure(`cannot create the job dir ${job.jobDir}: ${errMessage(err)}`, {
      hint: "check that remote_job_dir is on a writable shared filesystem (`nemotron doctor`)",
      cause: err,
    });
  }
  const configsDir = path.join(job.jobDir, "configs");
  const codeDir = path.join(job.jobDir, "code");
  for (const d of [configsDir, codeDir, job.logsDir]) Deno.mkdirSync(d, { recursive: true });
  writeFileAtomic(job.scriptPath, script, 0o755);
  writeFileAtomic(job.manifestPath, JSON.stringify(initialManifest(job), null, 2) + "\n");
  if (job.secretsFile !== null) writeSecretsFile(job.secretsFile, secretValues(job));
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

/** Write the private env file: `export NAME=<quoted value>` lines, dir 0700, file 0600. */
export function writeSecretsFile(file: string, values: Readonly<Record<string, string>>): void {
  const dir = path.dirname(file);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  Deno.chmodSync(dir, 0o700);
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

/** Remove a job's private env file if it is still there (after the job ended or failed to submit). */
export function removeSecretsFile(file: string | null): void {
  if (file === null) return;
  try {
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

/** Attempt numbers that have a task log on disk, ascending. */
export function attemptsWithLogs(jobDir: string, slurmName: string, slurmJobId: string): number[] {
  const prefix = `log-${slurmName}_${slurmJobId}_`;
  const out: number[] = [];
  try {
    for (const e of Deno.readDirSync(path.join(jobDir, "logs"))) {
      if (!e.name.startsWith(prefix) || !e.name.endsWith(".out")) continue;
      const n = Number(e.name.slice(prefix.length, -4));
      if (Number.isInteger(n) && n >= 0) out.push(n);
    }
  } catch { /* no logs yet */ }
  return out.sort((a, b) => a - b);
}
