/**
 * The demo recipe commands on the real local Slurm cluster (tests/slurm_cluster.ts starts it; the
 * tests print why and pass when it cannot start), through the CLI only, with a bare-metal profile:
 * the pipeline with `--batch` (artifacts, lineage, `jobs logs`), with `--run` (streamed, exit 0),
 * a failing first stage (the second is cancelled, `jobs list` groups them), `--run` returning the
 * script's exit code, `jobs cancel`, and a retry profile (one log per attempt).
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { type CliResult, runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { releaseRequeueHolds, slurmTest, tempJobRoot } from "./slurm_cluster.ts";

const DENO_DIR = Deno.env.get("DENO_DIR") ||
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

interface Site {
  readonly cwd: string;
  readonly nemotronHome: string;
  run(...args: string[]): Promise<CliResult>;
}

/**
 * A working dir with env.toml (bare-metal profiles `cluster`, `flaky` with retries = 1, and
 * `sleepy` whose startup command sleeps) and its own NEMOTRON_HOME (job store, artifacts).
 */
async function site(): Promise<Site> {
  const cwd = await tempDir("nemotron-recipes-slurm-");
  const home = await tempDir("nemotron-recipes-slurm-home-");
  const rjd = path.join(tempJobRoot("nemotron-recipes-rjd-"), "rjd");
  const base = `executor = "slurm"\nremote_job_dir = "${rjd}"\ntime = "00:10:00"\n`;
  await writeTree(cwd, {
    "env.toml": [
      `[cluster]\n${base}`,
      `[flaky]\n${base}retries = 1\n`,
      `[sleepy]\n${base}startup_commands = ["sleep 300"]\n`,
    ].join("\n"),
  });
  const nemotronHome = path.join(home, ".nemotron");
  return {
    cwd,
    nemotronHome,
    run: (...args) =>
      runCli(args, {
        cwd,
        env: { HOME: home, NEMOTRON_HOME: nemotronHome, NEMOTRON_ENV_FILE: "", DENO_DIR },
      }),
  };
}

interface Submitted {
  slurm_job_id: string;
  name: string;
  job_dir: string;
}

async function batch(s: Site, ...args: string[]): Promise<Submitted[]> {
  const r = await s.run(...args, "--json");
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  assert.equal(out.mode, "batch");
  return out.jobs;
}

// deno-lint-ignore no-explicit-any
type Status = Record<string, any>;

async function status(s: Site, id: string): Promise<Status> {
  const r = await s.run("jobs", "status", id, "--json");
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Poll `nemotron jobs status ID --json` until the job is terminal (requeue holds released). */
async function waitTerminal(s: Site, id: string, timeoutMs = 60_000): Promise<Status> {
  const stop = new AbortController();
  const holds = releaseRequeueHolds(id, stop.signal);
  try {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const st = await status(s, id);
      if (st.terminal) return st;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`job ${id} not terminal within ${timeoutMs} ms`);
  } finally {
    stop.abort();
    await holds;
  }
}

function lossLines(text: string): string[] {
  return text.match(/^step \d+\/8 loss [\d.]+ val_loss [\d.]+$/gm) ?? [];
}

slurmTest(
  "demo pipe -c tiny -b cluster: both stages complete, artifacts with lineage, jobs logs",
  async () => {
    const s = await site();
    const jobs = await batch(s, "demo", "pipe", "-c", "tiny", "-b", "cluster");
    assert.deepEqual(jobs.map((j) => j.name), ["demo/data", "demo/train"]);
    const [data, train] = jobs;
    const st = await waitTerminal(s, train.slurm_job_id);
    assert.equal(st.state, "COMPLETED", JSON.stringify(st));
    assert.equal(st.exit_code, 0);
    assert.equal(st.dependency, `afterok:${data.slurm_job_id}`);
    assert.equal((await status(s, data.slurm_job_id)).state, "COMPLETED");

    const lin = await s.run("artifacts", "lineage", "demo-model-tiny");
    assert.equal(lin.code, 0, lin.stderr);
    assert.match(lin.stdout, /^demo-model-tiny:v1\s+model\s+demo\/train/m);
    assert.match(lin.stdout, /demo-data-tiny:v1\s+dataset\s+demo\/data/);
    const manifest = JSON.parse(
      Deno.readTextFileSync(
        path.join(s.nemotronHome, "artifacts", "demo-model-tiny", "v1", "manifest.json"),
      ),
    );
    assert.equal(manifest.producer.recipe, "demo/train");
    assert.equal(manifest.producer.job_dir, train.job_dir);
    assert.deepEqual(manifest.used_artifacts, ["demo-data-tiny:v1"]);

    const logs = await s.run("jobs", "logs", train.slurm_job_id);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(lossLines(logs.stdout).length, 8, logs.stdout);

    const list = await s.run("jobs", "list");
    assert.equal(list.code, 0, list.stderr);
    assert.match(
      list.stdout,
      new RegExp(
        `pipeline demo-pipe-\\S+ \\(2 stages\\)\\n\\s+${data.slurm_job_id}\\s+demo/data\\s+COMPLETED[^\\n]*\\n\\s+${train.slurm_job_id}\\s+demo/train\\s+COMPLETED`,
      ),
    );
  },
);

