/**
 * Slurm benchmarks (need the local cluster; skipped with a reason otherwise):
 * - submit overhead: build + render + job dir + sbatch + job store (in process) against a bare
 *   `sbatch --parsable` of the same kind of script; target ≤ 200 ms median over it;
 * - `jobs list --all` with 1,000 jobs in the store (one squeue call), in process and as a CLI
 *   process, against one bare squeue call for the same ids; target ≤ 300 ms.
 */
import * as path from "node:path";
import { buildSlurmJob, renderSbatch } from "../../lib/exec/slurm.ts";
import { prepareJobDir } from "../../lib/exec/job_dir.ts";
import { submitJob } from "../../lib/exec/submit.ts";
import { refreshJobs } from "../../lib/exec/tracking.ts";
import { JobStore } from "../../lib/jobs/store.ts";
import { ensureSlurm, tempJobRoot } from "../slurm_cluster.ts";
import { median, timeCommand } from "./timing.ts";

const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

export async function bench(): Promise<void> {
  const reason = await ensureSlurm();
  if (reason) {
    console.log(`skipped: ${reason}`);
    return;
  }
  const root = tempJobRoot("nemotron-bench-");
  const home = Deno.makeTempDirSync({ prefix: "nemotron-bench-home-" });
  Deno.env.set("NEMOTRON_HOME", home);
  const runs = 10;

  // ---- submit overhead ----
  const ours: number[] = [];
  let script = "";
  const store = await JobStore.open();
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    const job = buildSlurmJob({
      name: `bench ${i}`,
      mode: "batch",
      launch: "direct",
      profile: { remote_job_dir: root, time: "5", env_vars: { A: "1" } },
      command: ["true"],
      env: { BENCH_TOKEN: "t" },
    });
    script = await renderSbatch(job);
    prepareJobDir(job, script);
    await submitJob(job, { store });
    const t = performance.now() - t0;
    if (i > 0) ours.push(t); // the first run loads the template engine
  }
  const bare = path.join(root, "bare.sh");
  Deno.writeTextFileSync(
    bare,
    `#!/bin/bash\n#SBATCH --job-name=bare\n#SBATCH --output=${root}/bare_%j.out\n#SBATCH --time=5\nsrun true\n`,
  );
  const base = await timeCommand("sbatch", ["--parsable", bare], runs);
  const m = median(ours), b = median(base);
  console.log(
    `submit: nemotron ${fmt(m)} vs bare sbatch ${fmt(b)} (median of ${runs}); overhead ${
      fmt(m - b)
    } (target ≤ 200 ms), ratio ${(m / b).toFixed(2)}x`,
  );

  // ---- jobs list with 1,000 jobs ----
  const now = new Date().toISOString();
  store.transaction(() => {
    for (let i = 0; i < 1000; i++) {
      store.insert({
        slurm_job_id: String(100000 + i),
        cluster: "localcluster",
        key: `bulk-${i}`,
        name: `bulk ${i}`,
        slurm_name: `bulk-${i}`,
        profile: "bench",
        mode: "batch",
        job_dir: path.join(root, "jobs", `bulk-${i}`),
        pipeline: i % 10 === 0 ? `pipe-${i}` : null,
        stage: i % 10 === 0 ? 0 : null,
        stages: i % 10 === 0 ? 1 : null,
        dependency: null,
        state: i % 2 ? "COMPLETED" : "RUNNING",
        terminal: i % 2 === 1,
        exit_code: null,
        signal: null,
        attempts: 1,
        nodes: "vm",
        reason: null,
        elapsed: "0:01",
        secrets_file: null,
        submitted_at: now,
        started_at: null,
        ended_at: null,
        updated_at: now,
        note: null,
      });
    }
  });
  const liveIds = store.list({ all: true }).filter((r) => !r.terminal).map((r) => r.slurm_job_id);
  const inproc: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await refreshJobs(store, store.list({ all: true }), { settlePipelines: false });
    inproc.push(performance.now() - t0);
  }
  store.close();
  const squeue = await timeCommand("squeue", [
    "-h",
    "-t",
    "all",
    "-j",
    liveIds.join(","),
    "-O",
    "JobID:|,State:|",
  ], runs).catch(() => [NaN]);
  const main = path.join(path.dirname(new URL(import.meta.url).pathname), "..", "..", "main.ts");
  const cli = await timeCommand(Deno.execPath(), ["run", "-A", main, "jobs", "list", "--all"], 5, {
    env: { NEMOTRON_HOME: home },
  });
  const help = await timeCommand(Deno.execPath(), ["run", "-A", main, "--version"], 5);
  console.log(
    `jobs list (1,000 jobs): first refresh with ${liveIds.length} live rows ${
      fmt(inproc[0])
    }, later refreshes ${fmt(median(inproc.slice(1)))}; one bare squeue ${
      fmt(median(squeue))
    }; ratio ${(inproc[0] / median(squeue)).toFixed(2)}x (first refresh)`,
  );
  console.log(
    `jobs list --all as a CLI process ${
      fmt(median(cli))
    } (target ≤ 300 ms); bare CLI start (--version) ${fmt(median(help))}; list minus start ${
      fmt(median(cli) - median(help))
    }`,
  );
  Deno.removeSync(home, { recursive: true });
}
