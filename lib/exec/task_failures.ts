/**
 * Which node failed: srun reports each task that ended badly on its own stderr, which is the batch
 * shell's log (`logs/sbatch-<name>_<id>.out`), as `srun: error: NODE: task N: Exited with exit
 * code C` (or `: Killed`, `: Terminated`, `: Segmentation fault` …). With `--kill-on-bad-exit=1`
 * the first such line is the task that brought the job down; the others were killed after it.
 */

/** One task srun reported as failed. */
export interface TaskFailure {
  readonly node: string;
  /** The task ids srun names, e.g. `1` or `0-3` (several tasks of one node). */
  readonly tasks: string;
  /** `exit code 3`, `Killed`, … as srun wrote it. */
  readonly how: string;
  readonly exitCode: number | null;
}

const LINE = /^srun: error: ([^:\s]+): tasks? ([0-9,\-]+): (.+?)\s*$/;

/** The failed tasks in a batch log, in the order srun reported them. */
export function parseTaskFailures(batchLog: string): TaskFailure[] {
  const out: TaskFailure[] = [];
  for (const line of batchLog.split("\n")) {
    const m = LINE.exec(line);
    if (!m) continue;
    const code = /^Exited with exit code (\d+)$/.exec(m[3]);
    out.push({
      node: m[1],
      tasks: m[2],
      how: code ? `exit code ${code[1]}` : m[3],
      exitCode: code ? Number(code[1]) : null,
    });
  }
  return out;
}

/**
 * The failure that ended the job: the first task that exited non-zero on its own (a task that was
 * killed is usually the victim of `--kill-on-bad-exit`, not the cause); else the first reported.
 */
export function firstTaskFailure(batchLog: string): TaskFailure | undefined {
  const all = parseTaskFailures(batchLog);
  return all.find((f) => f.exitCode !== null && f.exitCode !== 0) ?? all[0];
}

/** One rank failure from torchrun's error report ("Root Cause (first observed failure)"). */
export interface RankFailure {
  /** torchrun's time stamp, `YYYY-MM-DD_HH:MM:SS`. */
  readonly time: string;
  readonly host: string;
  readonly rank: number;
  readonly exitCode: number | null;
}

/**
 * The failed ranks torchrun's agents reported in a task log (each agent reports the first failure
 * it observed among its own workers).
 */
export function parseTorchrunRootCauses(taskLog: string): RankFailure[] {
  const out: RankFailure[] = [];
  const blocks = taskLog.split(/Root Cause \(first observed failure\):/).slice(1);
  for (const block of blocks) {
    const field = (name: string) =>
      new RegExp(`^\\s*(?:\\[\\w+\\]:)?\\s*${name}\\s*:\\s*(.+?)\\s*$`, "m").exec(block)?.[1];
    const host = field("host");
    const rank = field("rank");
    if (host === undefined || rank === undefined) continue;
    const code = /^(-?\d+)/.exec(field("exitcode") ?? "");
    const n = code ? Number(code[1]) : null; // -N: killed by signal N
    out.push({
      time: field("time") ?? "",
      host,
      rank: Number(/^\d+/.exec(rank)?.[0] ?? NaN),
      exitCode: n === null ? null : n < 0 ? 128 - n : n,
    });
  }
  return out;
}

/**
 * The rank that brought a torchrun job down: the earliest failure torchrun reported, except that
 * an exit code 1 gives way to another code reported within `ECHO_WINDOW_S` of it. Exit code 1 is
 * usually the echo (a Python exception such as gloo's "Connection closed by peer" in the ranks that
 * were waiting for the failed one); the agent watching the failed rank may see its exit up to a
 * monitor interval later than the echo is raised. The batch script's awk applies the same rule
 * (templates/slurm.sub.j2), with the same arithmetic on torchrun's time stamps.
 */
export function firstRankFailure(taskLog: string): RankFailure | undefined {
  // Only reports with an exit code count: the agents of several nodes write into one log, and a
  // report cut in two by another node's lines has its exit code in the other one's block.
  const all = parseTorchrunRootCauses(taskLog)
    .filter((f) => f.exitCode !== null)
    .sort((a, b) => a.time.localeCompare(b.time));
  const first = all[0];
  if (first?.exitCode !== 1) return first;
  const own = all.find((f) =>
    f.exitCode !== null && f.exitCode !== 1 &&
    stampSeconds(f.time) - stampSeconds(first.time) <= ECHO_WINDOW_S
  );
  return own ?? first;
}

/** How long after an exit-1 report a rank's own exit code still counts as the cause. */
const ECHO_WINDOW_S = 5;

/**
 * torchrun's `YYYY-MM-DD_HH:MM:SS` as seconds, counting 31-day months like the batch script's awk
 * (which has no date functions everywhere): exact within a month, which is what a 5 s window needs.
 */
function stampSeconds(stamp: string): number {
  const [y, mo, d, h, mi, s] = stamp.split(/[-_:]/).map(Number);
  return ((y * 12 + mo) * 31 + d) * 86400 + h * 3600 + mi * 60 + s;
}
