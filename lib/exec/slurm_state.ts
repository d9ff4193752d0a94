/**
 * Slurm job states: mapping every state Slurm can report (including array tasks and flags such as
 * `CANCELLED by 0`), and querying them with as few calls as possible — one `squeue` for all jobs
 * slurmctld still knows (as `scontrol show job` would), then `sacct` (when accounting is on) for
 * the ones it forgot; without accounting the job's own attempts.tsv is the record. An unknown
 * state is passed through as-is (phase `unknown`), never an error.
 */
import { RuntimeFailure } from "../errors.ts";

/** Coarse phase of a job, for exit codes, colours and "is it over" decisions. */
export type JobPhase =
  | "pending"
  | "running"
  | "succeeded"
  | "failed"
  | "cancelled"
  | "unknown";

/** A mapped state. */
export interface StateInfo {
  /** The base state word, upper case (e.g. `CANCELLED` for `CANCELLED by 0`). */
  readonly state: string;
  readonly phase: JobPhase;
  /** True when the job can no longer run again. */
  readonly terminal: boolean;
}

const STATE_TABLE: Readonly<Record<string, readonly [JobPhase, boolean]>> = {
  PENDING: ["pending", false],
  CONFIGURING: ["pending", false],
  REQUEUED: ["pending", false],
  REQUEUE_HOLD: ["pending", false],
  REQUEUE_FED: ["pending", false],
  RESV_DEL_HOLD: ["pending", false],
  SPECIAL_EXIT: ["pending", false],
  POWER_UP_NODE: ["pending", false],
  RUNNING: ["running", false],
  COMPLETING: ["running", false],
  SUSPENDED: ["running", false],
  STOPPED: ["running", false],
  SIGNALING: ["running", false],
  STAGE_OUT: ["running", false],
  RESIZING: ["running", false],
  UPDATE_DB: ["running", false],
  COMPLETED: ["succeeded", true],
  FAILED: ["failed", true],
  TIMEOUT: ["failed", true],
  NODE_FAIL: ["failed", true],
  PREEMPTED: ["failed", true],
  OUT_OF_MEMORY: ["failed", true],
  BOOT_FAIL: ["failed", true],
  DEADLINE: ["failed", true],
  LAUNCH_FAILED: ["failed", true],
  REVOKED: ["cancelled", true],
  CANCELLED: ["cancelled", true],
};

/** Map a state string from squeue, sacct or scontrol (e.g. `CANCELLED by 1000`, `CANCELLED+`). */
export function mapSlurmState(raw: string): StateInfo {
  const state = raw.trim().split(/[\s+]/)[0].toUpperCase();
  const hit = STATE_TABLE[state];
  if (!hit) return { state: state || "UNKNOWN", phase: "unknown", terminal: false };
  return { state, phase: hit[0], terminal: hit[1] };
}

/** The state of one Slurm job (or of all tasks of an array job). */
export interface SlurmJobStatus extends StateInfo {
  readonly id: string;
  /** The job's exit code (0 while it runs); null when unknown. */
  readonly exitCode: number | null;
  /** The signal that ended the job, if any. */
  readonly signal: number | null;
  /** How many times Slurm restarted (requeued) the job. */
  readonly restarts: number;
  readonly nodes: string | null;
  readonly reason: string | null;
  readonly elapsed: string | null;
  readonly startTime: string | null;
  readonly endTime: string | null;
  /** For array jobs: the state of each task, by task id. */
  readonly tasks?: Readonly<Record<string, string>>;
  readonly source: "squeue" | "sacct";
}

/** Runs a command and returns its output (tests substitute fakes). */
export type CommandRunner = (
  cmd: string,
  args: readonly string[],
) => Promise<{ code: number; stdout: string; stderr: string }>;

