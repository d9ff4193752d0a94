/**
 * On a real Slurm cluster (tests/slurm_cluster.ts starts the local one): bare-metal jobs submitted
 * through lib/exec see exactly the strings they were given; secrets arrive intact and leave no
 * trace; retries requeue and keep one log per attempt; `--run`-style following returns the job's
 * exit code; `jobs cancel`; a bad partition; pipelines cancel the stages that can never run;
 * 20 concurrent submissions; and slurmctld being down (last: it stops and restarts slurmctld).
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import fc from "fast-check";
import { buildSlurmJob, type PipelineRef, renderSbatch, slurmJobName } from "../lib/exec/slurm.ts";
import { attemptLogPath, prepareJobDir, readManifest } from "../lib/exec/job_dir.ts";
import { submitJob, submitSbatch } from "../lib/exec/submit.ts";
import { followJob } from "../lib/exec/follow.ts";
import { refreshJobs } from "../lib/exec/tracking.ts";
import { JobStore } from "../lib/jobs/store.ts";
import { RuntimeFailure } from "../lib/errors.ts";
import {
  ensureSlurm,
  releaseRequeueHolds,
  slurmTest,
  START_SCRIPT,
  tempJobRoot,
  waitForJob,
} from "./slurm_cluster.ts";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const MAIN = path.join(HERE, "..", "main.ts");
const HOME = Deno.makeTempDirSync({ prefix: "nemotron-home-" });
Deno.env.set("NEMOTRON_HOME", HOME);
const dec = new TextDecoder();

interface Submitted {
  job: ReturnType<typeof buildSlurmJob>;
  id: string;
}

async function submit(
  root: string,
  name: string,
  command: string[],
  opts: {
    env?: Record<string, string>;
    profile?: Record<string, unknown>;
    after?: string[];
    pipeline?: PipelineRef;
    mode?: "run" | "batch";
  } = {},
): Promise<Submitted> {
  const job = buildSlurmJob({
    name,
    mode: opts.mode ?? "batch",
    launch: "direct",
    profile: { remote_job_dir: root, time: "10", ...opts.profile },
    command,
    env: opts.env,
    pipeline: opts.pipeline,
  });
  prepareJobDir(job, await renderSbatch(job));
  const sub = await submitJob(job, { after: opts.after });
  return { job, id: sub.slurm_job_id };
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NEMOTRON_HOME: HOME },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function withStore<T>(fn: (s: JobStore) => Promise<T>): Promise<T> {
  const store = await JobStore.open();
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

function logOf(s: Submitted, attempt = 0): string {
  return Deno.readTextFileSync(attemptLogPath(s.job.jobDir, s.job.slurmName, s.id, attempt));
}

/** Every regular file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = path.join(dir, e.name);
    if (e.isDirectory) out.push(...filesUnder(p));
    else if (e.isFile) out.push(p);
  }
  return out;
}

const PROBE = [
  "import hashlib, json, os, sys",
  "names = [n for n in os.environ.get('PROBE_NAMES', '').split(',') if n]",
  "print('@@' + json.dumps({'argv': sys.argv[1:], 'env': {n: os.environ.get(n) for n in names}, 'job_name': os.environ.get('SLURM_JOB_NAME'), 'cwd': os.getcwd()}))",
].join("\n");

const text = fc.string({ unit: "binary", maxLength: 20 }).filter((s) => !s.includes("\0"));

slurmTest(
  "property (bare metal, real Slurm): the job sees exactly the env values, args and job name",
  async () => {
    const root = tempJobRoot();
    const samples = fc.sample(
      fc.record({
        name: text,
        args: fc.array(text, { maxLength: 4 }),
        values: fc.array(text, { minLength: 1, maxLength: 3 }),
      }),
      { numRuns: 8, seed: 20260101 },
    );
    // Always include the nastiest hand-written case too.
    samples.push({
      name: 'it\'s a "job" $(x) `y`',
      args: ["a b", "$HOME", "'", '"', "\\", "line1\nline2", "*", "--flag=x y", ""],
      values: ["$(rm -rf /)", "`id`", "a'b\"c\\d\ne", " lead and trail "],
    });
    const subs = [];
    for (const s of samples) {
      const env: Record<string, string> = {};
      s.values.forEach((v, i) => env[`PROBE_V${i}`] = v);
      env.PROBE_NAMES = Object.keys(env).join(",");
      subs.push({
        s,
        env,
        sub: await submit(root, s.name, ["/usr/bin/python3", "-c", PROBE, ...s.args], { env }),
      });
    }
    for (const { s, env, sub } of subs) {
      assert.equal(await waitForJob(sub.id), "COMPLETED");
      const line = logOf(sub).split("\n").find((l) => l.startsWith("@@"));
      assert.ok(line, `no probe output for job ${sub.id}`);
      const seen = JSON.parse(line.slice(2));
      assert.deepEqual(seen.argv, s.args);
      for (const [k, v] of Object.entries(env)) {
        if (k !== "PROBE_NAMES") assert.equal(seen.env[k], v, k);
      }
      assert.equal(seen.job_name, slurmJobName(s.name));
      assert.equal(seen.cwd, path.join(sub.job.jobDir, "code"));
    }
  },
);

slurmTest(
  "secrets: quotes, $, backticks, newline arrive intact; no trace in job dir, logs or DB; file gone",
  async () => {
    const root = tempJobRoot();
    const secret = 's3cr\'et "q" $HOME `id` \\n\nsecond line ~!';
    const digest = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret))),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const check = "import hashlib, os, sys; v = os.environ['MY_SECRET_TOKEN']; " +
      "print('secret', 'intact' if hashlib.sha256(v.encode()).hexdigest() == sys.argv[1] else 'CHANGED')";
    const sub = await submit(root, "secrets", ["/usr/bin/python3", "-c", check, digest], {
      env: { MY_SECRET_TOKEN: secret, PUBLIC_THING: "visible" },
    });
    const secretsFile = sub.job.secretsFile!;
    assert.equal(Deno.statSync(path.dirname(secretsFile)).mode! & 0o777, 0o700);
    assert.equal(await waitForJob(sub.id), "COMPLETED");
    assert.match(logOf(sub), /^secret intact$/m);
    await withStore((s) => refreshJobs(s, s.find(sub.id)));
    assert.throws(() => Deno.statSync(secretsFile), Deno.errors.NotFound);
    const needles = [secret, "second line", "s3cr'et"];
    for (const f of [...filesUnder(sub.job.jobDir), ...filesUnder(HOME)]) {
      const body = dec.decode(Deno.readFileSync(f));
      for (const n of needles) assert.ok(!body.includes(n), `secret found in ${f}`);
    }
    // The name travels (it is not secret); the script only sources the private file.
    assert.match(Deno.readTextFileSync(sub.job.scriptPath), /\. "\$\{_nemotron_secrets\}"/);
  },
);

slurmTest(
  "retries = 2: a failing job runs 3 times, one log per attempt, jobs logs --attempt shows each",
  async () => {
    const root = tempJobRoot();
    const sub = await submit(
      root,
      "flaky",
      [
        "/usr/bin/python3",
        "-c",
        "import os, sys; print('this is attempt', os.environ['NEMOTRON_ATTEMPT']); sys.exit(3)",
      ],
      { profile: { retries: 2 }, env: { RETRY_TOKEN: "tok" } },
    );
    assert.equal(await waitForJob(sub.id, 90_000), "FAILED");
    for (const n of [0, 1, 2]) {
      assert.match(logOf(sub, n), new RegExp(`^this is attempt ${n}$`, "m"));
    }
    for (const n of [0, 1, 2]) {
      const r = await cli("jobs", "logs", sub.id, "--attempt", String(n));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `this is attempt ${n}\n`);
    }
    const latest = await cli("jobs", "logs", sub.id);
    assert.equal(latest.stdout, "this is attempt 2\n");
    const missing = await cli("jobs", "logs", sub.id, "--attempt", "3");
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /attempts with logs: 0, 1, 2/);
    const st = JSON.parse((await cli("jobs", "status", sub.id, "--json")).stdout);
    assert.equal(st.state, "FAILED");
    assert.equal(st.exit_code, 3);
    assert.equal(st.attempts, 3);
    assert.throws(() => Deno.statSync(sub.job.secretsFile!), Deno.errors.NotFound);
    assert.equal(readManifest(sub.job.jobDir)!.attempts.length, 3);
  },
);

slurmTest(
  "following (--run): streams the attempt log and returns the job's exit code",
  async () => {
    const root = tempJobRoot();
    const sub = await submit(
      root,
      "follow me",
      ["bash", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done; exit 7"],
      { mode: "run" },
    );
    const chunks: Uint8Array[] = [];
    const stop = new AbortController();
    const holds = releaseRequeueHolds(sub.id, stop.signal);
    const res = await withStore((store) =>
      followJob({ slurm_job_id: sub.id, job_dir: sub.job.jobDir, slurm_name: sub.job.slurmName }, {
        write: (b) => chunks.push(b),
        note: () => {},
        pollMs: 200,
        handleSigint: false,
        store,
      })
    );
    stop.abort();
    await holds;
    assert.equal(res.exitCode, 7);
    assert.equal(res.status?.state, "FAILED");
    const streamed = chunks.map((c) => dec.decode(c)).join("");
    assert.equal(streamed, "line 1\nline 2\nline 3\n");
  },
);

slurmTest("jobs cancel: a running job is CANCELLED and its secret file removed", async () => {
  const root = tempJobRoot();
  const sub = await submit(root, "sleeper", ["sleep", "300"], { env: { SLEEP_TOKEN: "x" } });
  for (let i = 0; i < 50; i++) {
    const st = JSON.parse((await cli("jobs", "status", sub.id, "--json")).stdout);
    if (st.state === "RUNNING") break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const r = await cli("jobs", "cancel", sub.id);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`cancelled job ${sub.id} \\(sleeper\\): CANCELLED`));
  assert.equal(await waitForJob(sub.id), "CANCELLED");
  assert.throws(() => Deno.statSync(sub.job.secretsFile!), Deno.errors.NotFound);
  const again = await cli("jobs", "cancel", sub.id);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /nothing to cancel/);
});

slurmTest(
  "bad partition: clear error, exit 1, job dir kept with the script, no store row",
  async () => {
    const root = tempJobRoot();
    const job = buildSlurmJob({
      name: "wrong place",
      mode: "batch",
      launch: "direct",
      profile: { remote_job_dir: root, partition: "nosuch" },
      command: ["true"],
      env: { A_TOKEN: "t" },
    });
    prepareJobDir(job, await renderSbatch(job));
    await assert.rejects(
      () => submitJob(job),
      (e: unknown) =>
        e instanceof RuntimeFailure && e.exitCode === 1 &&
        /Invalid partition name/i.test(e.message) &&
        /partition/.test(e.hint ?? ""),
    );
    assert.ok(Deno.statSync(job.scriptPath).isFile);
    assert.equal(readManifest(job.jobDir)!.state, "SUBMIT_FAILED");
    assert.throws(() => Deno.statSync(job.secretsFile!), Deno.errors.NotFound);
    await withStore((s) => {
      assert.deepEqual(s.find(job.key), []);
      return Promise.resolve();
    });
  },
);

slurmTest(
  "pipelines: afterok chains run in order; a failed stage cancels the stages that can never run",
  async () => {
    const root = tempJobRoot();
    // Success: stage 1 starts only after stage 0 and both complete.
    const okId = "ok-pipe";
    const a = await submit(root, "stage a", ["bash", "-c", "sleep 1; date +%s.%N"], {
      pipeline: { id: okId, stage: 0, stages: 2 },
    });
    const b = await submit(root, "stage b", ["bash", "-c", "date +%s.%N"], {
      after: [a.id],
      pipeline: { id: okId, stage: 1, stages: 2 },
    });
    assert.equal(await waitForJob(b.id), "COMPLETED");
    assert.ok(Number(logOf(b)) > Number(logOf(a)));
    // Failure: stage 0 fails, stages 1 and 2 are cancelled with a note.
    const badId = "bad-pipe";
    const s0 = await submit(root, "prep", ["bash", "-c", "exit 5"], {
      pipeline: { id: badId, stage: 0, stages: 3 },
    });
    const s1 = await submit(root, "train", ["true"], {
      after: [s0.id],
      pipeline: { id: badId, stage: 1, stages: 3 },
    });
    const s2 = await submit(root, "eval", ["true"], {
      after: [s1.id],
      pipeline: { id: badId, stage: 2, stages: 3 },
    });
    assert.equal(await waitForJob(s0.id), "FAILED");
    const list = await cli("jobs", "list");
    assert.equal(list.code, 0, list.stderr);
    assert.match(
      list.stdout,
      /pipeline bad-pipe \(3 stages\)\n\s+\d+\s+prep\s+FAILED\s+ended [^\n]*\s5\n/,
    );
    const stages = await withStore((s) => Promise.resolve(s.pipeline(badId)));
    assert.deepEqual(stages.map((s) => s.state), ["FAILED", "CANCELLED", "CANCELLED"]);
    assert.match(
      stages[1].note ?? "",
      /stage 0 \(prep, job \d+\) ended FAILED; this stage can never run/,
    );
    assert.equal(await waitForJob(s1.id), "CANCELLED");
    assert.equal(await waitForJob(s2.id), "CANCELLED");
    const status = await cli("jobs", "status", s2.id);
    assert.match(status.stdout, /failed stage: 0 \(prep\), FAILED/);
  },
);

slurmTest("20 concurrent submissions: 20 job dirs, 20 store rows, 20 Slurm jobs", async () => {
  const root = tempJobRoot();
  const child = path.join(HERE, "slurm_submit_one.ts");
  const outs = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", child, root, `conc ${i}`],
        env: { NEMOTRON_HOME: HOME },
        stdout: "piped",
        stderr: "piped",
      }).output()),
  );
  const subs = outs.map((o) => {
    assert.equal(o.code, 0, dec.decode(o.stderr));
    return JSON.parse(dec.decode(o.stdout));
  });
  assert.equal(new Set(subs.map((s) => s.job_dir)).size, 20);
  assert.equal(new Set(subs.map((s) => s.slurm_job_id)).size, 20);
  assert.equal([...Deno.readDirSync(path.join(root, "jobs"))].length, 20);
  await withStore((s) => {
    for (const sub of subs) assert.equal(s.find(sub.key).length, 1);
    return Promise.resolve();
  });
  for (const sub of subs) assert.equal(await waitForJob(sub.slurm_job_id), "COMPLETED");
});

slurmTest(
  "slurmctld stopped: sbatch is retried with backoff, then a clear error (last test)",
  async () => {
    const run = "/var/tmp/local-slurm/run/slurmctld.pid";
    try {
      Deno.statSync(START_SCRIPT); // without it the cluster could not be started again
    } catch {
      console.log(`SKIP slurmctld fault: no start script at ${START_SCRIPT}`);
      return;
    }
    let pid: number;
    try {
      pid = Number(Deno.readTextFileSync(run).trim());
      if (Deno.readTextFileSync(`/proc/${pid}/comm`).trim() !== "slurmctld") {
        throw new Error(
          "not ours",
        );
      }
    } catch {
      console.log("SKIP slurmctld fault: no slurmctld pid file of the local cluster");
      return;
    }
    const root = tempJobRoot();
    const job = buildSlurmJob({
      name: "no controller",
      mode: "batch",
      launch: "direct",
      profile: { remote_job_dir: root },
      command: ["true"],
    });
    prepareJobDir(job, await renderSbatch(job));
    Deno.kill(pid, "SIGTERM");
    for (let i = 0; i < 50; i++) {
      try {
        const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
        if (/\) Z /.test(stat)) break;
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const retries: number[] = [];
    try {
      await assert.rejects(
        () =>
          submitSbatch(job.scriptPath, { retryDelaysMs: [100], onRetry: (n) => retries.push(n) }),
        (e: unknown) =>
          e instanceof RuntimeFailure &&
          /cannot reach the Slurm controller after 2 tries: .*Unable to contact slurm controller/s
            .test(
              e.message,
            ) &&
          /scontrol ping/.test(e.hint ?? ""),
      );
      assert.deepEqual(retries, [1]);
    } finally {
      const started = await new Deno.Command("bash", {
        args: [START_SCRIPT],
        stdout: "null",
        stderr: "null",
      }).output();
      assert.equal(started.code, 0);
    }
    assert.equal(await ensureSlurm(), undefined);
  },
);
