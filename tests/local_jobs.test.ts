/**
 * Local runs are jobs too: a real local `demo pipe`, a failing run and a cancelled one are rows of
 * the job store, so `jobs list` shows them, `jobs logs ID` prints what the script printed (checked
 * against the run's own output), `jobs status` tells how it ended, `jobs cancel` stops a running one,
 * and a run whose nemotron process vanished is LOST, not RUNNING forever.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN, runCli, tempDir } from "./cli_helpers.ts";
import { type JobRecord, JobStore } from "../lib/jobs/store.ts";

interface Sandbox {
  readonly cwd: string;
  readonly env: Record<string, string>;
  run(...args: string[]): ReturnType<typeof runCli>;
}

async function sandbox(): Promise<Sandbox> {
  const cwd = await tempDir("nemotron-local-jobs-");
  const home = await tempDir("nemotron-local-jobs-home-");
  const env = { HOME: home, NEMOTRON_HOME: path.join(home, ".nemotron"), NEMOTRON_ENV_FILE: "" };
  return { cwd, env, run: (...args) => runCli(args, { cwd, env }) };
}

// deno-lint-ignore no-explicit-any
type Row = Record<string, any>;

async function list(sb: Sandbox): Promise<Row[]> {
  const r = await sb.run("jobs", "list", "--json");
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

Deno.test("local runs are rows of the job store: list, status, logs", async () => {
  const sb = await sandbox();
  const pipe = await sb.run("demo", "pipe", "-c", "tiny");
  assert.equal(pipe.code, 0, pipe.stderr);
  const ids = [...pipe.stderr.matchAll(/local job (L[0-9a-f]{6})/g)].map((m) => m[1]);
  assert.equal(ids.length, 2, pipe.stderr);
  const rows = await list(sb);
  const byId = new Map(rows.map((r) => [r.slurm_job_id, r]));
  assert.equal(byId.get(ids[0])?.name, "demo/data");
  assert.equal(byId.get(ids[1])?.name, "demo/train");
  for (const id of ids) {
    assert.equal(byId.get(id)?.state, "COMPLETED");
    assert.equal(byId.get(id)?.exit_code, 0);
    assert.equal(byId.get(id)?.mode, "local");
  }
  // The log of the train run is what the script printed (its loss lines went to stdout).
  const logs = await sb.run("jobs", "logs", ids[1]);
  assert.equal(logs.code, 0, logs.stderr);
  const losses = (t: string) => t.split("\n").filter((l) => /^step \d+\/\d+ loss/.test(l));
  assert.ok(losses(pipe.stdout).length > 0, pipe.stdout);
  assert.deepEqual(losses(logs.stdout), losses(pipe.stdout));
  // Slurm-only options are refused for a local run (one log), not silently ignored.
  for (const opt of [["--role", "head"], ["--sbatch"], ["--attempt", "1"]]) {
    const r = await sb.run("jobs", "logs", ids[1], ...opt);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`${opt[0]} applies to Slurm jobs; ${ids[1]} is a local run`));
  }
  const text = await sb.run("jobs", "list");
  assert.match(text.stdout, new RegExp(`^${ids[1]}\\s+demo/train\\s+COMPLETED\\s+ended`, "m"));
  const st = await sb.run("jobs", "status", ids[0]);
  assert.match(st.stdout, /state: +COMPLETED/);
  assert.match(st.stdout, /exit code: 0/);
});

Deno.test("a failing local run is FAILED with the script's exit code", async () => {
  const sb = await sandbox();
  const r = await sb.run("demo", "data", "-c", "tiny", "corpus=/nonexistent");
  assert.equal(r.code, 2, r.stderr);
  const id = /local job (L[0-9a-f]{6})/.exec(r.stderr)![1];
  const row = (await list(sb)).find((x) => x.slurm_job_id === id)!;
  assert.equal(row.state, "FAILED");
  assert.equal(row.exit_code, 2);
});

Deno.test({
  name: "jobs cancel stops a running local run (CANCELLED); a vanished run is LOST",
  sanitizeResources: false,
  fn: async () => {
    const sb = await sandbox();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "demo",
        "pipe",
        "-c",
        "tiny",
        // every stage of a pipe gets every override: `++` adds it where the stage lacks it
        "++train.step_seconds=2",
      ],
      cwd: sb.cwd,
      env: { ...sb.env, NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let id: string | undefined;
    for (let i = 0; i < 300 && !id; i++) {
      id = (await list(sb)).find((r) => r.name === "demo/train" && r.state === "RUNNING")
        ?.slurm_job_id;
      if (!id) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(id, "the train run appeared as RUNNING");
    const c = await sb.run("jobs", "cancel", id);
    assert.equal(c.code, 0, c.stderr);
    const out = await child.output();
    assert.notEqual(out.code, 0);
    const row = (await list(sb)).find((r) => r.slurm_job_id === id)!;
    assert.equal(row.state, "CANCELLED");
    const text = await sb.run("jobs", "list");
    assert.match(text.stdout, new RegExp(`^${id}\\s+demo/train\\s+CANCELLED.*cancelled$`, "m"));

    // A row whose process is gone (a pid that has exited) is LOST once anyone looks.
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    const store = await JobStore.open(path.join(sb.env.NEMOTRON_HOME, "jobs.db"));
    const now = new Date().toISOString();
    store.insert({
      ...(row as JobRecord),
      slurm_job_id: "Ldead00",
      key: "lost-run",
      state: "RUNNING",
      terminal: false,
      exit_code: null,
      reason: `pid ${dead.pid}`,
      ended_at: null,
      submitted_at: now,
      updated_at: now,
    });
    store.close();
    const lost = (await list(sb)).find((r) => r.slurm_job_id === "Ldead00")!;
    assert.equal(lost.state, "LOST");
    assert.equal(lost.terminal, true);
  },
});
