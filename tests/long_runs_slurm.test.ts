/**
 * Long runs on a real Slurm cluster: a private single-node instance started by this test
 * (`SLURM_LOCAL_DIR=/var/tmp/nemotron-lr`, port 7917, `SLURM_LOCAL_CRED_EXPIRE=10`) and stopped in
 * `finally`; the shared default cluster is never touched (SLURM_CONF points at ours).
 *
 * 1. `demo train` with `time = "1"`, `signal_before = "30s"`, slowed so that it needs three
 *    attempts: COMPLETED after exactly three, the logs show checkpoint → requeue → resume from the
 *    right step, the losses equal an uninterrupted local run's, `jobs list` marks it requeued
 *    between attempts, the secrets file lives until the last attempt ends.
 * 2. `scontrol requeue` of a running attempt (the stand-in for preemption): it resumes from its
 *    latest checkpoint; requeued again after it finished, the finished marker makes the extra
 *    attempt do nothing.
 * 3. `scancel`: a cancel, never resumed.
 * 4. A script that always fails stops after max_restarts, every attempt's log kept, the secret
 *    delivered to every attempt and gone afterwards.
 *
 * Two things are arranged for speed and determinism, and only in this test: Slurm checks time
 * limits (and sends `--signal`) about every 30 s, so a probe job first finds the phase of that
 * check and the training job is submitted right after it (each attempt then runs ~25–30 s before
 * its signal); and a requeued job's BeginTime hold (~1 min here) is released after 2.5 s with
 * `scontrol update StartTime=now`, as tests/slurm_cluster.ts does.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { START_SCRIPT } from "./slurm_cluster.ts";
import { buildSlurmJob, renderSbatch } from "../lib/exec/slurm.ts";
import { attemptLogPath, prepareJobDir, readAttempts } from "../lib/exec/job_dir.ts";
import { submitJob } from "../lib/exec/submit.ts";
import { readOrEmpty } from "./cli_helpers.ts";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const MAIN = path.join(HERE, "..", "main.ts");
const STOP_SCRIPT = path.join(path.dirname(START_SCRIPT), "stop-local-slurm.sh");
const BASE = "/var/tmp/nemotron-lr";
const CLUSTER_ENV = {
  SLURM_LOCAL_DIR: BASE,
  SLURM_LOCAL_CTLD_PORT: "7917",
  SLURM_LOCAL_CONF_LINK: `${BASE}/slurm.conf.link`,
  SLURM_LOCAL_CRED_EXPIRE: "10",
  SLURM_LOCAL_CPUS: "4",
  SLURM_CONF: `${BASE}/etc/slurm.conf`,
};
const SECRET = "lr-secret-value-7f3a9c";
const dec = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sh(cmd: string, args: string[], env: Record<string, string> = {}) {
  const o = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

interface Ctx {
  work: string;
  root: string;
  home: string;
  env: Record<string, string>;
}

async function cli(ctx: Ctx, ...args: string[]) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ctx.work,
    env: ctx.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

interface SqRow {
  state: string;
  reason: string;
  restarts: number;
}

async function squeue(id: string): Promise<SqRow> {
  const r = await sh("squeue", [
    "-h",
    "-t",
    "all",
    "-j",
    id,
    "-O",
    "State:|,Reason:|,RestartCnt:|",
  ]);
  const [state, reason, restarts] = r.stdout.trim().split("|");
  return { state: state ?? "", reason: reason ?? "", restarts: Number(restarts) || 0 };
}

const TERMINAL = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED)/;

/**
 * Poll until the job is terminal. Each time it waits for its next attempt (PENDING, BeginTime),
 * `onRequeued(restarts)` runs once, then the hold is released after 2.5 s.
 */
