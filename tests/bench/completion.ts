/**
 * Completion latency: `nemotron __complete` from the bundle for a subcommand, a profile (reads
 * env.toml) and a job id (opens the job store, 200 rows) against `deno run` of an empty script,
 * each a fresh process (median of 15). Target: well under 100 ms per answer.
 */
import * as path from "node:path";
import { median, ms, timeCommand } from "./timing.ts";
import { buildBundle } from "../../tools/build.ts";
import { JobStore } from "../../lib/jobs/store.ts";

export async function bench(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nemotron-bench-complete-" });
  const bundle = path.join(dir, "nemotron.js");
  if ((await buildBundle(bundle, true)) !== 0) throw new Error("deno bundle failed");
  const empty = path.join(dir, "empty.js");
  await Deno.writeTextFile(empty, "\n");
  await Deno.writeTextFile(path.join(dir, "env.toml"), `[cluster]\nexecutor = "slurm"\n`);
  const home = path.join(dir, "home");
  await Deno.mkdir(home);
  const store = await JobStore.open(path.join(home, "jobs.db"));
  const now = new Date().toISOString();
  for (let i = 0; i < 200; i++) {
    store.insert({
      slurm_job_id: String(1000 + i),
      cluster: "c",
      key: `k${i}`,
      name: "demo/train",
      slurm_name: "demo-train",
      profile: "cluster",
      mode: "batch",
      job_dir: `/j/k${i}`,
      pipeline: null,
      stage: null,
      stages: null,
      dependency: null,
      state: "COMPLETED",
      terminal: true,
      exit_code: 0,
      signal: null,
      attempts: 1,
      nodes: "n1",
      reason: null,
      elapsed: "0:01",
      secrets_file: null,
      submitted_at: now,
      started_at: now,
      ended_at: now,
      updated_at: now,
      note: null,
    });
  }
  store.close();
  const runs = 15;
  const flags = ["run", "-A", "--no-config", "--no-lock"];
  const opts = { cwd: dir, env: { NEMOTRON_HOME: home } };
  const base = median(await timeCommand(Deno.execPath(), [...flags, empty], runs, opts));
  console.log(`deno run empty.js                      median ${ms(base)} (n=${runs})`);
  for (
    const [label, words] of [
      ["__complete jo (subcommand)", ["jo"]],
      ["__complete demo train -b '' (profile)", ["demo", "train", "-b", ""]],
      ["__complete jobs status '' (200 jobs)", ["jobs", "status", ""]],
    ] as const
  ) {
    const t = median(
      await timeCommand(Deno.execPath(), [...flags, bundle, "__complete", ...words], runs, opts),
    );
    console.log(`${label.padEnd(38)} median ${ms(t)}, ${ms(t - base)} over the baseline`);
  }
}
