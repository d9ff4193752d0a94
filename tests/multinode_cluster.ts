/**
 * Test helper: a PRIVATE multi-node Slurm cluster (../shared/slurm/start-local-slurm.sh with
 * SLURM_LOCAL_NODES=N), next to the shared default one and never touching it: its own
 * SLURM_LOCAL_DIR (/var/tmp/nemotron-mn-<N>), its own slurmctld port (7817 for 2 nodes, 7857 for
 * 3: the range 7817-7897 is this test family's), its own config link; started with `--clean` and
 * stopped in a `finally`. Slurm clients reach it through SLURM_CONF, which `withMultinodeCluster`
 * sets in this process (so lib/exec's sbatch/squeue calls use it) and restores afterwards, and
 * which `cluster.env` carries for subprocesses (the nemotron CLI).
 */
import * as path from "node:path";

const SHARED_SLURM = path.resolve(
  path.dirname(new URL(import.meta.url).pathname),
  "../../shared/slurm",
);
const START = path.join(SHARED_SLURM, "start-local-slurm.sh");
const STOP = path.join(SHARED_SLURM, "stop-local-slurm.sh");

/** slurmctld port per cluster size: inside 7817-7897, never the default 6817. */
export const CTLD_PORTS: Readonly<Record<number, number>> = { 2: 7817, 3: 7857 };

/** A running private cluster. */
export interface MultinodeCluster {
  readonly nodes: number;
  readonly dir: string;
  /** Environment for subprocesses that must talk to this cluster (SLURM_CONF). */
  readonly env: Readonly<Record<string, string>>;
  /** Node names, `node1`..`nodeN`. */
  readonly nodeNames: readonly string[];
  /** Node K's address (`hostname -i` inside a job on it). */
  address(k: number): string;
}

async function sh(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ code: number; out: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
  } catch (err) {
    return { code: 127, out: String(err) };
  }
}

/** Why the private cluster cannot run here, or undefined. */
export function skipReason(): string | undefined {
  if (Deno.env.get("NEMOTRON_SKIP_SLURM")) return "NEMOTRON_SKIP_SLURM is set";
  if (Deno.uid?.() !== 0) return "starting a private Slurm cluster needs root";
  try {
    Deno.statSync(START);
  } catch {
    return `no ${START} (shared/ is not beside the checkout)`;
  }
  return undefined;
}

/** Options of a private cluster. */
export interface ClusterOptions {
  /** Fake GPUs per node (SLURM_LOCAL_FAKE_GPUS: gres gpu:N backed by device files; no CUDA). */
  readonly fakeGpus?: number;
}

function settings(nodes: number, opts: ClusterOptions = {}): Record<string, string> {
  const port = CTLD_PORTS[nodes];
  if (port === undefined) throw new Error(`no slurmctld port assigned for ${nodes} nodes`);
  const dir = `/var/tmp/nemotron-mn-${nodes}`;
  return {
    SLURM_LOCAL_DIR: dir,
    SLURM_LOCAL_CTLD_PORT: String(port),
    SLURM_LOCAL_CONF_LINK: `${dir}/slurm.conf.link`,
    SLURM_CONF: `${dir}/etc/slurm.conf`,
    SLURM_LOCAL_NODES: String(nodes),
    SLURM_LOCAL_FAKE_GPUS: String(opts.fakeGpus ?? 0),
  };
}

/**
 * Start a private N-node cluster, run `fn` with SLURM_CONF pointing at it, stop it in `finally`.
 * The default cluster is left alone.
 */
export async function withMultinodeCluster(
  nodes: number,
  fn: (c: MultinodeCluster) => Promise<void>,
  opts: ClusterOptions = {},
): Promise<void> {
  const env = settings(nodes, opts);
  // a cluster left over from an interrupted run of these tests (same private dir) goes first
  await sh("bash", [STOP], env);
  const started = await sh("bash", [START, "--clean"], env);
  if (started.code !== 0) {
    await sh("bash", [STOP], env);
    throw new Error(`private ${nodes}-node Slurm did not start:\n${started.out}`);
  }
  const before = Deno.env.get("SLURM_CONF");
  Deno.env.set("SLURM_CONF", env.SLURM_CONF);
  const roots = JOB_ROOTS.length;
  let passed = false;
  try {
    const conf = Deno.readTextFileSync(env.SLURM_CONF);
    const addrs = new Map<string, string>();
    for (const m of conf.matchAll(/^NodeName=(\S+) .*NodeAddr=(\S+)/gm)) addrs.set(m[1], m[2]);
    const nodeNames = [...addrs.keys()];
    if (nodeNames.length !== nodes) throw new Error(`slurm.conf lists ${nodeNames.join(",")}`);
    await fn({
      nodes,
      dir: env.SLURM_LOCAL_DIR,
      env: { SLURM_CONF: env.SLURM_CONF },
      nodeNames,
      address: (k) => addrs.get(`node${k}`)!,
    });
    passed = true;
  } finally {
    // job dirs of a passing test go; a failing test's stay for a look (their paths are in its output)
    for (const dir of JOB_ROOTS.splice(roots)) {
      if (passed) Deno.removeSync(dir, { recursive: true });
    }
    if (before === undefined) Deno.env.delete("SLURM_CONF");
    else Deno.env.set("SLURM_CONF", before);
    const stopped = await sh("bash", [STOP], env);
    if (stopped.code !== 0) console.error(`stop-local-slurm.sh: ${stopped.out}`);
  }
}

/** A Deno.test on a private N-node cluster; prints why and passes when it cannot run here. */
export function multinodeTest(
  name: string,
  nodes: number,
  fn: (t: Deno.TestContext, c: MultinodeCluster) => Promise<void>,
  opts: ClusterOptions = {},
): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      const reason = skipReason();
      if (reason) {
        console.log(`SKIP ${name}: ${reason}`);
        return;
      }
      await withMultinodeCluster(nodes, (c) => fn(t, c), opts);
    },
  });
}

/** Poll `squeue` (this cluster) until the job ends; returns `STATE|exit_code`. */
export async function waitForEnd(id: string, timeoutMs = 120_000): Promise<[string, number]> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const r = await sh("squeue", ["-h", "-t", "all", "-j", id, "-O", "State:|,exit_code:|"]);
    const [state, code] = r.out.trim().split("|");
    if (/^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL)/.test(state)) {
      return [state, (Number(code) >> 8) & 0xff];
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`job ${id} did not end within ${timeoutMs} ms`);
}

/** Directories made by `jobRoot`, removed when the cluster test that made them passes. */
const JOB_ROOTS: string[] = [];

/** A fresh directory under /var/tmp that slurmd (any node) can read and write. */
export function jobRoot(prefix = "nemotron-mn-job-"): string {
  const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix });
  Deno.chmodSync(dir, 0o755);
  JOB_ROOTS.push(dir);
  return dir;
}
