/**
 * Submitting prepared jobs with the local `sbatch --parsable` and recording them: in the job dir's
 * `job.json` and in the job store. A failed submission leaves the job dir (with its script) for
 * inspection, removes the private env file, and writes no store row.
 */
import { RuntimeFailure } from "../errors.ts";
import { type JobRecord, JobStore } from "../jobs/store.ts";
import { removeSecretsFile, updateManifest } from "./job_dir.ts";
import type { SlurmJob } from "./slurm.ts";
import { type CommandRunner, runCommand } from "./slurm_state.ts";

/** Options of `submitSbatch`. */
export interface SubmitOptions {
  /** Full dependency expression, e.g. `afterok:123:124`. */
  readonly dependency?: string;
  /** Waits between attempts when slurmctld is unreachable (default 1, 2, 4, 8 s). */
  readonly retryDelaysMs?: readonly number[];
  /** Called before each wait, e.g. to tell the user what is going on. */
  readonly onRetry?: (attempt: number, delayMs: number, error: string) => void;
  readonly run?: CommandRunner;
}

const TRANSIENT = [
  /Unable to contact slurm controller/i,
  /Socket timed out/i,
  /Zero Bytes were transmitted/i,
  /temporarily unable to accept job/i,
  /Resource temporarily unavailable/i,
  /Connection refused/i,
  /Slurm backup controller in standby mode/i,
];

