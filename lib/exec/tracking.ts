/**
 * Keeping the job store true: refresh the states of stored jobs from Slurm (one `squeue` call for
 * all of them), clean up what ended (private env files), and settle pipelines — when a stage
 * failed, the later stages can never run (`afterok`), so they are cancelled and say why.
 */
import { type JobRecord, type JobStateUpdate, JobStore } from "../jobs/store.ts";
import {
  type AttemptRecord,
  type JobManifest,
  readAttempts,
  readManifest,
  removeSecretsFile,
  updateManifest,
} from "./job_dir.ts";
import {
  cancelSlurmJobs,
  type CommandRunner,
  jobState,
  runCommand,
  type SlurmJobStatus,
} from "./slurm_state.ts";
import { clusterName } from "./submit.ts";
import { LOCAL_CLUSTER, settleLocalRuns } from "./local_jobs.ts";

/** Options of `refreshJobs`. */
export interface RefreshOptions {
  readonly run?: CommandRunner;
  /** Cancel pipeline stages that can never run (default true). */
  readonly settlePipelines?: boolean;
  readonly cluster?: string;
  /**
   * What the job dir records (attempts.tsv, job.json) when it is not on this
   * machine's filesystem (ssh tunnel); default: read from `job_dir`.
   */
  readonly jobFiles?: (
    rec: JobRecord,
  ) => { attempts: AttemptRecord[]; manifest: JobManifest | undefined };
}

