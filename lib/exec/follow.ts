/**
 * Following a job: stream the current attempt's log as it grows (read from an offset, never
 * refetched), switch to the next attempt's log after a requeue, and return the job's exit code
 * when it ends. Ctrl-C asks "detach or cancel" on a terminal and detaches otherwise.
 */
import { formatDuration } from "../cli/time.ts";
import { attemptLogPath, attemptsWithLogs, sbatchLogPath } from "./job_dir.ts";
import {
  cancelSlurmJobs,
  type CommandRunner,
  jobState,
  runCommand,
  type SlurmJobStatus,
} from "./slurm_state.ts";
import type { JobStore } from "../jobs/store.ts";
import { refreshJobs } from "./tracking.ts";

/** Reads a growing file incrementally from where the last read stopped. */
export class LogTail {
  private offset = 0;
  constructor(readonly path: string) {}

  /** The bytes appended since the last call (empty when none or the file does not exist yet). */
  readNew(): Uint8Array {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(this.path, { read: true });
    } catch {
      return new Uint8Array(0);
    }
    try {
      const size = file.statSync().size;
      if (size < this.offset) this.offset = 0; // truncated: start over
      if (size === this.offset) return new Uint8Array(0);
      file.seekSync(this.offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(size - this.offset);
      let got = 0;
      while (got < buf.length) {
        const n = file.readSync(buf.subarray(got));
        if (n === null || n === 0) break;
        got += n;
      }
      this.offset += got;
      return buf.subarray(0, got);
    } finally {
      file.close();
    }
  }
}

/** What a job is to follow. A JobRecord from the store fits. */
export interface FollowTarget {
  readonly slurm_job_id: string;
  readonly job_dir: string;
  readonly slurm_name: string;
  /** The job store's cluster; `ssh://…` for a job behind an ssh tunnel (lib/exec/ssh_jobs.ts). */
  readonly cluster?: string;
}

/** Options of `followJob`. */
export interface FollowOptions {
  /** Where log bytes go (default stdout). */
  readonly write?: (bytes: Uint8Array) => void;
  /** Where notes go (default stderr). */
  readonly note?: (line: string) => void;
  /** Poll interval (default 1000 ms). */
  readonly pollMs?: number;
  /** Ask detach/cancel on Ctrl-C (default: when stdin is a terminal). */
  readonly interactive?: boolean;
  /** Handle SIGINT at all (default true). */
  readonly handleSigint?: boolean;
  /** Refreshed and settled (pipelines, secrets) when the job ends. */
  readonly store?: JobStore;
  readonly run?: CommandRunner;
  /** Start with this attempt instead of the current one. */
  readonly attempt?: number;
  /** Aborts the follow (as a detach). */
  readonly signal?: AbortSignal;
  /**
   * Shows the one-line status while the job waits to start (`null` clears it). Default: on a
   * terminal the line is redrawn in place on stderr; otherwise a line is printed when the state or
   * the reason changes.
   */
  readonly live?: (line: string | null) => void;
  /** Clock for the waited time (tests). */
  readonly now?: () => number;
}

/** How following ended. */
export interface FollowResult {
  /** The job's exit code (0 on success; 128+signal when killed; 1 when it failed without one). */
  readonly exitCode: number;
  readonly status: SlurmJobStatus | undefined;
  readonly detached: boolean;
  readonly cancelled: boolean;
}

/**
 * The live status of a job that waits to start: state, Slurm's reason, how long we have waited, and
 * Slurm's estimated start time (squeue's StartTime of a pending job) when it has one.
 */
export function pendingStatusLine(
  id: string,
  st: SlurmJobStatus,
  waitedMs: number,
): string {
  const reason = st.reason && st.reason !== "None" ? ` (${st.reason})` : "";
  let estimate = "";
  if (st.startTime && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/.test(st.startTime)) {
    estimate = `, Slurm estimates the start at ${st.startTime.replace("T", " ")}`;
  }
  return `[nemotron] job ${id} ${st.state}${reason}, waiting ${
    formatDuration(waitedMs)
  }${estimate}`;
}

