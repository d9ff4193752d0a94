/**
 * Local runs are jobs too: each one gets a row in the job store (id `L` + 6 hex, cluster `local`,
 * its job dir, state, exit code, times), so `jobs list` shows it beside the Slurm jobs and
 * `jobs status|logs|cancel` work for it. The row says which process runs it (host and pid): a run
 * whose nemotron process is gone without recording an outcome is shown as LOST, not RUNNING
 * forever. Recording is best effort: a job store that cannot be written never stops a run.
 */
import { defaultStorePath, type JobRecord, JobStore } from "../jobs/store.ts";
import * as path from "../path.ts";

/** The store's cluster name for local runs. */
export const LOCAL_CLUSTER = "local";

function host(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

function newLocalId(): string {
  const b = crypto.getRandomValues(new Uint8Array(3));
  return `L${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/** A local run in the job store, from start to end. */
export interface LocalJob {
  readonly id: string;
  /** Record how the run ended (`stopped`: by Ctrl-C or `jobs cancel`, shown as CANCELLED). */
  finish(exitCode: number, stopped: boolean): Promise<void>;
}

async function withStore<T>(fn: (store: JobStore) => T): Promise<T | undefined> {
  try {
    const store = await JobStore.open(defaultStorePath());
    try {
      return fn(store);
    } finally {
      store.close();
    }
  } catch (err) {
    console.error(
      `warning: the job store could not record this local run: ${
        err instanceof Error ? err.message : String(err)
      }`,
    );
    return undefined;
  }
}

/** Record a local run that starts now in `jobDir`; undefined when the store cannot be written. */
export async function recordLocalRun(name: string, jobDir: string): Promise<LocalJob | undefined> {
  const started = new Date();
  const id = newLocalId();
  const now = started.toISOString();
  const rec: JobRecord = {
    slurm_job_id: id,
    cluster: LOCAL_CLUSTER,
    key: path.basename(jobDir),
    name,
    slurm_name: name,
    profile: null,
    mode: "local",
    job_dir: jobDir,
    pipeline: null,
    stage: null,
    stages: null,
    dependency: null,
    state: "RUNNING",
    terminal: false,
    exit_code: null,
    signal: null,
    attempts: 1,
    nodes: host(),
    reason: `pid ${Deno.pid}`,
    elapsed: null,
    secrets_file: null,
    submitted_at: now,
    started_at: now,
    ended_at: null,
    updated_at: now,
    note: null,
  };
  const ok = await withStore((store) => {
    store.insert(rec);
    return true;
  });
  if (ok === undefined) return undefined;
  return {
    id,
    finish: async (exitCode, stopped) => {
      const end = new Date();
      await withStore((store) =>
        store.update(rec.key, {
          state: stopped ? "CANCELLED" : exitCode === 0 ? "COMPLETED" : "FAILED",
          terminal: true,
          exit_code: exitCode,
          elapsed: elapsedText(end.getTime() - started.getTime()),
          ended_at: end.toISOString(),
          reason: null,
          note: stopped ? "stopped (Ctrl-C or nemotron jobs cancel)" : null,
        })
      );
    },
  };
}

/** Slurm's elapsed format (`M:SS`, `H:MM:SS`), so one parser reads both kinds of job. */
function elapsedText(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor(s / 60) % 60;
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** The pid of a local run still marked as running on this host, if it is recorded. */
export function localPid(rec: JobRecord): number | undefined {
  const m = /^pid (\d+)$/.exec(rec.reason ?? "");
  return m && rec.nodes === host() ? Number(m[1]) : undefined;
}

/**
 * Local runs still marked RUNNING whose nemotron process on this host is gone: mark them LOST
 * (terminal). Runs of other hosts are left as they are.
 */
export function settleLocalRuns(store: JobStore, records: readonly JobRecord[]): JobRecord[] {
  return records.map((r) => {
    if (r.cluster !== LOCAL_CLUSTER || r.terminal) return r;
    const pid = localPid(r);
    if (pid === undefined) return r;
    let alive = true;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
      alive = cmd.length > 0;
    } catch {
      alive = false;
    }
    if (alive) return r;
    const patch = {
      state: "LOST",
      terminal: true,
      reason: null,
      note: "the nemotron process running it ended without recording how the run ended",
    };
    store.update(r.key, patch);
    return { ...r, ...patch };
  });
}
