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
 * The rank that brought a torchrun job down: the earliest failure torchrun reported; at the same
 * second, one with its own exit code beats exit code 1 (a Python exception such as gloo's
 * "Connection closed by peer", usually the consequence of the other rank's exit).
 */
export function firstRankFailure(taskLog: string): RankFailure | undefined {
  const all = parseTorchrunRootCauses(taskLog);
  return all.sort((a, b) =>
    a.time.localeCompare(b.time) || Number(a.exitCode === 1) - Number(b.exitCode === 1)
  )[0];
}
