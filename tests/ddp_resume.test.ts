/**
 * `demo ddp` keeps the long-run contract of `demo train` (README "Long runs"), locally through the
 * CLI with 2 torchrun workers (DistributedDataParallel on gloo, CPU, Debian's python3-torch): a run
 * whose workers get SIGUSR1 mid-run (as `scancel --signal=USR1` sends it to every task process)
 * stops on every rank after the same step, rank 0 checkpoints, every rank exits 75; the re-run with
 * the same checkpoint dir resumes from that step and prints the uninterrupted run's per-step and
 * final losses (the uninterrupted run is the oracle). A signal that reaches one rank only still
 * stops them all at one step (the all-reduced stop flag), and `train.checkpoint_every` writes
 * checkpoints at its steps into `<output_dir>/checkpoints` when NEMOTRON_CHECKPOINT_DIR is unset.
 * No Slurm: on a cluster, nemotron sets NEMOTRON_CHECKPOINT_DIR to the job dir's `checkpoints/`,
 * which every attempt of a requeued job shares; here the test sets it to one dir for both runs.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { type CliResult, MAIN, runCli, tempDir } from "./cli_helpers.ts";

const PYTHON = "/usr/bin/python3";
const DENO_DIR = Deno.env.get("DENO_DIR") ||
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");
const dec = new TextDecoder();

/** Why torch tests cannot run here, or undefined. */
function torchMissing(): string | undefined {
  try {
    const r = new Deno.Command(PYTHON, { args: ["-c", "import torch"], stderr: "null" })
      .outputSync();
    return r.code === 0
      ? undefined
      : `${PYTHON} cannot import torch (apt-get install python3-torch)`;
  } catch {
    return `no ${PYTHON}`;
  }
}

interface Site {
  readonly cwd: string;
  readonly home: string;
  readonly env: Record<string, string>;
  run(args: string[], env?: Record<string, string>): Promise<CliResult>;
}

/** A working dir with its own HOME and NEMOTRON_HOME, and the tiny demo dataset published. */
async function site(): Promise<Site> {
  const cwd = await tempDir("nemotron-ddp-resume-");
  const home = path.join(cwd, "home");
  const env = {
    HOME: cwd,
    XDG_CONFIG_HOME: path.join(cwd, ".config"),
    NEMOTRON_HOME: home,
    NEMOTRON_ENV_FILE: "",
    NEMOTRON_PYTHON: PYTHON,
    NEMOTRON_CHECKPOINT_DIR: "",
    NO_COLOR: "1",
    DENO_DIR,
  };
  const s: Site = {
    cwd,
    home,
    env,
    run: (args, more = {}) => runCli(args, { cwd, env: { ...env, ...more } }),
  };
  const data = await s.run(["demo", "data", "-c", "tiny"]);
  assert.equal(data.code, 0, data.stderr);
  return s;
}

/** `rank R step S/N loss L mean_loss M` lines, by rank then step (the torchrun prefix dropped). */
function stepLines(log: string): { rank: number; step: number; line: string }[] {
  return [...log.matchAll(/rank (\d+) step (\d+)\/\d+ loss [\d.]+ mean_loss [\d.]+/g)]
    .map((m) => ({ rank: Number(m[1]), step: Number(m[2]), line: m[0] }))
    .sort((a, b) => a.rank - b.rank || a.step - b.step);
}

function linesOf(log: string, keep: (step: number) => boolean): string[] {
  return stepLines(log).filter((l) => keep(l.step)).map((l) => l.line);
}

function finalLoss(log: string): string | undefined {
  return /\[ddp\] final loss (\S+)/.exec(log)?.[1];
}

/** The step each rank stopped at (`rank R: stopping at step S/N …, exit 75`), by rank. */
function stops(log: string): Map<number, number> {
  return new Map(
    [...log.matchAll(/rank (\d+): stopping at step (\d+)\/\d+ to be resumed \(.*, exit 75\)/g)]
      .map((m) => [Number(m[1]), Number(m[2])]),
  );
}

function artifactLoss(home: string, name: string, version: number): number {
  const manifest = JSON.parse(Deno.readTextFileSync(
    path.join(home, "artifacts", name, `v${version}`, "manifest.json"),
  ));
  return manifest.metadata.loss;
}

/**
 * Run `demo ddp -c tiny …` and, once rank 0 has printed `step <after>/…`, send `signal` to the
 * workers of `ranks` (their pids from the `rank R/W on HOST pid P` lines), as Slurm's
 * `scancel --signal` does to each task process. Returns the exit code and everything printed.
 */
