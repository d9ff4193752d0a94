/**
 * Long runs (auto-resume): the policy a profile asks for (`auto_resume`, `max_restarts`,
 * `signal_before`), the durations it is written in, and why each attempt of a job ended.
 *
 * The mechanism itself lives in the sbatch script (templates/slurm.sub.j2): Slurm sends SIGUSR1 to
 * the batch shell `signal_before` seconds before the time limit (`--signal=B:USR1@N`); the shell
 * forwards it to the job's tasks (`scancel --signal=USR1`), gives them `graceSeconds` to
 * checkpoint and exit, and requeues the job (`scontrol requeue`) while restarts remain. Exit 0 is
 * "finished": the shell writes the finished marker and never requeues; an attempt that starts
 * while the marker exists exits 0 at once.
 */
import type { AttemptRecord } from "./job_dir.ts";

/** The signal a cooperating script receives before the time limit. */
export const RESUME_SIGNAL = "USR1";
/** `max_restarts` when `auto_resume = true` and the key is absent. */
export const DEFAULT_MAX_RESTARTS = 3;
/** `signal_before` when `auto_resume = true` and the key is absent (seconds). */
export const DEFAULT_SIGNAL_BEFORE = 300;
/** Seconds the batch shell keeps for itself after the grace time (record + `scontrol requeue`). */
export const REQUEUE_MARGIN = 10;
/** The smallest non-zero `signal_before`: the script must get at least 10 s. */
export const MIN_SIGNAL_BEFORE = REQUEUE_MARGIN + 10;
/** Slurm's limit for `--signal=…@N` (a 16-bit field). */
export const MAX_SIGNAL_BEFORE = 65535;
/** File names inside the job dir. */
export const FINISHED_MARKER = "FINISHED";
export const CHECKPOINT_DIR = "checkpoints";

/** A job's auto-resume policy (plain data, recorded in job.json). */
export interface ResumePolicy {
  readonly autoResume: boolean;
  readonly maxRestarts: number;
  /** Seconds before the time limit that SIGUSR1 is asked for; 0 = no signal. */
  readonly signalBefore: number;
  /** Seconds the tasks have between the forwarded signal and the requeue. */
  readonly graceSeconds: number;
}

/** The policy of a job without `auto_resume`. */
export const NO_RESUME: ResumePolicy = Object.freeze({
  autoResume: false,
  maxRestarts: 0,
  signalBefore: 0,
  graceSeconds: 0,
});

const UNIT: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * Seconds from a duration: an integer (seconds), `"300"`, `"300s"`, `"5m"`, `"1h30m"`, `"2d"`.
 * Returns undefined for anything else (the caller names the key in its error).
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === "bigint") value = Number(value);
  if (typeof value === "number") {
    return Number.isInteger(value) && value >= 0 ? value : undefined;
  }
  if (typeof value !== "string") return undefined;
  const s = value.trim().toLowerCase();
  if (/^\d+$/.test(s)) return Number(s);
  if (!/^(\d+[smhd])+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+)([smhd])/g)) total += Number(m[1]) * UNIT[m[2]];
  return total;
}

/**
 * Seconds of a Slurm `--time` value (`MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
 * `D-HH:MM:SS`); undefined for `UNLIMITED`/`INFINITE` or anything Slurm would parse otherwise.
 */
export function slurmTimeSeconds(time: string): number | undefined {
  const t = time.trim();
  let m = /^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$/.exec(t);
  if (m) {
    return Number(m[1]) * 86400 + Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60 +
      Number(m[4] ?? 0);
  }
  m = /^(\d+)(?::(\d+))?(?::(\d+))?$/.exec(t);
  if (!m) return undefined;
  if (m[3] !== undefined) return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  if (m[2] !== undefined) return Number(m[1]) * 60 + Number(m[2]);
  return Number(m[1]) * 60;
}