/** Hints for sbatch's common permanent errors. */
function hintFor(stderr: string): string {
  if (/invalid partition/i.test(stderr)) {
    return "check partition / run_partition / batch_partition in the profile; `sinfo -s` lists the partitions";
  }
  if (/invalid account/i.test(stderr)) {
    return "check `account` in the profile; `sacctmgr show assoc user=$USER` lists yours";
  }
  if (/qos/i.test(stderr)) return "check `qos` in the profile";
  if (/time limit/i.test(stderr)) return "lower `time` in the profile or pick another partition";
  if (/node configuration is not available|Requested node configuration/i.test(stderr)) {
    return "the partition has no nodes with the requested nodes/GPUs/memory; check the profile's resources";
  }
  return "the script is kept in the job dir; `sbatch --test-only SCRIPT` checks it against the cluster";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Submit `scriptPath` with `sbatch --parsable [--dependency=…]` and return the Slurm job id.
 * Retries with backoff while slurmctld is unreachable; any other rejection (bad partition,
 * account, resources) is a RuntimeFailure with sbatch's message and a hint, at once.
 */
export async function submitSbatch(scriptPath: string, opts: SubmitOptions = {}): Promise<string> {
  const run = opts.run ?? runCommand;
  const delays = opts.retryDelaysMs ?? [1000, 2000, 4000, 8000];
  const args = ["--parsable"];
  if (opts.dependency) args.push(`--dependency=${opts.dependency}`);
  args.push(scriptPath);
  let lastError = "";
  for (let attempt = 0;; attempt++) {
    const out = await run("sbatch", args);
    if (out.code === 0) {
      const m = /^(\d+)(?:;\S+)?\s*$/.exec(out.stdout.trim().split("\n").pop() ?? "");
      if (!m) {
        throw new RuntimeFailure(`sbatch printed no job id: ${JSON.stringify(out.stdout.trim())}`);
      }
      return m[1];
    }
    lastError = (out.stderr.trim() || out.stdout.trim() || `exit code ${out.code}`)
      .replace(/^sbatch: error: /gm, "");
    const transient = TRANSIENT.some((re) => re.test(lastError));
    if (!transient) {
      throw new RuntimeFailure(`sbatch rejected ${scriptPath}: ${lastError}`, {
        hint: hintFor(lastError),
      });
    }
    if (attempt >= delays.length) break;
    opts.onRetry?.(attempt + 1, delays[attempt], lastError);
    await sleep(delays[attempt]);
  }
  throw new RuntimeFailure(
    `cannot reach the Slurm controller after ${delays.length + 1} tries: ${lastError}`,
    {
      hint:
        "slurmctld is down or unreachable; `scontrol ping` shows its state. The job dir and script are kept; resubmit later",
    },
  );
}

/** A submitted job, as printed by `--batch` / `--json`. */
export interface SubmittedJob {
  readonly slurm_job_id: string;
  readonly name: string;
  readonly key: string;
  readonly job_dir: string;
  readonly script: string;
  /** The pipeline id when the job is a pipeline stage. */
  readonly pipeline?: string;
  /** The job store's cluster of a job submitted through an ssh tunnel (`ssh://…`). */
  readonly cluster?: string;
}

/** Options of `submitJob`. */
export interface SubmitJobOptions extends Omit<SubmitOptions, "dependency"> {
  /** Slurm ids this job must wait for (`afterok`). */
  readonly after?: readonly string[];
  /** Store to record the job in; default: opened at `$NEMOTRON_HOME/jobs.db`. */
  readonly store?: JobStore;
  /** Slurm cluster name to record; default: looked up once per process. */
  readonly cluster?: string;
}

let clusterCache: string | undefined;

/** The Slurm cluster name (`scontrol show config` ClusterName), cached per process. */
export async function clusterName(run: CommandRunner = runCommand): Promise<string> {
  if (clusterCache !== undefined) return clusterCache;
  const conf = Deno.env.get("SLURM_CONF") ?? "/etc/slurm/slurm.conf";
  try {
    const m = /^\s*ClusterName\s*=\s*(\S+)/im.exec(Deno.readTextFileSync(conf));
    if (m) return clusterCache = m[1];
  } catch { /* configless Slurm: ask slurmctld */ }
  const out = await run("scontrol", ["show", "config"]);
  const m = /^ClusterName\s*=\s*(\S+)/m.exec(out.stdout);
  return clusterCache = m ? m[1] : "default";
}

/**
 * Submit a prepared job (see `prepareJobDir`), record its id in `job.json` and a row in the job
 * store. On failure: job.json says `SUBMIT_FAILED` with the error, the private env file is
 * removed, no store row is written, and the RuntimeFailure propagates (exit 1).
 */
export async function submitJob(job: SlurmJob, opts: SubmitJobOptions = {}): Promise<SubmittedJob> {
  // sbatch's --dependency replaces the script's #SBATCH one: join the profile's `dependency` in.
  const after = opts.after && opts.after.length ? `afterok:${opts.after.join(":")}` : null;
  const dependency = [after, job.dependency].filter((d) => d).join(",") || null;
  let id: string;
  try {
    id = await submitSbatch(job.scriptPath, {
      ...opts,
      dependency: dependency ?? undefined,
    });
  } catch (err) {
    removeSecretsFile(job.secretsFile, job.jobDir);
    try {
      updateManifest(job.jobDir, {
        state: "SUBMIT_FAILED",
        submit_error: err instanceof Error ? err.message : String(err),
        dependency,
      });
    } catch { /* the job dir itself may be the problem */ }
    throw err;
  }
  const now = new Date().toISOString();
  updateManifest(job.jobDir, {
    slurm_job_id: id,
    submitted_at: now,
    dependency,
    state: "SUBMITTED",
  });
  const cluster = opts.cluster ?? await clusterName(opts.run);
  const store = opts.store ?? await JobStore.open();
  try {
    store.insert(newJobRecord(job, id, cluster, dependency, now));
  } finally {
    if (!opts.store) store.close();
  }
  return {
    slurm_job_id: id,
    name: job.name,
    key: job.key,
    job_dir: job.jobDir,
    script: job.scriptPath,
    ...(job.pipeline ? { pipeline: job.pipeline.id } : {}),
  };
}

/** The store row of a job Slurm just accepted (state PENDING until the first refresh). */
export function newJobRecord(
  job: SlurmJob,
  id: string,
  cluster: string,
  dependency: string | null,
  now: string,
): JobRecord {
  return {
    slurm_job_id: id,
    cluster,
    key: job.key,
    name: job.name,
    slurm_name: job.slurmName,
    profile: job.profileName,
    mode: job.mode,
    job_dir: job.jobDir,
    pipeline: job.pipeline?.id ?? null,
    stage: job.pipeline?.stage ?? null,
    stages: job.pipeline?.stages ?? null,
    dependency,
    state: "PENDING",
    terminal: false,
    exit_code: null,
    signal: null,
    attempts: 0,
    nodes: null,
    reason: null,
    elapsed: null,
    secrets_file: job.secretsFile,
    submitted_at: now,
    started_at: null,
    ended_at: null,
    updated_at: now,
    note: null,
  };
}

/**
 * What `--batch` prints: the text for people, or with `json` the object
 * `{"mode", "jobs": [{"slurm_job_id", "name", "job_dir"}]}`.
 */
export function submissionReport(
  mode: "run" | "batch",
  jobs: readonly SubmittedJob[],
  json: boolean,
): string {
  if (json) {
    return JSON.stringify({
      mode,
      jobs: jobs.map((j) => ({ slurm_job_id: j.slurm_job_id, name: j.name, job_dir: j.job_dir })),
    });
  }
  const lines: string[] = [];
  for (const j of jobs) {
    lines.push(`Submitted ${j.name} as Slurm job ${j.slurm_job_id}`);
    lines.push(`  job dir: ${j.job_dir}`);
  }
  const last = jobs[jobs.length - 1];
  if (last) {
    // A pipeline is followed through its last stage, and inspected and cancelled as a whole.
    const whole = last.pipeline ?? last.slurm_job_id;
    lines.push(`  follow:  nemotron jobs logs ${last.slurm_job_id} -f`);
    lines.push(`  status:  nemotron jobs status ${whole}`);
    lines.push(`  cancel:  nemotron jobs cancel ${whole}`);
  }
  return lines.join("\n");
}