slurmTest("demo pipe -c tiny --run cluster: streams the log and exits 0", async () => {
  const s = await site();
  const r = await s.run("demo", "pipe", "-c", "tiny", "--run", "cluster");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(lossLines(r.stdout + r.stderr).length, 8, r.stdout + r.stderr);
  const model = path.join(s.nemotronHome, "artifacts", "demo-model-tiny", "v1", "manifest.json");
  assert.ok(Deno.statSync(model).isFile);
});

slurmTest(
  "a failing first stage with -b: the second is cancelled, jobs list groups the pipeline",
  async () => {
    const s = await site();
    const [data, train] = await batch(
      s,
      "demo",
      "pipe",
      "-c",
      "tiny",
      "-b",
      "cluster",
      // Every stage gets every override; `corpus` is demo data's only, so `++` (Hydra's add or
      // override) lets demo train take it too.
      "++corpus=/nonexistent",
    );
    const first = await waitTerminal(s, data.slurm_job_id);
    assert.equal(first.state, "FAILED");
    assert.equal(first.exit_code, 2);
    const second = await waitTerminal(s, train.slurm_job_id);
    assert.equal(second.state, "CANCELLED", JSON.stringify(second));
    assert.equal(second.attempts, 0, "the second stage never ran");
    assert.match(second.note ?? "", new RegExp(`job ${data.slurm_job_id}\\) ended FAILED`));
    const text = await s.run("jobs", "status", train.slurm_job_id);
    assert.match(text.stdout, /failed stage: 0 \(demo\/data\), FAILED/);
    const list = await s.run("jobs", "list");
    // The pipeline is a header line of its own; each stage row: id, name, state, time, nodes,
    // exit — the exit code only where the stage ran, `cancelled` for the one that never did.
    const m = new RegExp(
      `^pipeline (demo-pipe-\\S+) \\(2 stages\\)\\n\\s+${data.slurm_job_id}\\s+demo/data\\s+FAILED\\s+ended \\d+ s ago\\s+\\S+\\s+2\\n\\s+${train.slurm_job_id}\\s+demo/train\\s+CANCELLED\\s+never ran\\s+cancelled$`,
      "m",
    ).exec(list.stdout);
    assert.ok(m, list.stdout);
    for (const l of list.stdout.split("\n")) assert.ok(l.length <= 80, `wider than 80: ${l}`);
    const pipelineId = m[1];
    // The pipeline id that jobs list shows works for status and logs (the failed stage's log).
    const pst = await s.run("jobs", "status", pipelineId);
    assert.equal(pst.code, 0, pst.stderr);
    assert.match(pst.stdout, new RegExp(`0: demo/data  job ${data.slurm_job_id}  FAILED`));
    assert.match(pst.stdout, new RegExp(`1: demo/train  job ${train.slurm_job_id}  CANCELLED`));
    const plogs = await s.run("jobs", "logs", pipelineId);
    assert.match(plogs.stdout, /corpus \/nonexistent not found/);
    assert.match(plogs.stderr, new RegExp(`stage 0 \\(demo/data, job ${data.slurm_job_id}\\)`));
    // The stage that never ran says so, and why.
    const never = await s.run("jobs", "logs", train.slurm_job_id);
    assert.match(never.stderr, /has no log and never will: it ended CANCELLED before it started/);
    const logs = await s.run("jobs", "logs", data.slurm_job_id);
    assert.match(logs.stdout + logs.stderr, /corpus \/nonexistent not found/);
    // nothing was published
    assert.throws(
      () => Deno.statSync(path.join(s.nemotronHome, "artifacts", "demo-data-tiny")),
      Deno.errors.NotFound,
    );
  },
);

