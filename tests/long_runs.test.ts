/**
 * Long runs without a cluster: the auto-resume profile keys (checks, defaults, directives), the
 * rendered script (Python Jinja2 as the oracle, a hand-checked golden, bash -n, shellcheck), the
 * script's behaviour under bash with stand-ins for `srun`, `scancel` and `scontrol` (the real
 * cluster is tests/long_runs_slurm.test.ts), why attempts ended, and the demo's checkpoint/resume
 * (a run stopped by SIGUSR1 or SIGTERM and resumed prints the same losses as one that was not).
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { buildSlurmJob, renderSbatch, type SlurmJobSpec } from "../lib/exec/slurm.ts";
import { prepareJobDir, readAttempts } from "../lib/exec/job_dir.ts";
import { attemptOutcomes, parseDuration, slurmTimeSeconds } from "../lib/exec/resume.ts";
import { UsageError } from "../lib/errors.ts";
import { demoData, demoTrain, writeRecipe } from "../recipes/index.ts";
import { loadConfig } from "../lib/config/load.ts";
import { toPlain } from "../lib/config/tree.ts";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const GOLDEN = path.join(HERE, "golden", "slurm");
const dec = new TextDecoder();

async function run(
  cmd: string,
  args: string[],
  opts: { stdin?: string; env?: Record<string, string>; cwd?: string } = {},
) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: opts.env,
    cwd: opts.cwd,
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const BASE: SlurmJobSpec = {
  name: "demo/train",
  mode: "batch",
  launch: "direct",
  profile: { remote_job_dir: "/lustre/me/nemotron", time: "04:00:00", auto_resume: true },
  command: ["python3", "main.py", "--config", "config.yaml"],
  jobKey: "demo-train-20260101-120000-a1b2c3",
  secretsId: "0123456789abcdef0123456789abcdef",
  uid: 1000,
};

function spec(profile: Record<string, unknown>, more: Partial<SlurmJobSpec> = {}): SlurmJobSpec {
  return { ...BASE, ...more, profile: { ...BASE.profile, ...profile } };
}

function usage(profile: Record<string, unknown>, re: RegExp): void {
  assert.throws(() => buildSlurmJob(spec(profile)), (err: unknown) => {
    assert.ok(err instanceof UsageError, String(err));
    assert.match(err.message, re);
    return true;
  });
}

Deno.test("durations and Slurm time limits parse to seconds", () => {
  for (const [v, s] of [[30, 30], ["300", 300], ["300s", 300], ["5m", 300], ["1h30m", 5400]]) {
    assert.equal(parseDuration(v), s, String(v));
  }
  for (const v of ["", "5 m", "-3", 1.5, "1x", true, null]) {
    assert.equal(parseDuration(v), undefined);
  }
  const times: [string, number | undefined][] = [
    ["1", 60],
    ["10:30", 630],
    ["04:00:00", 14400],
    ["2-00", 172800],
    ["1-02:03", 93780],
    ["1-02:03:04", 93784],
    ["UNLIMITED", undefined],
  ];
  for (const [t, s] of times) assert.equal(slurmTimeSeconds(t), s, t);
});

Deno.test("auto_resume: defaults, directives, and bad keys are UsageErrors naming the key", () => {
  const on = buildSlurmJob(spec({}));
  assert.deepEqual(on.resume, {
    autoResume: true,
    maxRestarts: 3,
    signalBefore: 300,
    graceSeconds: 290,
  });
  const flags = on.directives.map((d) => d.value === null ? d.flag : `${d.flag}=${d.value}`);
  assert.ok(flags.includes("requeue") && !flags.includes("no-requeue"), flags.join(" "));
  assert.ok(flags.includes("signal=B:USR1@300"), flags.join(" "));

  const custom = buildSlurmJob(spec({ time: "1", max_restarts: 7, signal_before: "30s" }));
  assert.equal(custom.resume.maxRestarts, 7);
  assert.equal(custom.resume.signalBefore, 30);
  assert.equal(custom.resume.graceSeconds, 20);
  const noSignal = buildSlurmJob(spec({ signal_before: 0 }));
  assert.ok(!noSignal.directives.some((d) => d.flag === "signal"));
  assert.ok(noSignal.directives.some((d) => d.flag === "requeue"));

  const off = buildSlurmJob({ ...BASE, profile: { remote_job_dir: "/x" } });
  assert.equal(off.resume.autoResume, false);
  assert.ok(off.directives.some((d) => d.flag === "no-requeue"));

  usage({ auto_resume: "yes" }, /auto_resume: must be true or false/);
  usage({ max_restarts: -1 }, /max_restarts: must be an integer >= 0/);
  usage({ signal_before: "soon" }, /signal_before: must be seconds or a duration/);
  usage({ signal_before: 5 }, /signal_before: must be 0 \(no signal\) or between 20 and 65535/);
  usage({ time: "1", signal_before: 90 }, /signal_before \(90 s\) must be shorter than the time/);
  usage({ time: "00:04:00" }, /time: signal_before \(300 s\) must be shorter/);
  usage({ retries: 2 }, /retries: cannot be combined with auto_resume/);
  usage({ signal: "B:USR2@60" }, /signal: cannot be combined with auto_resume/);
  usage({ auto_resume: false, max_restarts: 2 }, /max_restarts: only applies with auto_resume/);
  usage({ auto_resume: undefined, signal_before: 60 }, /signal_before: only applies with/);
});

/** Render with Python Jinja2 (tests/golden/slurm/jinja2_oracle.py). */
async function jinja2(cases: { template: string; context: unknown }[]): Promise<string[]> {
  const r = await run("/usr/bin/python3", [path.join(GOLDEN, "jinja2_oracle.py")], {
    stdin: JSON.stringify(cases),
  });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function bashAndShellcheck(script: string): Promise<void> {
  const file = Deno.makeTempFileSync({ suffix: ".sh" });
  try {
    Deno.writeTextFileSync(file, script);
    const b = await run("bash", ["-n", file]);
    assert.equal(b.code, 0, `bash -n: ${b.stderr}`);
    const s = await run("shellcheck", ["-s", "bash", file]);
    assert.equal(s.code, 0, `shellcheck:\n${s.stdout}${s.stderr}\n--- script ---\n${script}`);
  } finally {
    Deno.removeSync(file);
  }
}

const RENDER_CASES: Record<string, SlurmJobSpec> = {
  // hand-checked golden: bare metal, a secret, 1-minute limit, signal 30 s before, 2 restarts
  "auto_resume.sh": spec(
    { time: "1", max_restarts: 2, signal_before: "30s", container_image: "" },
    { env: { HF_TOKEN: "never-in-the-script", WANDB_PROJECT: "demo" } },
  ),
  "container torchrun, 2 nodes": spec(
    { nodes: 2, gpus_per_node: 8, signal_before: "10m" },
    {
      launch: "torchrun",
      image: "/lustre/me/nano3.sqsh",
      command: ["main.py", "--config", "config.yaml"],
    },
  ),
  "no signal": spec({ signal_before: 0 }),
};

Deno.test("auto_resume scripts: Python Jinja2 renders the same bytes; bash -n, shellcheck, golden", async () => {
  const cases: { template: string; context: unknown }[] = [];
  const rendered: string[] = [];
  for (const [name, s] of Object.entries(RENDER_CASES)) {
    const job = buildSlurmJob(s);
    const script = await renderSbatch(job);
    rendered.push(script);
    cases.push({ template: job.template.source, context: job.context });
    await bashAndShellcheck(script);
    assert.ok(!script.includes("never-in-the-script"), "a secret value is in the script");
    if (name.endsWith(".sh")) {
      const goldenPath = path.join(GOLDEN, name);
      if (Deno.env.get("UPDATE_GOLDEN")) Deno.writeTextFileSync(goldenPath, script);
      assert.equal(script, Deno.readTextFileSync(goldenPath), `${name} differs from the golden`);
    }
  }
  assert.deepEqual(await jinja2(cases), rendered);
  // facts checked by hand in the rendered text
  const [golden, torch, noSignal] = rendered;
  assert.match(golden, /^#SBATCH --requeue$/m);
  assert.match(golden, /^#SBATCH --signal=B:USR1@30$/m);
  assert.match(golden, /scancel --signal=USR1 "\$\{SLURM_JOB_ID\}"/);
  assert.match(golden, /_nemotron_deadline=\$\(\( \$\(date \+%s\) \+ 20 \)\)/);
  assert.match(golden, /-lt 2 \]; then\n.*\n {2}_nemotron_requeued=1\n {2}if ! scontrol requeue/);
  assert.match(torch, /^#SBATCH --signal=B:USR1@600$/m);
  assert.match(torch, /trap '"'"''"'"' USR1; exec "\$@"' nemotron-resume bash -c/);
  assert.match(torch, /--container-env=[^ ]*NEMOTRON_CHECKPOINT_DIR/);
  assert.match(torch, /NEMOTRON_CHECKPOINT_DIR=\/nemo_run\/checkpoints/);
  assert.doesNotMatch(noSignal, /--signal=|scancel |trap _nemotron_forward_signal/);
  assert.match(noSignal, /^#SBATCH --requeue$/m);
});

// ---- the script's behaviour under bash, with stand-ins for srun, scancel and scontrol ----

/**
 * Stand-ins on PATH: `srun` runs the task argv (after its options) with its `--output` and
 * `--chdir`, writes the task's pid to $STUB_DIR/task.pid and logs its call; `scancel` and
 * `scontrol` log their arguments, and `scancel --signal=USR1` signals the recorded task (as
 * slurmstepd would).
 */
function stubs(dir: string): void {
  const srun = `#!/bin/bash
echo "srun $*" >> "$STUB_DIR/calls"
out=/dev/null; cd_to=.
while [ $# -gt 0 ]; do
  case "$1" in
    --output=*) out="\${1#--output=}"; out="\${out//%j/$SLURM_JOB_ID}"; out="\${out//%%/%}";;
    --chdir=*) cd_to="\${1#--chdir=}";;
    --*) ;;
    *) break;;
  esac
  shift
done
cd "$cd_to" || exit 99
"$@" > "$out" 2>&1 &
echo $! > "$STUB_DIR/task.pid"
wait $!
`;
  const scancel = `#!/bin/bash
echo "scancel $*" >> "$STUB_DIR/calls"
[ "$1" = --signal=USR1 ] && kill -USR1 "$(cat "$STUB_DIR/task.pid")"
exit 0
`;
  const scontrol = `#!/bin/bash
echo "scontrol $*" >> "$STUB_DIR/calls"
`;
  for (const [name, text] of [["srun", srun], ["scancel", scancel], ["scontrol", scontrol]]) {
    Deno.writeTextFileSync(path.join(dir, name), text, { mode: 0o755 });
  }
}

/**
 * A task that prints its env, then: `wait` for SIGUSR1 and exit 75; `ignore` SIGUSR1 and go on
 * sleeping; or exit with the given code at once.
 */
const TASK = [
  "import os, signal, sys, time",
  "print('secret', os.environ.get('LR_TOKEN'), 'ckpt', os.environ['NEMOTRON_CHECKPOINT_DIR'], 'grace', os.environ['NEMOTRON_RESUME_GRACE'], flush=True)",
  "if sys.argv[1] not in ('wait', 'ignore'): sys.exit(int(sys.argv[1]))",
  "stop = lambda *a: (print('got USR1', flush=True), sys.exit(75))",
  "ignore = lambda *a: print('got USR1, ignoring it', flush=True)",
  "signal.signal(signal.SIGUSR1, ignore if sys.argv[1] == 'ignore' else stop)",
  "open(os.path.join(os.environ['NEMOTRON_JOB_DIR'], 'ready'), 'w').close()",
  "time.sleep(60)",
].join("\n");

interface ScriptRun {
  code: number;
  calls: string;
  batchLog: string;
  taskLog: string;
  attempts: ReturnType<typeof readAttempts>;
  secretsLeft: boolean;
  finished: boolean;
}

async function runScript(
  taskArg: string,
  attempt: number,
  opts: { finishedBefore?: boolean; signal?: boolean; signalBefore?: number } = {},
): Promise<ScriptRun> {
  const root = Deno.makeTempDirSync({ prefix: "nemotron-lr-" });
  const bin = path.join(root, "bin");
  Deno.mkdirSync(bin);
  stubs(bin);
  const job = buildSlurmJob(spec(
    {
      remote_job_dir: root,
      time: "1",
      max_restarts: 2,
      signal_before: opts.signalBefore ?? 30,
      container_image: "",
    },
    { command: ["/usr/bin/python3", "-c", TASK, taskArg], env: { LR_TOKEN: "s3cr3t" } },
  ));
  const script = await renderSbatch(job);
  prepareJobDir(job, script);
  if (opts.finishedBefore) Deno.writeTextFileSync(path.join(job.jobDir, "FINISHED"), "");
  const batchLog = path.join(root, "batch.log");
  const child = new Deno.Command("bash", {
    args: ["-c", `exec bash "$0" > "$1" 2>&1`, job.scriptPath, batchLog],
    cwd: job.jobDir,
    env: {
      PATH: `${bin}:${Deno.env.get("PATH")}`,
      STUB_DIR: bin,
      SLURM_JOB_ID: "4242",
      SLURM_RESTART_COUNT: String(attempt),
      SLURM_JOB_NODELIST: "vm",
    },
  }).spawn();
  if (opts.signal) {
    const ready = path.join(job.jobDir, "ready");
    for (let i = 0; i < 200; i++) {
      try {
        Deno.statSync(ready);
        break;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGUSR1"); // what Slurm does `signal_before` seconds before the limit (B:USR1)
  }
  const { code } = await child.status;
  try { // a task that ignored the signal outlives the script here (on Slurm the requeue kills it)
    Deno.kill(Number(Deno.readTextFileSync(path.join(bin, "task.pid"))), "SIGKILL");
  } catch { /* it has exited */ }
  const read = (f: string) => {
    try {
      return Deno.readTextFileSync(f);
    } catch {
      return "";
    }
  };
  const exists = (f: string) => {
    try {
      Deno.statSync(f);
      return true;
    } catch {
      return false;
    }
  };
  const result = {
    code,
    calls: read(path.join(bin, "calls")),
    batchLog: read(batchLog),
    taskLog: read(path.join(job.logsDir, `log-demo-train_4242_${attempt}.out`)),
    attempts: readAttempts(job.jobDir),
    secretsLeft: exists(job.secretsFile!),
    finished: exists(path.join(job.jobDir, "FINISHED")),
  };
  Deno.removeSync(root, { recursive: true });
  return result;
}

Deno.test("script: SIGUSR1 is forwarded, the task checkpoints and exits, the job is requeued, secrets kept", async () => {
  const r = await runScript("wait", 0, { signal: true });
  assert.match(r.calls, /^scancel --signal=USR1 4242$/m);
  assert.match(r.calls, /^scontrol requeue 4242$/m);
  assert.match(r.taskLog, /^secret s3cr3t ckpt \S+\/checkpoints grace 20$/m);
  assert.match(r.taskLog, /^got USR1$/m);
  assert.equal(r.attempts.length, 1);
  assert.equal(r.attempts[0].exitCode, 75);
  assert.equal(r.attempts[0].reason, "timelimit");
  assert.match(r.batchLog, /requeueing: restart 1 of max_restarts = 2/);
  assert.ok(r.secretsLeft, "the next attempt needs the secrets file");
  assert.ok(!r.finished);
  assert.ok(!r.batchLog.includes("s3cr3t"), "the secret value reached the batch log");
});

Deno.test("script: a task that ignores SIGUSR1 is given the grace time, then the job is requeued anyway", async () => {
  const r = await runScript("ignore", 0, { signal: true, signalBefore: 20 });
  assert.match(r.taskLog, /grace 10$/m);
  assert.match(r.taskLog, /^got USR1, ignoring it$/m);
  assert.match(r.batchLog, /the tasks did not exit within 10 s of SIGUSR1/);
  assert.match(r.calls, /^scontrol requeue 4242$/m);
  assert.equal(r.attempts[0].exitCode, null);
  assert.equal(r.attempts[0].reason, "timelimit");
  assert.equal(r.code, 1);
  assert.ok(r.secretsLeft);
});

Deno.test("script: exit 0 writes the finished marker, never requeues, drops the secrets file", async () => {
  const r = await runScript("0", 1);
  assert.equal(r.code, 0);
  assert.ok(r.finished);
  assert.doesNotMatch(r.calls, /scontrol|scancel/);
  assert.ok(!r.secretsLeft);
  assert.equal(r.attempts[0].reason, "exit");
});

Deno.test("script: a failure is requeued while restarts remain; the last one ends the job", async () => {
  const mid = await runScript("3", 1);
  assert.match(mid.calls, /^scontrol requeue 4242$/m);
  assert.ok(mid.secretsLeft);
  const last = await runScript("3", 2);
  assert.equal(last.code, 3);
  assert.doesNotMatch(last.calls, /scontrol/);
  assert.match(
    last.batchLog,
    /no restarts left \(max_restarts = 2\); the job ends with exit code 3/,
  );
  assert.ok(!last.secretsLeft, "the secrets file outlived the last attempt");
  assert.ok(!last.finished);
});

Deno.test("script: after the finished marker or beyond max_restarts an attempt runs nothing", async () => {
  const done = await runScript("0", 1, { finishedBefore: true });
  assert.equal(done.code, 0);
  assert.doesNotMatch(done.calls, /srun|scontrol/);
  assert.match(done.batchLog, /the job already finished; this attempt does nothing/);
  assert.equal(done.attempts[0].reason, "finished");
  assert.ok(!done.secretsLeft);
  const over = await runScript("0", 3); // Slurm requeued it itself (preemption) once too often
  assert.equal(over.code, 1);
  assert.doesNotMatch(over.calls, /srun|scontrol/);
  assert.equal(over.attempts[0].reason, "budget");
  assert.ok(!over.secretsLeft);
});

Deno.test("why attempts ended: script records, Slurm's final state, accounting's per-run states", () => {
  const a = (attempt: number, end: [number | null, string | null] | null) => ({
    attempt,
    slurmJobId: "7",
    startedAt: "2026-01-01T00:00:00.000Z",
    endedAt: end ? "2026-01-01T00:01:00.000Z" : null,
    exitCode: end ? end[0] : null,
    nodes: "vm",
    reason: end ? end[1] : null,
  });
  const attempts = [a(0, [75, "timelimit"]), a(1, null), a(2, null), a(3, [0, "exit"])];
  const by = (o: ReturnType<typeof attemptOutcomes>) => o.map((x) => x.ended_by);
  const done = { state: "COMPLETED", terminal: true };
  assert.deepEqual(by(attemptOutcomes(attempts, done)), [
    "time_limit",
    "requeued",
    "requeued",
    "finished",
  ]);
  assert.deepEqual(
    by(attemptOutcomes(attempts, done, ["REQUEUED", "PREEMPTED", "NODE_FAIL", "COMPLETED"])),
    ["time_limit", "preempted", "node_failure", "finished"],
  );
  assert.deepEqual(by(attemptOutcomes([a(0, null)], { state: "CANCELLED", terminal: true })), [
    "cancelled",
  ]);
  assert.deepEqual(by(attemptOutcomes([a(0, null)], { state: "RUNNING", terminal: false })), [
    "running",
  ]);
  const noExit = attemptOutcomes([a(0, [null, "timelimit"]), a(1, [0, "exit"])], done);
  assert.match(noExit[0].text, /the tasks did not exit within the grace time/);
  assert.deepEqual(by(attemptOutcomes([a(0, [3, "exit"]), a(1, [1, "budget"])], done)), [
    "failed",
    "no_restarts_left",
  ]);
});

// ---- the demo: checkpoint on a signal, resume from the latest checkpoint ----

async function demoSetup(): Promise<
  { work: string; script: string; cfg: string; env: Record<string, string> }
> {
  const work = Deno.makeTempDirSync({ prefix: "nemotron-lr-demo-" });
  const root = path.join(work, "registry");
  const env = { NEMOTRON_ARTIFACTS_ROOT: root, PATH: Deno.env.get("PATH") ?? "" };
  const dataScript = writeRecipe(demoData, path.join(work, "code-data"));
  const dataCfg = path.join(work, "data.json");
  Deno.writeTextFileSync(
    dataCfg,
    JSON.stringify(
      toPlain(loadConfig(path.join(work, "code-data", demoData.configDir, "tiny.yaml"))),
    ),
  );
  const data = await run("python3", [dataScript, "--config", dataCfg], { env, cwd: work });
  assert.equal(data.code, 0, data.stderr);
  const script = writeRecipe(demoTrain, path.join(work, "code-train"));
  const cfg = path.join(work, "train.json");
  Deno.writeTextFileSync(
    cfg,
    JSON.stringify(
      toPlain(loadConfig(path.join(work, "code-train", demoTrain.configDir, "tiny.yaml"))),
    ),
  );
  return { work, script, cfg, env };
}

function stepLines(out: string): string[] {
  return out.split("\n").filter((l) => /^step \d+\/\d+ loss /.test(l));
}

Deno.test("demo train: stopped by SIGUSR1 or SIGTERM, resumed, it prints the same losses and sample", async () => {
  const { work, script, cfg, env } = await demoSetup();
  const args = (out: string, extra: string[] = []) => [
    script,
    "--config",
    cfg,
    "train.steps=10",
    `output_dir=${path.join(work, out)}`,
    "artifact.name=",
    ...extra,
  ];
  const whole = await run("python3", args("whole"), { env, cwd: work });
  assert.equal(whole.code, 0, whole.stderr);
  assert.equal(stepLines(whole.stdout).length, 10);
  const sample = (s: string) => /^\[train\] sample: .*$/m.exec(s)?.[0];

  for (const sig of ["SIGUSR1", "SIGTERM"] as const) {
    const out = `cut-${sig}`;
    const ckpt = path.join(work, out, "ckpts");
    const slowEnv = { ...env, NEMOTRON_CHECKPOINT_DIR: ckpt };
    const child = new Deno.Command("python3", {
      args: args(out, ["train.step_seconds=0.3", "train.checkpoint_every=2"]),
      env: slowEnv,
      cwd: work,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.getReader();
    let first = "";
    while (!/^step 5\/10 /m.test(first)) {
      const { value, done } = await reader.read();
      if (done) break;
      first += dec.decode(value);
    }
    child.kill(sig);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      first += dec.decode(value);
    }
    const st = await child.status;
    await child.stderr.cancel();
    assert.equal(st.code, 75, first);
    const m = new RegExp(`^\\[train\\] checkpoint at step (\\d+) \\(signal ${sig}\\)`, "m")
      .exec(first);
    assert.ok(m, first);
    const at = Number(m[1]);
    assert.ok(at >= 5 && at < 10, first);
    assert.match(first, /checkpoint at step 4 \(every 2 steps\)/);
    const second = await run("python3", args(out), { env: slowEnv, cwd: work });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, new RegExp(`^\\[train\\] resuming from step ${at} `, "m"));
    const lines = [...stepLines(first), ...stepLines(second.stdout)];
    assert.deepEqual(lines, stepLines(whole.stdout), "the interrupted run's losses differ");
    assert.equal(sample(second.stdout), sample(whole.stdout));
    const metrics = Deno.readTextFileSync(path.join(work, out, "metrics.jsonl")).trim().split("\n");
    assert.deepEqual(metrics.map((l) => JSON.parse(l).step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  }
  Deno.removeSync(work, { recursive: true });
});

Deno.test("the keys work under the job config's run.env too (command line, dry run)", async () => {
  const work = Deno.makeTempDirSync({ prefix: "nemotron-lr-env-" });
  try {
    const envToml = path.join(work, "env.toml");
    Deno.writeTextFileSync(
      envToml,
      `[cl]\nexecutor = "slurm"\nremote_job_dir = "${work}/rjd"\n`,
    );
    const main = path.join(HERE, "..", "main.ts");
    const dry = (...extra: string[]) =>
      run(Deno.execPath(), [
        "run",
        "-A",
        main,
        "demo",
        "train",
        "-c",
        "tiny",
        "--batch",
        "cl",
        "-d",
        "--json",
        ...extra,
      ], {
        cwd: work,
        env: { NEMOTRON_ENV_FILE: envToml, NEMOTRON_HOME: path.join(work, "home") },
      });
    const on = await dry("run.env.auto_resume=true", "run.env.time=1", "run.env.signal_before=30s");
    assert.equal(on.code, 0, on.stderr);
    const script: string = JSON.parse(on.stdout).sbatch_script;
    assert.match(script, /^#SBATCH --requeue$/m);
    assert.match(script, /^#SBATCH --signal=B:USR1@30$/m);
    assert.match(script, /^export NEMOTRON_RESUME_GRACE=20$/m);
    const bad = await dry("run.env.auto_resume=true", "run.env.time=1");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /signal_before \(300 s\) must be shorter than the time limit "1"/);
    assert.ok(!exists(path.join(work, "rjd")), "a dry run wrote the job dir");
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

function exists(file: string): boolean {
  try {
    Deno.statSync(file);
    return true;
  } catch {
    return false;
  }
}