async function interrupted(
  s: Site,
  args: string[],
  env: Record<string, string>,
  after: number,
  signal: Deno.Signal,
  ranks: number[],
): Promise<{ code: number; log: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "demo", "ddp", "-c", "tiny", ...args],
    cwd: s.cwd,
    env: { ...s.env, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let log = "";
  let signalled = false;
  let hung = false;
  // a guard, not a timing: ranks that disagree on when to stop hang in a collective for good
  const guard = setTimeout(() => {
    hung = true;
    child.kill("SIGTERM"); // nemotron passes it on to torchrun, which stops the workers
  }, 240_000);
  try {
    const seen = new RegExp(`rank 0 step ${after}/`);
    for await (const chunk of child.stdout) {
      log += dec.decode(chunk, { stream: true });
      if (signalled || !seen.test(log)) continue;
      const pids = new Map(
        [...log.matchAll(/rank (\d+)\/\d+ on \S+ pid (\d+)/g)].map((m) => [
          Number(m[1]),
          Number(m[2]),
        ]),
      );
      for (const r of ranks) {
        assert.ok(pids.has(r), `no pid line of rank ${r}: ${log}`);
        Deno.kill(pids.get(r)!, signal);
      }
      signalled = true;
    }
  } finally {
    try {
      if (!signalled) child.kill("SIGTERM"); // nemotron passes it on: no workers left behind
    } catch { /* it has exited */ }
    await child.status;
    clearTimeout(guard);
  }
  const { code } = await child.status;
  log += await stderr;
  assert.ok(!hung, `the run did not end within 4 minutes of its start: ${log}`);
  assert.ok(signalled, `rank 0 never printed step ${after}: ${log}`);
  return { code, log };
}

Deno.test({
  name: "demo ddp: SIGUSR1 to every worker mid-run → all ranks stop at one step, exit 75; " +
    "the re-run resumes and prints the uninterrupted run's losses",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const missing = torchMissing();
    if (missing) return console.log(`SKIP: ${missing}`);
    const s = await site();
    const steps = ["train.steps=16", "train.checkpoint_every=4"];

    const whole = await s.run(["demo", "ddp", "-c", "tiny", ...steps], {
      NEMOTRON_CHECKPOINT_DIR: path.join(s.cwd, "ckpt-whole"),
    });
    const wholeLog = whole.stdout + whole.stderr;
    assert.equal(whole.code, 0, wholeLog);
    assert.equal(stepLines(wholeLog).length, 32, wholeLog);
    const wholeFinal = finalLoss(wholeLog);
    assert.ok(wholeFinal, wholeLog);

    // one checkpoint dir shared by both runs, as a Slurm job's attempts share <job dir>/checkpoints
    const ckpt = { NEMOTRON_CHECKPOINT_DIR: path.join(s.cwd, "ckpt") };
    const first = await interrupted(
      s,
      [...steps, "train.step_seconds=0.5"],
      ckpt,
      5,
      "SIGUSR1",
      [0, 1],
    );
    // torchrun itself exits 1 when its workers fail; its report names each worker's exit code
    assert.notEqual(first.code, 0, first.log);
    const failed = first.log.matchAll(/rank\s*: (\d+) \(local_rank: \d+\)\s+exitcode\s*: 75 /g);
    assert.deepEqual(
      [...new Set([...failed].map((m) => Number(m[1])))].sort(),
      [0, 1],
      `both workers exit 75: ${first.log}`,
    );
    const stopped = stops(first.log);
    assert.equal(stopped.size, 2, first.log);
    const at = stopped.get(0)!;
    assert.equal(stopped.get(1), at, `the ranks stopped at different steps: ${first.log}`);
    assert.ok(at >= 5 && at < 16, first.log);
    assert.match(first.log, /checkpoint at step 4 \(every 4 steps\)/);
    assert.match(first.log, new RegExp(`checkpoint at step ${at} \\(signal SIGUSR1\\) -> \\S+`));
    assert.ok(exists(path.join(ckpt.NEMOTRON_CHECKPOINT_DIR, `step-${pad(at)}.pt`)));
    assert.doesNotMatch(first.log, /final loss|\[artifact\] published/);
    assert.deepEqual(linesOf(first.log, () => true), linesOf(wholeLog, (st) => st <= at));

    const second = await s.run(["demo", "ddp", "-c", "tiny", ...steps], ckpt);
    const secondLog = second.stdout + second.stderr;
    assert.equal(second.code, 0, secondLog);
    for (const r of [0, 1]) {
      assert.match(secondLog, new RegExp(`rank ${r}: resuming from step ${at} \\(\\S+`));
    }
    assert.deepEqual(
      linesOf(secondLog, () => true),
      linesOf(wholeLog, (st) => st > at),
      "the resumed run's losses differ from the uninterrupted run's",
    );
    assert.equal(finalLoss(secondLog), wholeFinal);
    const hashes = [...secondLog.matchAll(/rank \d+ step (\d+) params sha256 ([0-9a-f]{64})/g)];
    assert.equal(hashes.length, 2, secondLog);
    assert.ok(hashes.every((h) => Number(h[1]) === at + 1 && h[2] === hashes[0][2]), secondLog);
    // both published (v1 uninterrupted, v2 resumed) with the same loss
    assert.equal(
      artifactLoss(s.home, "demo-ddp-model-tiny", 2),
      artifactLoss(s.home, "demo-ddp-model-tiny", 1),
    );
    Deno.removeSync(s.cwd, { recursive: true });
  },
});