/** Run a command with captured output; a missing binary is a clear RuntimeFailure. */
export const runCommand: CommandRunner = async (cmd, args) => {
  try {
    const out = await new Deno.Command(cmd, {
      args: [...args],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new RuntimeFailure(`${cmd} not found on PATH`, {
        hint: "run nemotron on a Slurm login node (`nemotron doctor` shows what is missing)",
      });
    }
    throw err;
  }
};

const NONE = new Set(["", "N/A", "(null)", "None", "NONE", "Unknown"]);
const clean = (s: string | undefined): string | null =>
  s === undefined || NONE.has(s.trim()) ? null : s.trim();

/** `exit_code` of squeue is a wait status (e.g. 1024 = exit 4; 9 = killed by signal 9). */
function fromWaitStatus(v: string): { exitCode: number | null; signal: number | null } {
  const n = Number(v);
  if (!Number.isInteger(n)) return { exitCode: null, signal: null };
  const sig = n & 0x7f;
  return { exitCode: (n >> 8) & 0xff, signal: sig === 0 ? null : sig };
}

/** `4:0` (exit:signal) of sacct/scontrol. */
export function parseExitPair(v: string): { exitCode: number | null; signal: number | null } {
  const m = /^(\d+):(\d+)$/.exec(v.trim());
  if (!m) return { exitCode: null, signal: null };
  const sig = Number(m[2]);
  return { exitCode: Number(m[1]), signal: sig === 0 ? null : sig };
}

const SQUEUE_FIELDS = [
  "JobID",
  "ArrayJobID",
  "ArrayTaskID",
  "State",
  "exit_code",
  "RestartCnt",
  "NodeList",
  "TimeUsed",
  "StartTime",
  "EndTime",
  "Reason",
];

/** Worst-first order for combining array task states into one. */
const PHASE_RANK: Readonly<Record<JobPhase, number>> = {
  running: 0,
  pending: 1,
  unknown: 2,
  failed: 3,
  cancelled: 4,
  succeeded: 5,
};

/** Parse squeue output (fields of SQUEUE_FIELDS, `|`-terminated) into statuses by job id. */
export function parseSqueue(text: string): Map<string, SlurmJobStatus> {
  const rows = new Map<string, SlurmJobStatus[]>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const f = line.split("|");
    if (f.length < SQUEUE_FIELDS.length) continue;
    const [jobId, arrayJob, arrayTask, state, exitCode, restarts, nodes, used, start, end] = f;
    const reason = f.slice(10, f.length - 1).join("|");
    const isArray = clean(arrayTask) !== null;
    const id = isArray ? arrayJob.trim() : jobId.trim();
    const info = mapSlurmState(state);
    const st: SlurmJobStatus = {
      id,
      ...info,
      ...fromWaitStatus(exitCode),
      restarts: Number(restarts) || 0,
      nodes: clean(nodes),
      reason: clean(reason),
      elapsed: clean(used),
      startTime: clean(start),
      endTime: clean(end),
      source: "squeue",
      ...(isArray ? { tasks: { [arrayTask.trim()]: info.state } } : {}),
    };
    const list = rows.get(id) ?? [];
    list.push(st);
    rows.set(id, list);
  }
  const out = new Map<string, SlurmJobStatus>();
  for (const [id, list] of rows) out.set(id, combine(list));
  return out;
}

/** One status for an array job: the most "active" task state; terminal only when all tasks are. */
function combine(list: SlurmJobStatus[]): SlurmJobStatus {
  if (list.length === 1) return list[0];
  const sorted = [...list].sort((a, b) => PHASE_RANK[a.phase] - PHASE_RANK[b.phase]);
  const head = sorted[0];
  const tasks: Record<string, string> = {};
  for (const s of list) Object.assign(tasks, s.tasks ?? {});
  const failed = list.find((s) => s.exitCode !== null && s.exitCode !== 0);
  return {
    ...head,
    terminal: list.every((s) => s.terminal),
    exitCode: failed ? failed.exitCode : head.exitCode,
    tasks,
  };
}

/** Parse `sacct -X -n -P -o JobIDRaw,JobID,State,ExitCode,NodeList,Elapsed,Start,End` output. */
export function parseSacct(text: string): Map<string, SlurmJobStatus> {
  const rows = new Map<string, SlurmJobStatus[]>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const [_raw, jobId, state, exit, nodes, elapsed, start, end] = line.split("|");
    const m = /^(\d+)(?:_(\S+))?/.exec(jobId ?? "");
    if (!m) continue;
    const id = m[1];
    const info = mapSlurmState(state ?? "");
    const st: SlurmJobStatus = {
      id,
      ...info,
      ...parseExitPair(exit ?? ""),
      restarts: 0,
      nodes: clean(nodes),
      reason: null,
      elapsed: clean(elapsed),
      startTime: clean(start),
      endTime: clean(end),
      source: "sacct",
      ...(m[2] ? { tasks: { [m[2]]: info.state } } : {}),
    };
    const list = rows.get(id) ?? [];
    list.push(st);
    rows.set(id, list);
  }
  const out = new Map<string, SlurmJobStatus>();
  for (const [id, list] of rows) out.set(id, combine(list));
  return out;
}