async function waitJob(
  id: string,
  timeoutMs: number,
  onRequeued: (restarts: number) => Promise<void> = async () => {},
): Promise<SqRow> {
  const end = Date.now() + timeoutMs;
  const seen = new Set<number>();
  let heldSince = 0;
  while (Date.now() < end) {
    const row = await squeue(id);
    if (TERMINAL.test(row.state)) return row;
    if (row.state === "PENDING" && row.reason === "BeginTime") {
      if (!seen.has(row.restarts)) {
        seen.add(row.restarts);
        heldSince = Date.now();
        await onRequeued(row.restarts);
      }
      if (Date.now() - heldSince >= 2500) {
        await sh("scontrol", ["update", `JobId=${id}`, "StartTime=now"]);
      }
    }
    await sleep(300);
  }
  throw new Error(
    `job ${id} did not end within ${timeoutMs} ms: ${JSON.stringify(await squeue(id))}`,
  );
}

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 60_000,
) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function exists(file: string): boolean {
  try {
    Deno.statSync(file);
    return true;
  } catch {
    return false;
  }
}

function stepLines(text: string): string[] {
  return text.split("\n").filter((l) => /^step \d+\/\d+ loss /.test(l));
}

/** No file under these dirs holds the secret value. */
function assertNoSecret(...dirs: string[]): void {
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(d)) {
      const p = path.join(d, e.name);
      if (e.isDirectory) walk(p);
      else if (e.isFile) assert.ok(!readOrEmpty(p).includes(SECRET), `the secret is in ${p}`);
    }
  };
  for (const d of dirs) walk(d);
}

interface Submitted {
  id: string;
  jobDir: string;
  log: (attempt: number) => string;
  secretsFile: string;
}

async function submitDemo(ctx: Ctx, profile: string, overrides: string[]): Promise<Submitted> {
  const r = await cli(
    ctx,
    "demo",
    "train",
    "-c",
    "tiny",
    "--batch",
    profile,
    "--json",
    ...overrides,
  );
  assert.equal(r.code, 0, r.stderr);
  const job = JSON.parse(r.stdout).jobs[0];
  const manifest = JSON.parse(readOrEmpty(path.join(job.job_dir, "job.json")));
  return {
    id: job.slurm_job_id,
    jobDir: job.job_dir,
    log: (n) => readOrEmpty(attemptLogPath(job.job_dir, manifest.slurm_name, job.slurm_job_id, n)),
    secretsFile: manifest.secrets_file,
  };
}

