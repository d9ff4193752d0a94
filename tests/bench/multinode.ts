/**
 * Multi-node benchmarks on PRIVATE 2- and 3-node Slurm clusters (tests/multinode_cluster.ts; needs
 * root; skipped with a reason otherwise), each against a bare `srun -N2 hostname` measured in the
 * same run on the same cluster:
 * - Ray template with the STAND-IN `ray` (tests/fixtures/ray/ray; not Ray): from `sbatch` to "all
 *   N nodes joined" (the template's `all_joined` event), on 2 and 3 nodes;
 * - torchrun across 2 nodes × 1 process (Debian's torch, gloo): from `sbatch` to the first step
 *   (init_process_group + one all_reduce done on rank 0).
 * Times are wall clock of this process, polling every 50 ms; medians of 3 runs.
 */
import * as path from "node:path";
import { buildSlurmJob, renderSbatch } from "../../lib/exec/slurm.ts";
import { prepareJobDir } from "../../lib/exec/job_dir.ts";
import { submitJob } from "../../lib/exec/submit.ts";
import { jobRoot, skipReason, waitForEnd, withMultinodeCluster } from "../multinode_cluster.ts";
import { median, timeCommand } from "./timing.ts";

const STANDIN = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../fixtures/ray");
const RUNS = 3;
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

/** Poll until `done()` is true; returns ms since `t0`. */
async function until(t0: number, done: () => boolean, timeoutMs = 120_000): Promise<number> {
  while (!done()) {
    if (performance.now() - t0 > timeoutMs) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now() - t0;
}

function read(file: string): string {
  try {
    return Deno.readTextFileSync(file);
  } catch {
    return "";
  }
}

/** sbatch → all nodes joined, for one Ray cluster job with the stand-in. */
async function rayJoin(nodes: number): Promise<number> {
  const root = jobRoot("nemotron-bench-mn-");
  const job = buildSlurmJob({
    name: "bench-ray",
    mode: "batch",
    launch: "ray",
    resources: { nodes, gpus_per_node: 0 },
    profile: {
      remote_job_dir: root,
      time: "5",
      ray_port: 17910 + nodes,
      ray_head_timeout: 60,
      ray_join_timeout: 60,
      env_vars: {
        PATH: `${STANDIN}:${Deno.env.get("PATH")}`,
        NEMOTRON_RAY_STANDIN_DIR: path.join(root, "pids"),
      },
    },
    command: ["true"],
  });
  prepareJobDir(job, await renderSbatch(job));
  const t0 = performance.now();
  const sub = await submitJob(job);
  const events = path.join(job.jobDir, "ray", `${sub.slurm_job_id}_0`, "events.tsv");
  const ms = await until(t0, () => read(events).includes("\tall_joined\t"));
  await waitForEnd(sub.slurm_job_id);
  return ms;
}

const RDZV_SCRIPT = `import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(1)
dist.all_reduce(t)
print("first step done, world %d" % int(t.item()), flush=True)
dist.destroy_process_group()
`;

/** sbatch → first step of a 2×1 torchrun job. */
async function torchrunFirstStep(): Promise<number> {
  const root = jobRoot("nemotron-bench-mn-");
  const job = buildSlurmJob({
    name: "bench-rdzv",
    mode: "batch",
    launch: "torchrun",
    profile: {
      remote_job_dir: root,
      time: "5",
      nodes: 2,
      nproc_per_node: 1,
      python: "/usr/bin/python3",
      rdzv_port: 17831,
      torchrun_args: ["--redirects=1", "--tee=1", "--monitor_interval=1"],
    },
    command: ["rdzv.py"],
  });
  const prepared = prepareJobDir(job, await renderSbatch(job));
  Deno.writeTextFileSync(path.join(prepared.codeDir, "rdzv.py"), RDZV_SCRIPT);
  const t0 = performance.now();
  const sub = await submitJob(job);
  const log = path.join(job.logsDir, `log-${job.slurmName}_${sub.slurm_job_id}_0.out`);
  const ms = await until(t0, () => read(log).includes("first step done, world 2"));
  const [state] = await waitForEnd(sub.slurm_job_id);
  if (state !== "COMPLETED") throw new Error(`torchrun bench job ${sub.slurm_job_id}: ${state}`);
  return ms;
}

export async function bench(): Promise<void> {
  const reason = skipReason();
  if (reason) {
    console.log(`skipped: ${reason}`);
    return;
  }
  const home = Deno.makeTempDirSync({ prefix: "nemotron-bench-mn-home-" });
  Deno.env.set("NEMOTRON_HOME", home);
  for (const nodes of [2, 3]) {
    await withMultinodeCluster(nodes, async () => {
      const baseline = median(await timeCommand("srun", ["-N2", "hostname"], 5));
      const ray: number[] = [];
      for (let i = 0; i < RUNS; i++) ray.push(await rayJoin(nodes));
      const r = median(ray);
      console.log(
        `private ${nodes}-node cluster: bare srun -N2 hostname ${fmt(baseline)} (median of 5)`,
      );
      console.log(
        `  ray (stand-in), ${nodes} nodes: sbatch → all ${nodes} joined ${fmt(r)} ` +
          `(median of ${RUNS}; ${(r / baseline).toFixed(1)}× the srun baseline)`,
      );
      if (nodes === 2) {
        const tr: number[] = [];
        for (let i = 0; i < RUNS; i++) tr.push(await torchrunFirstStep());
        const t = median(tr);
        console.log(
          `  torchrun 2×1 (gloo): sbatch → first step ${fmt(t)} ` +
            `(median of ${RUNS}; ${(t / baseline).toFixed(1)}× the srun baseline)`,
        );
      }
    });
  }
}
