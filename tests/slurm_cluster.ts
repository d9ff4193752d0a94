/**
 * Test helper: a real local Slurm cluster (../shared/slurm/start-local-slurm.sh) for integration
 * tests. `ensureSlurm()` starts it (idempotent; needs root) and returns undefined when it is up,
 * or the reason it cannot run, which tests print before skipping.
 */
import * as path from "node:path";

export const START_SCRIPT = Deno.env.get("NEMOTRON_SLURM_START") ??
  path.resolve(
    path.dirname(new URL(import.meta.url).pathname),
    "../../shared/slurm/start-local-slurm.sh",
  );

let started: Promise<string | undefined> | undefined;

async function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
  } catch (err) {
    return { code: 127, out: String(err) };
  }
}

/** Start (or reuse) the local cluster. Returns a skip reason, or undefined when Slurm is usable. */
export function ensureSlurm(): Promise<string | undefined> {
  started ??= (async () => {
    if (Deno.env.get("NEMOTRON_SKIP_SLURM")) return "NEMOTRON_SKIP_SLURM is set";
    const ping = await sh("scontrol", ["ping"]);
    const idle = await sh("sinfo", ["-h", "-o", "%t"]);
    if (ping.code === 0 && /UP/.test(ping.out) && /idle|mix|alloc/.test(idle.out)) return undefined;
    if (Deno.uid?.() !== 0) return "Slurm is not running and starting it needs root";
    try {
      Deno.statSync(START_SCRIPT);
    } catch {
      return `no start script at ${START_SCRIPT}`;
    }
    const r = await sh("bash", [START_SCRIPT]);
    if (r.code !== 0) {
      return `start-local-slurm.sh failed: ${r.out.trim().split("\n").slice(-3).join(" | ")}`;
    }
    return undefined;
  })();
  return started;
}

/** A Deno.test that runs only when the cluster is up; otherwise it prints why and passes. */
export function slurmTest(name: string, fn: () => Promise<void>, timeoutNote = ""): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const reason = await ensureSlurm();
      if (reason) {
        console.log(`SKIP ${name}: ${reason}${timeoutNote}`);
        return;
      }
      await fn();
    },
  });
}

/**
 * A requeued job waits ~120 s (BeginTime) before its next attempt; tests do not. Release it once
 * it has been held for 2.5 s: starting it in the same second as the requeue makes slurmd refuse
 * the launch ("Job credential revoked"). Returns when the hold was first seen (0 = not held).
 */
async function releaseHold(
  id: string,
  reason: string | undefined,
  heldSince: number,
): Promise<number> {
  if (reason?.trim() !== "BeginTime") return 0;
  const since = heldSince || Date.now();
  if (Date.now() - since >= 2500) {
    await sh("scontrol", ["update", `JobId=${id}`, "StartTime=now"]);
    return 0;
  }
  return since;
}

/** Poll `squeue` until the job is in a terminal state; releases requeue BeginTime holds. */
export async function waitForJob(id: string, timeoutMs = 60_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let held = 0;
  while (Date.now() < end) {
    const r = await sh("squeue", ["-h", "-t", "all", "-j", id, "-O", "State:|,Reason:|"]);
    const [state, reason] = r.out.trim().split("|");
    held = await releaseHold(id, reason, held);
    if (
      /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE)/
        .test(state)
    ) {
      return state;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`job ${id} did not finish within ${timeoutMs} ms`);
}

/** Release the BeginTime holds of a requeued job (for tests that follow a job themselves). */
export function releaseRequeueHolds(id: string, signal: AbortSignal): Promise<void> {
  return (async () => {
    let held = 0;
    while (!signal.aborted) {
      const r = await sh("squeue", ["-h", "-t", "all", "-j", id, "-O", "Reason:|"]);
      held = await releaseHold(id, r.out.split("|")[0], held);
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
}

/** A fresh temporary directory that every user can traverse (job dirs must be visible to slurmd). */
export function tempJobRoot(prefix = "nemotron-slurm-"): string {
  const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix });
  Deno.chmodSync(dir, 0o755);
  return dir;
}