function isoOrNull(s: string | null): string | null {
  if (!s) return null;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** The store update for one job from its Slurm status and the attempts the script recorded. */
function updateFrom(
  rec: JobRecord,
  st: SlurmJobStatus | undefined,
  files?: RefreshOptions["jobFiles"],
): JobStateUpdate {
  const attempts = files ? files(rec).attempts : readAttempts(rec.job_dir);
  const attemptCount = attempts.length ? attempts[attempts.length - 1].attempt + 1 : 0;
  if (st) {
    return {
      state: st.state,
      terminal: st.terminal,
      // A job cancelled before it ever ran has no exit code (Slurm reports 0:0).
      exit_code: st.terminal && attemptCount === 0 && st.phase !== "succeeded" ? null : st.exitCode,
      signal: st.signal,
      attempts: Math.max(attemptCount, st.phase === "pending" ? 0 : st.restarts + 1),
      nodes: st.nodes,
      reason: st.reason,
      elapsed: st.elapsed,
      started_at: isoOrNull(st.startTime),
      ended_at: st.terminal ? isoOrNull(st.endTime) : null,
    };
  }
  // slurmctld forgot the job and there is no accounting: trust the script's own records.
  const last = attempts[attempts.length - 1];
  const manifest = !last ? undefined : files ? files(rec).manifest : readManifest(rec.job_dir);
  // long runs: with auto_resume the restart budget is max_restarts, and any exit 0 is final
  const retries = manifest?.auto_resume ? manifest.max_restarts ?? 0 : manifest?.retries ?? 0;
  if (last && last.exitCode !== null && (last.exitCode === 0 || last.attempt >= retries)) {
    return {
      state: last.exitCode === 0 ? "COMPLETED" : "FAILED",
      terminal: true,
      exit_code: last.exitCode,
      attempts: attemptCount,
      nodes: last.nodes || null,
      started_at: attempts[0].startedAt,
      ended_at: last.endedAt,
      reason: "from the job's attempts.tsv (slurmctld no longer knows the job, accounting is off)",
    };
  }
  // Neither squeue nor sacct knows it: it ended and was purged; it will never come back.
  return {
    state: "UNKNOWN",
    terminal: true,
    attempts: attemptCount,
    reason: "ended; slurmctld no longer knows this job and there is no accounting record",
  };
}

/**
 * Refresh `records` from Slurm and return them as now stored. Only non-terminal jobs of this
 * cluster are queried (one squeue call, plus one sacct call when accounting is on and some jobs
 * left slurmctld's memory). Jobs that reached a terminal state get their private env file removed
 * and their job.json updated.
 */
export async function refreshJobs(
  store: JobStore,
  input: readonly JobRecord[],
  opts: RefreshOptions = {},
): Promise<JobRecord[]> {
  // ssh tunnel (issue 12): jobs on clusters behind a tunnel are refreshed through it.
  if (!opts.run && input.some((r) => r.cluster.startsWith("ssh://"))) {
    const { refreshTunnelJobs } = await import("./ssh_jobs.ts");
    return await refreshTunnelJobs(store, input, opts, refreshJobs);
  }
  const run = opts.run ?? runCommand;
  // Local runs: settled from their process (LOST when it is gone), never asked of Slurm.
  const records = settleLocalRuns(store, input);
  if (records.every((r) => r.terminal || r.cluster === LOCAL_CLUSTER)) return [...records];
  const cluster = opts.cluster ?? await clusterName(run);
  const live = records.filter((r) => !r.terminal && r.cluster === cluster);
  if (live.length === 0) return [...records];
  const states = await jobState(live.map((r) => r.slurm_job_id), { run });
  const updates = new Map<string, JobStateUpdate>();
  for (const rec of live) {
    updates.set(rec.key, updateFrom(rec, states.get(rec.slurm_job_id), opts.jobFiles));
  }
  store.transaction(() => {
    for (const [key, patch] of updates) store.update(key, patch);
  });
  for (const rec of live) {
    const patch = updates.get(rec.key)!;
    if (patch.terminal) finishJob(rec, patch);
  }
  const settled = new Map<string, JobRecord>();
  if (opts.settlePipelines ?? true) {
    const fresh = live.map((r) => ({ ...r, ...updates.get(r.key) }));
    for (const r of await settlePipelines(store, fresh, { run, cluster })) settled.set(r.key, r);
  }
  return records.map((r) => {
    const patch = updates.get(r.key);
    return settled.get(r.key) ?? (patch ? { ...r, ...patch } : r);
  });
}

/** Clean up after a job that can no longer run: private env file, manifest state. */
function finishJob(rec: JobRecord, patch: JobStateUpdate): void {
  // ssh tunnel (issue 12): the job dir is on the cluster; lib/exec/ssh_jobs.ts cleans up there.
  if (rec.cluster.startsWith("ssh://")) return;
  try {
    removeSecretsFile(rec.secrets_file, rec.job_dir);
  } catch { /* best effort: the script removes it too */ }
  try {
    updateManifest(rec.job_dir, {
      state: patch.state ?? rec.state,
      exit_code: patch.exit_code ?? null,
      attempts: readAttempts(rec.job_dir),
    });
  } catch { /* job dir gone or read-only: the store still has the state */ }
}

/**
 * For each pipeline among `touched`: if a stage ended without success, cancel every later stage
 * that has not ended (it waits on `afterok` and can never run) and note which stage failed.
 * A job pending with `DependencyNeverSatisfied` is cancelled the same way. `touched` must hold
 * the jobs' current states.
 */
export async function settlePipelines(
  store: JobStore,
  touched: readonly JobRecord[],
  opts: { run?: CommandRunner; cluster?: string } = {},
): Promise<JobRecord[]> {
  const run = opts.run ?? runCommand;
  const toCancel = new Map<string, { rec: JobRecord; note: string }>();
  const pipelines = new Set(touched.map((r) => r.pipeline).filter((p): p is string => p !== null));
  for (const id of pipelines) {
    const stages = store.pipeline(id);
    const failed = stages.find((s) => s.terminal && s.state !== "COMPLETED");
    if (!failed) continue;
    for (const s of stages) {
      if ((s.stage ?? 0) > (failed.stage ?? 0) && !s.terminal) {
        toCancel.set(s.key, {
          rec: s,
          note:
            `stage ${failed.stage} (${failed.name}, job ${failed.slurm_job_id}) ended ${failed.state}; this stage can never run`,
        });
      }
    }
  }
  for (const fresh of touched) {
    if (
      !fresh.terminal && fresh.reason === "DependencyNeverSatisfied" &&
      !toCancel.has(fresh.key)
    ) {
      toCancel.set(fresh.key, {
        rec: fresh,
        note: `its dependency (${fresh.dependency}) failed; it can never run`,
      });
    }
  }
  if (toCancel.size === 0) return [];
  const recs = [...toCancel.values()];
  await cancelSlurmJobs(recs.map((c) => c.rec.slurm_job_id), run);
  const now = new Date().toISOString();
  store.transaction(() => {
    for (const { rec, note } of recs) {
      store.update(rec.key, { state: "CANCELLED", terminal: true, note, ended_at: now });
    }
  });
  for (const { rec } of recs) finishJob(rec, { state: "CANCELLED" });
  return recs.map((c) => store.find(c.rec.key)[0]);
}

/** Open the store, run `fn`, close it. */
export async function withStore<T>(fn: (store: JobStore) => Promise<T> | T): Promise<T> {
  const store = await JobStore.open();
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}