slurmTest(
  "demo data --run cluster with a failing script returns the script's exit code",
  async () => {
    const s = await site();
    const r = await s.run("demo", "data", "-c", "tiny", "--run", "cluster", "corpus=/nonexistent");
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /corpus \/nonexistent not found/);
  },
);

slurmTest("jobs cancel: a long demo job is cancelled", async () => {
  const s = await site();
  const [job] = await batch(s, "demo", "data", "-c", "tiny", "-b", "sleepy");
  // wait until it runs (the startup command sleeps 300 s)
  const end = Date.now() + 30_000;
  while ((await status(s, job.slurm_job_id)).state !== "RUNNING") {
    assert.ok(Date.now() < end, "the job never started");
    await new Promise((r) => setTimeout(r, 300));
  }
  const c = await s.run("jobs", "cancel", job.slurm_job_id);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, new RegExp(`cancelled job ${job.slurm_job_id}\\b`));
  const st = await waitTerminal(s, job.slurm_job_id, 30_000);
  assert.equal(st.state, "CANCELLED");
});

slurmTest(
  "retries = 1: a failing stage is requeued once; jobs logs --attempt shows each attempt",
  async () => {
    const s = await site();
    const [job] = await batch(
      s,
      "demo",
      "data",
      "-c",
      "tiny",
      "-b",
      "flaky",
      "corpus=/nonexistent",
    );
    const st = await waitTerminal(s, job.slurm_job_id, 90_000);
    assert.equal(st.state, "FAILED", JSON.stringify(st));
    assert.equal(st.exit_code, 2);
    assert.equal(st.attempts, 2);
    for (const n of ["0", "1"]) {
      const r = await s.run("jobs", "logs", job.slurm_job_id, "--attempt", n);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /error: corpus \/nonexistent not found/, `attempt ${n}`);
    }
    const none = await s.run("jobs", "logs", job.slurm_job_id, "--attempt", "2");
    assert.equal(none.code, 2);
    assert.match(none.stderr, /attempts with logs: 0, 1/);
  },
);

slurmTest(
  "20 concurrent `demo data -b cluster` commands: 20 job dirs, 20 store rows, 20 Slurm jobs",
  async () => {
    const s = await site();
    const runs = await Promise.all(
      Array.from(
        { length: 20 },
        () => s.run("demo", "data", "-c", "tiny", "-b", "cluster", "--json"),
      ),
    );
    const jobs = runs.map((r) => {
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).jobs[0] as Submitted;
    });
    assert.equal(new Set(jobs.map((j) => j.job_dir)).size, 20, "distinct job dirs");
    assert.equal(new Set(jobs.map((j) => j.slurm_job_id)).size, 20, "distinct Slurm jobs");
    for (const j of jobs) assert.ok(Deno.statSync(path.join(j.job_dir, "sbatch.sh")).isFile);
    const list = await s.run("jobs", "list", "--all", "--json");
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as { slurm_job_id: string }[];
    const ids = new Set(rows.map((r) => r.slurm_job_id));
    for (const j of jobs) assert.ok(ids.has(j.slurm_job_id), `store row for ${j.slurm_job_id}`);
    assert.equal(rows.length, 20);
    // Let them finish so later tests find an idle cluster.
    for (const j of jobs) await waitTerminal(s, j.slurm_job_id);
  },
);

slurmTest(
  "a pipeline submitted with -b is cancelled as a whole with the id its report suggests",
  async () => {
    const s = await site();
    const r = await s.run("demo", "pipe", "-c", "tiny", "-b", "sleepy");
    assert.equal(r.code, 0, r.stderr);
    const report = r.stdout + r.stderr;
    const m = /cancel: +nemotron jobs cancel (demo-pipe-\S+)/.exec(report);
    assert.ok(m, report);
    const ids = [...report.matchAll(/as Slurm job (\d+)/g)].map((x) => x[1]);
    assert.equal(ids.length, 2, report);
    const c = await s.run("jobs", "cancel", m[1]);
    assert.equal(c.code, 0, c.stderr);
    for (const id of ids) {
      const st = await waitTerminal(s, id);
      assert.equal(st.state, "CANCELLED", JSON.stringify(st));
    }
  },
);