/** Grace time for a `signal_before`: the tasks get all of it but the shell's requeue margin. */
export function graceFor(signalBefore: number): number {
  return signalBefore === 0 ? 0 : signalBefore - REQUEUE_MARGIN;
}

/** Why one attempt ended, for `jobs status`. */
export interface AttemptOutcome {
  readonly attempt: number;
  readonly started_at: string | null;
  readonly ended_at: string | null;
  readonly exit_code: number | null;
  /**
   * `finished`, `failed`, `time_limit`, `requeued` (stopped by Slurm and restarted: preemption,
   * node failure or scontrol requeue), `preempted`, `node_failure`, `cancelled`,
   * `already_finished`, `no_restarts_left`, `running`, or a Slurm state in lower case.
   */
  readonly ended_by: string;
  /** One line for people. */
  readonly text: string;
}

/** Per-run states from accounting (`sacct -D`), oldest first, when slurmdbd is there. */
export type RunStates = readonly string[];

/**
 * Why each attempt ended, from the script's own records (attempts.tsv), the job's current Slurm
 * state and, when accounting is on, the state of each earlier run (`sacct --duplicates`).
 * An attempt without an `end` record was stopped from outside the script: if a later attempt
 * exists, Slurm requeued it (preemption, node failure or `scontrol requeue`; accounting says
 * which); if it is the last one, the job's final state says (TIMEOUT, CANCELLED, NODE_FAIL…).
 */
export function attemptOutcomes(
  attempts: readonly AttemptRecord[],
  job: { readonly state: string; readonly terminal: boolean },
  runStates: RunStates = [],
): AttemptOutcome[] {
  return attempts.map((a, i) => {
    const last = i === attempts.length - 1;
    const base = {
      attempt: a.attempt,
      started_at: a.startedAt,
      ended_at: a.endedAt,
      exit_code: a.exitCode,
    };
    const rc = a.exitCode === null ? "?" : String(a.exitCode);
    if (a.endedAt !== null) {
      switch (a.reason) {
        case "timelimit":
          return {
            ...base,
            ended_by: "time_limit",
            text: a.exitCode === null
              ? "time limit near: SIGUSR1; the tasks did not exit within the grace time"
              : `time limit near: SIGUSR1, exit code ${rc}`,
          };
        case "finished":
          return {
            ...base,
            ended_by: "already_finished",
            text: "the job had already finished (marker present): nothing ran",
          };
        case "budget":
          return {
            ...base,
            ended_by: "no_restarts_left",
            text: "started after max_restarts was used up: nothing ran",
          };
        default:
          return a.exitCode === 0
            ? { ...base, ended_by: "finished", text: "finished (exit code 0)" }
            : { ...base, ended_by: "failed", text: `failed with exit code ${rc}` };
      }
    }
    if (!last) {
      const st = (runStates[i] ?? "").split(/[\s+]/)[0].toUpperCase();
      if (st === "PREEMPTED") return { ...base, ended_by: "preempted", text: "preempted" };
      if (st === "NODE_FAIL") return { ...base, ended_by: "node_failure", text: "node failure" };
      return {
        ...base,
        ended_by: "requeued",
        text: st === "REQUEUED"
          ? "requeued (scontrol requeue)"
          : "stopped by Slurm and requeued (preemption, node failure or scontrol requeue)",
      };
    }
    if (!job.terminal) return { ...base, ended_by: "running", text: "running" };
    const state = job.state.toUpperCase();
    const byState: Record<string, [string, string]> = {
      TIMEOUT: ["time_limit", "killed at the time limit"],
      CANCELLED: ["cancelled", "cancelled"],
      NODE_FAIL: ["node_failure", "node failure"],
      PREEMPTED: ["preempted", "preempted"],
      OUT_OF_MEMORY: ["out_of_memory", "out of memory"],
    };
    const [by, text] = byState[state] ?? [state.toLowerCase(), state.toLowerCase()];
    return { ...base, ended_by: by, text };
  });
}
