/** The SQLite job store: rows round-trip, list filters, and several processes writing at once. */
import assert from "node:assert/strict";
import * as path from "node:path";
import { defaultStorePath, type JobRecord, JobStore } from "../lib/jobs/store.ts";

function record(over: Partial<JobRecord>): JobRecord {
  const now = new Date().toISOString();
  return {
    slurm_job_id: "1",
    cluster: "c",
    key: "k1",
    name: "demo/train",
    slurm_name: "demo-train",
    profile: "cluster",
    mode: "batch",
    job_dir: "/shared/jobs/k1",
    pipeline: null,
    stage: null,
    stages: null,
    dependency: null,
    state: "PENDING",
    terminal: false,
    exit_code: null,
    signal: null,
    attempts: 0,
    nodes: null,
    reason: null,
    elapsed: null,
    secrets_file: null,
    submitted_at: now,
    started_at: null,
    ended_at: null,
    updated_at: now,
    note: null,
    ...over,
  };
}

Deno.test("store path follows NEMOTRON_HOME", () => {
  const old = Deno.env.get("NEMOTRON_HOME");
  Deno.env.set("NEMOTRON_HOME", "/x/y");
  try {
    assert.equal(defaultStorePath(), "/x/y/jobs.db");
  } finally {
    if (old === undefined) Deno.env.delete("NEMOTRON_HOME");
    else Deno.env.set("NEMOTRON_HOME", old);
  }
});

Deno.test("rows round-trip; find by id, key or dir; pipelines in stage order; list filters", async () => {
  const dir = Deno.makeTempDirSync();
  const store = await JobStore.open(path.join(dir, "jobs.db"));
  try {
    const old = new Date(Date.now() - 3 * 86400_000).toISOString();
    store.insert(record({ key: "a", slurm_job_id: "10", job_dir: "/j/a" }));
    store.insert(record({
      key: "b",
      slurm_job_id: "11",
      state: "COMPLETED",
      terminal: true,
      exit_code: 0,
      submitted_at: old,
      updated_at: old,
    }));
    store.insert(record({ key: "p1", slurm_job_id: "21", pipeline: "pipe", stage: 1, stages: 2 }));
    store.insert(record({ key: "p0", slurm_job_id: "20", pipeline: "pipe", stage: 0, stages: 2 }));
    assert.equal(store.find("10")[0].key, "a");
    assert.equal(store.find("a")[0].slurm_job_id, "10");
    assert.equal(store.find("/j/a/")[0].key, "a");
    assert.deepEqual(store.find("nope"), []);
    const b = store.find("b")[0];
    assert.equal(b.terminal, true);
    assert.equal(b.exit_code, 0);
    assert.deepEqual(store.pipeline("pipe").map((r) => r.key), ["p0", "p1"]);
    // Default list: live jobs and recently ended ones; the 3-day-old finished job only with --all.
    assert.deepEqual(store.list().map((r) => r.key).sort(), ["a", "p0", "p1"]);
    assert.equal(store.list({ all: true }).length, 4);
    store.update("a", { state: "FAILED", terminal: true, exit_code: 3, note: "x" });
    const a = store.find("a")[0];
    assert.equal(a.state, "FAILED");
    assert.equal(a.exit_code, 3);
    assert.equal(a.note, "x");
    assert.throws(() => store.insert(record({ key: "a" })), /UNIQUE/);
  } finally {
    store.close();
  }
});

Deno.test("8 processes insert and update 25 rows each into one store at the same time", async () => {
  const dir = Deno.makeTempDirSync();
  const file = path.join(dir, "jobs.db");
  const writer = path.join(path.dirname(new URL(import.meta.url).pathname), "jobs_store_writer.ts");
  const children = Array.from({ length: 8 }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", writer, file, `w${i}x`, "25"],
      stdout: "piped",
      stderr: "piped",
    }).output());
  const results = await Promise.all(children);
  for (const r of results) assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  const store = await JobStore.open(file);
  try {
    const rows = store.list({ all: true });
    assert.equal(rows.length, 200);
    assert.equal(new Set(rows.map((r) => r.key)).size, 200);
    assert.ok(rows.every((r) => r.state === "RUNNING" && r.attempts === 1));
  } finally {
    store.close();
  }
  const journal = new TextDecoder().decode(
    (await new Deno.Command("/usr/bin/python3", {
      args: [
        "-c",
        `import sqlite3; print(sqlite3.connect(${
          JSON.stringify(file)
        }).execute("PRAGMA journal_mode").fetchone()[0])`,
      ],
      stdout: "piped",
    }).output()).stdout,
  ).trim();
  assert.equal(journal, "wal");
});