/** The default `live` writer: redraw in place on a terminal, print changes otherwise. */
export function liveWriter(note: (line: string) => void): (line: string | null) => void {
  let tty = false;
  try {
    tty = Deno.stderr.isTerminal();
  } catch {
    tty = false;
  }
  const enc = new TextEncoder();
  let shown = false;
  let lastKey = "";
  return (line) => {
    if (tty) {
      if (line === null) {
        if (shown) Deno.stderr.writeSync(enc.encode("\r\x1b[2K"));
        shown = false;
        return;
      }
      let cols = 80;
      try {
        cols = Deno.consoleSize().columns;
      } catch {
        cols = 80;
      }
      Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${line.slice(0, Math.max(20, cols - 1))}`));
      shown = true;
      return;
    }
    if (line === null) return;
    const key = line.replace(/, waiting [^,]*/, "");
    if (key !== lastKey) note(line);
    lastKey = key;
  };
}

/** The process exit code for a finished job. */
export function exitCodeOf(st: SlurmJobStatus | undefined): number {
  if (!st) return 1;
  if (st.phase === "succeeded") return st.exitCode ?? 0;
  if (st.exitCode) return st.exitCode;
  if (st.signal) return 128 + st.signal;
  return 1;
}

/** Ask on the terminal whether to detach (default) or cancel the job. */
export async function askDetachOrCancel(): Promise<"detach" | "cancel"> {
  const enc = new TextEncoder();
  Deno.stderr.writeSync(enc.encode("\n[nemotron] detach (d, default) or cancel the job (c)? "));
  const buf = new Uint8Array(64);
  const n = await Deno.stdin.read(buf);
  const answer = n ? new TextDecoder().decode(buf.subarray(0, n)).trim().toLowerCase() : "";
  return answer.startsWith("c") ? "cancel" : "detach";
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/**
 * Stream the job's current attempt log until the job ends; returns its exit code. If the job
 * ended without any task log (e.g. it failed before srun), the batch log is shown instead.
 */
export async function followJob(
  target: FollowTarget,
  opts: FollowOptions = {},
): Promise<FollowResult> {
  // ssh tunnel (issue 12): a job on a cluster behind a tunnel is followed through it.
  if (!opts.run && target.cluster?.startsWith("ssh://")) {
    const { followTunnelJob } = await import("./ssh_jobs.ts");
    return await followTunnelJob({ ...target, cluster: target.cluster }, opts);
  }
  const write = opts.write ?? ((b: Uint8Array) => Deno.stdout.writeSync(b));
  const note = opts.note ?? ((l: string) => console.error(l));
  const run = opts.run ?? runCommand;
  const pollMs = opts.pollMs ?? 1000;
  const id = target.slurm_job_id;
  const live = opts.live ?? liveWriter(note);
  const now = opts.now ?? Date.now;
  const started = now();
  let pendingShown = false;
  const interrupt = new AbortController();
  let sigint = false;
  const onSigint = () => {
    sigint = true;
    interrupt.abort();
  };
  if (opts.handleSigint ?? true) Deno.addSignalListener("SIGINT", onSigint);
  opts.signal?.addEventListener("abort", () => interrupt.abort(), { once: true });

  let attempt = opts.attempt ?? -1;
  let tail: LogTail | undefined;
  let sawLog = false;
  let status: SlurmJobStatus | undefined;
  const drain = () => {
    if (!tail) return;
    const bytes = tail.readNew();
    if (bytes.length) {
      sawLog = true;
      write(bytes);
    }
  };
  try {
    while (true) {
      status = (await jobState([id], { run })).get(id);
      const onDisk = attemptsWithLogs(target.job_dir, target.slurm_name, id);
      const current = Math.max(
        status && status.phase !== "pending" ? status.restarts : 0,
        onDisk.length ? onDisk[onDisk.length - 1] : 0,
      );
      if (attempt < 0) attempt = opts.attempt ?? current;
      if (!tail) tail = new LogTail(attemptLogPath(target.job_dir, target.slurm_name, id, attempt));
      // Waiting to start: one live status line, replaced by the log once the job runs.
      if (status && status.phase === "pending" && !status.terminal) {
        live(pendingStatusLine(id, status, now() - started));
        pendingShown = true;
      } else if (pendingShown) {
        live(null);
        pendingShown = false;
      }
      drain();
      while (attempt < current) {
        attempt++;
        note(`[nemotron] job ${id}: attempt ${attempt} (requeued)`);
        tail = new LogTail(attemptLogPath(target.job_dir, target.slurm_name, id, attempt));
        drain();
      }
      if (!status || status.terminal) break;
      if (interrupt.signal.aborted) break;
      await sleep(pollMs, interrupt.signal);
      if (interrupt.signal.aborted) break;
    }
    if (pendingShown) live(null);
    if (interrupt.signal.aborted && !(status?.terminal)) {
      let choice: "detach" | "cancel" = "detach";
      if (sigint && (opts.interactive ?? Deno.stdin.isTerminal())) {
        choice = await askDetachOrCancel();
      }
      if (choice === "cancel") {
        await cancelSlurmJobs([id], run);
        note(`[nemotron] cancelled job ${id}`);
        if (opts.store) await settle(opts.store, id, run);
        return { exitCode: 130, status, detached: false, cancelled: true };
      }
      note(
        `[nemotron] detached; job ${id} keeps running. Follow again: nemotron jobs logs ${id} -f`,
      );
      return { exitCode: 0, status, detached: true, cancelled: false };
    }
    drain();
    if (!sawLog) {
      const batch = new LogTail(sbatchLogPath(target.job_dir, target.slurm_name, id)).readNew();
      if (batch.length) {
        note(`[nemotron] job ${id} produced no task log; its batch log:`);
        write(batch);
      }
    }
    if (!status) {
      note(`[nemotron] job ${id} is no longer known to Slurm; see nemotron jobs status ${id}`);
    } else {
      note(
        `[nemotron] job ${id} ${status.state}` +
          (status.exitCode !== null ? ` (exit code ${status.exitCode})` : ""),
      );
    }
    if (opts.store) await settle(opts.store, id, run);
    return { exitCode: exitCodeOf(status), status, detached: false, cancelled: false };
  } finally {
    if (opts.handleSigint ?? true) Deno.removeSignalListener("SIGINT", onSigint);
  }
}

async function settle(store: JobStore, id: string, run: CommandRunner): Promise<void> {
  const recs = store.find(id);
  if (recs.length) await refreshJobs(store, recs, { run });
}