let accountingCache: boolean | undefined;

/** Whether Slurm accounting (slurmdbd) is on: `scontrol show config` AccountingStorageType. */
export async function accountingEnabled(run: CommandRunner = runCommand): Promise<boolean> {
  if (accountingCache !== undefined) return accountingCache;
  const out = await run("scontrol", ["show", "config"]);
  const m = /^AccountingStorageType\s*=\s*(\S+)/m.exec(out.stdout);
  accountingCache = out.code === 0 && m !== null && !m[1].endsWith("/none");
  return accountingCache;
}

/**
 * States of the given jobs: one `squeue` call for every job slurmctld still knows (running,
 * pending and recently finished), then one `sacct` call for the rest when accounting is on.
 * Jobs found nowhere are missing from the result.
 */
export async function jobState(
  ids: readonly string[],
  opts: { run?: CommandRunner; accounting?: boolean } = {},
): Promise<Map<string, SlurmJobStatus>> {
  const run = opts.run ?? runCommand;
  const result = new Map<string, SlurmJobStatus>();
  const wanted = [...new Set(ids.filter((id) => /^\d+$/.test(id)))];
  if (wanted.length === 0) return result;
  const format = SQUEUE_FIELDS.map((f) => `${f}:|`).join(",");
  const sq = await run("squeue", ["-h", "-t", "all", "-j", wanted.join(","), "-O", format]);
  if (sq.code === 0) {
    for (const [id, st] of parseSqueue(sq.stdout)) if (wanted.includes(id)) result.set(id, st);
  } else if (!/Invalid job id/i.test(sq.stderr)) {
    throw new RuntimeFailure(`squeue failed: ${sq.stderr.trim() || `exit ${sq.code}`}`, {
      hint: "is slurmctld up? `scontrol ping` tells",
    });
  }
  const missing = wanted.filter((id) => !result.has(id));
  if (missing.length === 0) return result;
  const accounting = opts.accounting ?? await accountingEnabled(run);
  if (!accounting) return result;
  const sa = await run("sacct", [
    "-X",
    "-n",
    "-P",
    "-j",
    missing.join(","),
    "-o",
    "JobIDRaw,JobID,State,ExitCode,NodeList,Elapsed,Start,End",
  ]);
  if (sa.code === 0) {
    for (const [id, st] of parseSacct(sa.stdout)) if (missing.includes(id)) result.set(id, st);
  }
  return result;
}

/** Cancel jobs with one `scancel` call. */
export async function cancelSlurmJobs(
  ids: readonly string[],
  run: CommandRunner = runCommand,
): Promise<void> {
  if (ids.length === 0) return;
  const out = await run("scancel", [...ids]);
  if (out.code !== 0) {
    throw new RuntimeFailure(`scancel ${ids.join(" ")} failed: ${out.stderr.trim()}`);
  }
}

/**
 * long runs: the state each run of a requeued job ended in (`sacct --duplicates`: PREEMPTED,
 * NODE_FAIL, REQUEUED, …), oldest first. Empty without accounting (slurmctld keeps only the
 * current run), or when sacct fails.
 */
export async function runStates(
  id: string,
  opts: { run?: CommandRunner; accounting?: boolean } = {},
): Promise<string[]> {
  const run = opts.run ?? runCommand;
  if (!/^\d+$/.test(id)) return [];
  if (!(opts.accounting ?? await accountingEnabled(run))) return [];
  const out = await run("sacct", ["-D", "-X", "-n", "-P", "-j", id, "-o", "JobIDRaw,Start,State"]);
  if (out.code !== 0) return [];
  return out.stdout.split("\n").map((l) => l.split("|")).filter((f) => f[0] === id && f.length >= 3)
    .sort((a, b) => a[1].localeCompare(b[1])).map((f) => mapSlurmState(f[2]).state);
}