async function status(ctx: Ctx, id: string) {
  const r = await cli(ctx, "jobs", "status", id, "--json");
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Wait for Slurm's next time-limit check (the `--signal` phase) with a probe job; its time. */
async function timeLimitTick(ctx: Ctx): Promise<number> {
  const mark = path.join(ctx.root, "tick");
  const r = await sh("sbatch", [
    "--parsable",
    "--time=1",
    "--signal=B:USR1@30",
    `--output=${ctx.root}/probe-%j.out`,
    "--wrap",
    `trap 'date +%s > ${mark}; exit 0' USR1; sleep 100 & wait; sleep 100 & wait`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  await waitJob(id, 60_000);
  return Number(readOrEmpty(mark).trim());
}

async function threeAttempts(ctx: Ctx, reference: string[]): Promise<void> {
  await timeLimitTick(ctx);
  const sub = await submitDemo(ctx, "lr", [
    "train.steps=31",
    "train.step_seconds=2",
    "train.checkpoint_every=5",
  ]);
  const between: string[] = [];
  const final = await waitJob(sub.id, 300_000, async (restarts) => {
    // between attempts: jobs list marks it, and the next attempt still has its secrets
    const list = await cli(ctx, "jobs", "list");
    between.push(list.stdout);
    assert.match(
      list.stdout,
      new RegExp(
        `^${sub.id}\\s+demo/train\\s+REQUEUED\\s+attempt ${restarts} next`,
        "m",
      ),
    );
    const json = JSON.parse((await cli(ctx, "jobs", "list", "--json")).stdout);
    assert.equal(
      json.find((j: { slurm_job_id: string }) => j.slurm_job_id === sub.id).between_attempts,
      true,
    );
    assert.ok(exists(sub.secretsFile), "the secrets file went before the last attempt");
  });
  const sbatchLog = readOrEmpty(path.join(sub.jobDir, "logs", `sbatch-demo-train_${sub.id}.out`));
  assert.equal(final.state, "COMPLETED", sbatchLog);
  assert.equal(final.restarts, 2, `not exactly three attempts:\n${sbatchLog}`);
  assert.equal(between.length, 2);

  const logs = [0, 1, 2].map((n) => sub.log(n));
  const signalled = logs.slice(0, 2).map((l, n) => {
    const m = /^\[train\] checkpoint at step (\d+) \(signal SIGUSR1\)/m.exec(l);
    assert.ok(m, `attempt ${n} did not checkpoint on SIGUSR1:\n${l}`);
    return Number(m[1]);
  });
  assert.match(logs[1], new RegExp(`^\\[train\\] resuming from step ${signalled[0]} `, "m"));
  assert.match(logs[2], new RegExp(`^\\[train\\] resuming from step ${signalled[1]} `, "m"));
  assert.doesNotMatch(logs[0], /resuming/);
  // every step ran exactly once across the attempts, with the uninterrupted run's losses
  assert.deepEqual(logs.flatMap(stepLines), reference.slice(0, 31));
  assert.match(sbatchLog, /requeueing: restart 1 of max_restarts = 3/);
  assert.match(sbatchLog, /requeueing: restart 2 of max_restarts = 3/);
  assert.match(sbatchLog, /finished: .*FINISHED/);

  const attempts = readAttempts(sub.jobDir);
  assert.deepEqual(attempts.map((a) => [a.exitCode, a.reason]), [
    [75, "timelimit"],
    [75, "timelimit"],
    [0, "exit"],
  ]);
  const st = await status(ctx, sub.id);
  assert.equal(st.state, "COMPLETED");
  assert.equal(st.restarts, 2);
  assert.equal(st.max_restarts, 3);
  assert.deepEqual(st.attempt_history.map((h: { ended_by: string }) => h.ended_by), [
    "time_limit",
    "time_limit",
    "finished",
  ]);
  const text = await cli(ctx, "jobs", "status", sub.id);
  assert.match(text.stdout, /restarts: {2}2, max_restarts 3 \(auto_resume\)/);
  assert.match(text.stdout, /attempt 0 .* time limit near: SIGUSR1, exit code 75/);
  const one = await cli(ctx, "jobs", "logs", sub.id, "--attempt", "1");
  assert.equal(one.stdout, logs[1]);
  assert.ok(!exists(sub.secretsFile), "the secrets file outlived the last attempt");
  assertNoSecret(sub.jobDir, ctx.home);
}

async function preempted(ctx: Ctx, reference: string[]): Promise<void> {
  const sub = await submitDemo(ctx, "lr10", [
    "train.steps=12",
    "train.step_seconds=1",
    "train.checkpoint_every=3",
  ]);
  const follow = cli(ctx, "jobs", "logs", sub.id, "-f"); // what `--run` does: across attempts
  await waitFor(
    "a periodic checkpoint",
    () => /checkpoint at step 3 \(every/.test(sub.log(0)) || undefined,
  );
  const rq = await sh("scontrol", ["requeue", sub.id]); // what preemption with requeue does
  assert.equal(rq.code, 0, rq.stderr);
  const final = await waitJob(sub.id, 120_000);
  assert.equal(final.state, "COMPLETED");
  assert.equal(final.restarts, 1);
  const followed = await follow;
  assert.equal(followed.code, 0, followed.stderr);
  assert.match(followed.stderr, new RegExp(`job ${sub.id}: attempt 1 \\(requeued\\)`));
  assert.equal(followed.stdout, sub.log(0) + sub.log(1));
  const [first, second] = [sub.log(0), sub.log(1)];
  const saved = [...first.matchAll(/^\[train\] checkpoint at step (\d+) /gm)].map((m) =>
    Number(m[1])
  );
  const at = Math.max(...saved);
  assert.match(second, new RegExp(`^\\[train\\] resuming from step ${at} `, "m"));
  assert.deepEqual(
    [...stepLines(first).slice(0, at), ...stepLines(second)],
    reference.slice(0, 12).map((l) => l.replace(/\/31 /, "/12 ")),
  );
  const st = await status(ctx, sub.id);
  assert.deepEqual(st.attempt_history.map((h: { ended_by: string }) => h.ended_by), [
    "requeued",
    "finished",
  ]);
  assert.ok(!exists(sub.secretsFile));

  // requeued once more after it finished: the finished marker makes that attempt do nothing
  assert.equal((await sh("scontrol", ["requeue", sub.id])).code, 0);
  const again = await waitJob(sub.id, 120_000);
  assert.equal(again.state, "COMPLETED");
  assert.equal(again.restarts, 2);
  const sbatchLog = readOrEmpty(path.join(sub.jobDir, "logs", `sbatch-demo-train_${sub.id}.out`));
  assert.match(sbatchLog, /the job already finished; this attempt does nothing/);
  assert.equal(sub.log(2), "", "the finished job trained again");
  assert.equal(readAttempts(sub.jobDir)[2].reason, "finished");
}

async function cancelled(ctx: Ctx): Promise<void> {
  const sub = await submitDemo(ctx, "lr10", ["train.steps=200", "train.step_seconds=1"]);
  await waitFor("the first step", () => /^step 1\//m.test(sub.log(0)) || undefined);
  assert.equal((await sh("scancel", [sub.id])).code, 0);
  const final = await waitJob(sub.id, 60_000);
  assert.equal(final.state, "CANCELLED");
  await sleep(5000); // a requeue would show by now (the hold is released after 2.5 s)
  const later = await squeue(sub.id);
  assert.equal(later.state, "CANCELLED");
  assert.equal(later.restarts, 0);
  assert.equal(sub.log(1), "");
  const st = await status(ctx, sub.id); // nemotron sees it ended: the secrets file goes
  assert.equal(st.state, "CANCELLED");
  assert.equal(st.attempt_history[0].ended_by, "cancelled");
  assert.ok(!exists(sub.secretsFile));
}

async function alwaysFails(ctx: Ctx): Promise<void> {
  const job = buildSlurmJob({
    name: "always fails",
    mode: "batch",
    launch: "direct",
    profile: { remote_job_dir: ctx.root, time: "10", auto_resume: true, max_restarts: 2 },
    command: [
      "/usr/bin/python3",
      "-c",
      "import hashlib, os, sys; print('attempt', os.environ['NEMOTRON_ATTEMPT'], 'secret sha', hashlib.sha256(os.environ['LR_API_TOKEN'].encode()).hexdigest()[:12]); sys.exit(3)",
    ],
    env: { LR_API_TOKEN: SECRET },
  });
  prepareJobDir(job, await renderSbatch(job));
  Deno.env.set("NEMOTRON_HOME", ctx.home);
  const sub = await submitJob(job);
  const final = await waitJob(sub.slurm_job_id, 120_000);
  assert.equal(final.state, "FAILED");
  assert.equal(final.restarts, 2);
  const sha = (await sh("python3", [
    "-c",
    `import hashlib; print(hashlib.sha256(b"${SECRET}").hexdigest()[:12])`,
  ]))
    .stdout.trim();
  for (const n of [0, 1, 2]) {
    const log = readOrEmpty(attemptLogPath(job.jobDir, job.slurmName, sub.slurm_job_id, n));
    assert.match(log, new RegExp(`^attempt ${n} secret sha ${sha}$`, "m"), `attempt ${n}: ${log}`);
  }
  const st = await status(ctx, sub.slurm_job_id);
  assert.equal(st.state, "FAILED");
  assert.equal(st.exit_code, 3);
  assert.equal(st.restarts, 2);
  assert.deepEqual(st.attempt_history.map((h: { ended_by: string }) => h.ended_by), [
    "failed",
    "failed",
    "failed",
  ]);
  assert.deepEqual(st.last_log_tail, [`attempt 2 secret sha ${sha}`]);
  const text = await cli(ctx, "jobs", "status", sub.slurm_job_id);
  assert.match(
    text.stdout,
    /last attempt \(2\) ended: failed with exit code 3; its log ends with:/,
  );
  const batch = readOrEmpty(path.join(job.logsDir, `sbatch-always-fails_${sub.slurm_job_id}.out`));
  assert.match(batch, /no restarts left \(max_restarts = 2\); the job ends with exit code 3/);
  assert.ok(!exists(job.secretsFile!), "the secrets file outlived the last attempt");
  assertNoSecret(job.jobDir, ctx.home);
}

Deno.test({
  name: "long runs on a private Slurm cluster: time limits, preemption, cancel, failures",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    if (Deno.env.get("NEMOTRON_SKIP_SLURM") || Deno.uid?.() !== 0 || !exists(START_SCRIPT)) {
      console.log(
        "SKIP long runs on Slurm: needs root, the start script and NEMOTRON_SKIP_SLURM unset",
      );
      return;
    }
    const saved = Deno.env.get("SLURM_CONF");
    const start = await sh("bash", [START_SCRIPT, "--clean"], CLUSTER_ENV);
    try {
      assert.equal(start.code, 0, start.stdout + start.stderr);
      Deno.env.set("SLURM_CONF", CLUSTER_ENV.SLURM_CONF);
      const work = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "nemotron-lr-work-" });
      const root = path.join(work, "jobs");
      const home = path.join(work, "home");
      Deno.mkdirSync(root);
      const envToml = path.join(work, "env.toml");
      Deno.writeTextFileSync(
        envToml,
        [
          "[lr]",
          'executor = "slurm"',
          `remote_job_dir = "${root}"`,
          'time = "1"',
          "auto_resume = true",
          'signal_before = "30s"',
          `env_vars = { LR_API_TOKEN = "${SECRET}" }`,
          "",
          "[lr10]",
          'extends = "lr"',
          'time = "10"',
          "",
        ].join("\n"),
      );
      const ctx: Ctx = {
        work,
        root,
        home,
        env: {
          SLURM_CONF: CLUSTER_ENV.SLURM_CONF,
          NEMOTRON_HOME: home,
          NEMOTRON_ENV_FILE: envToml,
          NEMOTRON_ARTIFACTS_ROOT: path.join(work, "artifacts"),
        },
      };
      // the data, and the uninterrupted reference run (local, no sleeping)
      const data = await cli(ctx, "demo", "data", "-c", "tiny");
      assert.equal(data.code, 0, data.stderr);
      const ref = await cli(ctx, "demo", "train", "-c", "tiny", "train.steps=31");
      assert.equal(ref.code, 0, ref.stderr);
      const reference = stepLines(ref.stdout);
      assert.equal(reference.length, 31);

      await threeAttempts(ctx, reference);
      await preempted(ctx, reference);
      await cancelled(ctx);
      await alwaysFails(ctx);
      Deno.removeSync(work, { recursive: true }); // kept when something failed, to debug
    } finally {
      if (saved === undefined) Deno.env.delete("SLURM_CONF");
      else Deno.env.set("SLURM_CONF", saved);
      const stop = await sh("bash", [STOP_SCRIPT], CLUSTER_ENV);
      if (stop.code !== 0) console.error(`stop-local-slurm.sh: ${stop.stdout}${stop.stderr}`);
    }
  },
});