Deno.test({
  name: "demo ddp: SIGTERM to one rank only still stops every rank after the same step",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const missing = torchMissing();
    if (missing) return console.log(`SKIP: ${missing}`);
    const s = await site();
    const ckpt = path.join(s.cwd, "ckpt");
    const r = await interrupted(
      s,
      ["train.steps=16", "train.checkpoint_every=0", "train.step_seconds=0.5"],
      { NEMOTRON_CHECKPOINT_DIR: ckpt },
      3,
      "SIGTERM",
      [1],
    );
    assert.notEqual(r.code, 0, r.log);
    const stopped = stops(r.log);
    assert.equal(stopped.size, 2, r.log);
    const at = stopped.get(0)!;
    assert.equal(stopped.get(1), at, r.log);
    assert.ok(at >= 3 && at < 16, r.log);
    assert.match(
      r.log,
      new RegExp(`rank 1: stopping at step ${at}/16 to be resumed \\(signal SIGTERM, exit 75\\)`),
    );
    assert.match(
      r.log,
      new RegExp(`rank 0: stopping at step ${at}/16 to be resumed \\(another rank was signalled`),
    );
    assert.match(
      r.log,
      new RegExp(`checkpoint at step ${at} \\(another rank was signalled\\)`),
    );
    // checkpoint_every = 0: only the one taken on the signal
    assert.deepEqual([...Deno.readDirSync(ckpt)].map((e) => e.name), [`step-${pad(at)}.pt`]);
    assert.equal(Math.max(...stepLines(r.log).map((l) => l.step)), at, r.log);
    Deno.removeSync(s.cwd, { recursive: true });
  },
});

Deno.test({
  name: "demo ddp: train.checkpoint_every saves at its steps into <output_dir>/checkpoints; " +
    "a run resumed from one continues as the original did",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const missing = torchMissing();
    if (missing) return console.log(`SKIP: ${missing}`);
    const s = await site();
    const out = path.join(s.cwd, "out");
    const args = ["demo", "ddp", "-c", "tiny", "train.checkpoint_every=2", `output_dir=${out}`];
    const r = await s.run([...args, "train.steps=7"]);
    const log = r.stdout + r.stderr;
    assert.equal(r.code, 0, log);
    const dir = path.join(out, "checkpoints");
    assert.deepEqual(
      [...log.matchAll(/\[ddp\] checkpoint at step (\d+) \(every 2 steps\) -> (\S+)/g)]
        .map((m) => [Number(m[1]), m[2]]),
      [2, 4, 6].map((st) => [st, path.join(dir, `step-${pad(st)}.pt`)]),
    );
    // the two latest are kept
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["step-00000004.pt", "step-00000006.pt"],
    );
    // step-6 holds the state after step 6: a run of 8 steps resumes there and prints the original's
    // step 7; train.steps may grow
    const more = await s.run([...args, "train.steps=8"]);
    const moreLog = more.stdout + more.stderr;
    assert.equal(more.code, 0, moreLog);
    assert.match(moreLog, /rank 0: resuming from step 6 /);
    assert.deepEqual(
      linesOf(moreLog, (st) => st === 7).map((l) => l.replace("/8 ", "/7 ")),
      linesOf(log, (st) => st === 7),
    );
    assert.deepEqual(stepLines(moreLog).map((l) => l.step), [7, 8, 7, 8]);
    // other settings than the checkpoint's: a clear error on every rank, nothing trained
    const other = await s.run([...args, "train.steps=8", "train.batch_tokens=64"]);
    assert.notEqual(other.code, 0);
    assert.match(other.stdout + other.stderr, /step-00000006\.pt was made with other settings/);
    assert.equal(stepLines(other.stdout + other.stderr).length, 0);
    Deno.removeSync(s.cwd, { recursive: true });
  },
});

function pad(step: number): string {
  return String(step).padStart(8, "0");
}

function exists(file: string): boolean {
  try {
    Deno.statSync(file);
    return true;
  } catch {
    return false;
  }
}
