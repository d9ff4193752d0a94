/**
 * The cheap question to ask Slurm before anything expensive (squashing a 20 GB image, copying a
 * code package): would it accept this job's partition, account, QOS, time limit and resources?
 * `sbatch --test-only` with the job's own `#SBATCH` directives answers without queueing anything.
 */
import type { SbatchDirective } from "./slurm.ts";
import { type CommandRunner, runCommand } from "./slurm_state.ts";

/** Directives that describe where the job's files go or when it starts, not what it asks for. */
const NOT_ASKED = new Set([
  "chdir",
  "output",
  "error",
  "open-mode",
  "requeue",
  "no-requeue",
  "dependency",
  "signal",
]);

/** What `sbatch --test-only` said. */
export interface PreflightResult {
  readonly ok: boolean;
  /** Slurm's own words: the estimate (`Job 3 to start at …`) or the reason it refuses. */
  readonly message: string;
}

/** The `sbatch --test-only` argv for these directives. */
export function preflightArgs(directives: readonly SbatchDirective[]): string[] {
  const args = ["--test-only"];
  for (const d of directives) {
    if (NOT_ASKED.has(d.flag)) continue;
    args.push(d.value === null ? `--${d.flag}` : `--${d.flag}=${d.value}`);
  }
  return [...args, "--wrap=true"];
}

/** Ask Slurm whether it would accept a job with `directives` (nothing is queued). */
export async function preflightSbatch(
  directives: readonly SbatchDirective[],
  run: CommandRunner = runCommand,
): Promise<PreflightResult> {
  return readPreflight(await run("sbatch", preflightArgs(directives)));
}

/** What `sbatch --test-only` printed and its exit code, read as a PreflightResult. */
export function readPreflight(
  out: { readonly code: number; readonly stdout: string; readonly stderr: string },
): PreflightResult {
  const text = `${out.stderr}\n${out.stdout}`.split("\n").map((l) => l.trim()).filter(Boolean);
  if (out.code === 0) {
    const estimate = text.find((l) => /to start at/.test(l)) ?? text[0] ?? "accepted";
    return { ok: true, message: estimate.replace(/^sbatch:\s*/, "") };
  }
  // "sbatch: error: invalid partition specified: x" / "allocation failure: …": keep Slurm's words.
  const reason = text.filter((l) => /error|failure|invalid/i.test(l))
    .map((l) => l.replace(/^sbatch:\s*(error:\s*)?/, "")) ?? [];
  return { ok: false, message: (reason.length ? reason : text).join("; ") || `exit ${out.code}` };
}
