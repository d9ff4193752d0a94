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
