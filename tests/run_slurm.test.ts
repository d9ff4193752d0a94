/**
 * `nemotron run SCRIPT` on the real local Slurm cluster (tests/slurm_cluster.ts; the tests print
 * why and pass when it cannot start), through the CLI only, with a bare-metal profile: a user's
 * script written by the test (a sibling module it imports, a config dir) with `--batch` and
 * `--run`, overrides and script arguments; the script's exit code is nemotron's; the code packager
 * ships the checkout that holds the script (git-aware) and `--package self-contained` one
 * `main.py`; `launch = "ray"` with `run.cmd`/`run.workdir` and `launch = "torchrun"` (two ranks,
 * Debian's torch) run; a dry run writes nothing; and the starter of `nemotron init` runs with the
 * Slurm profile init wrote from `sinfo`.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { type CliResult, runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { releaseRequeueHolds, slurmTest, tempJobRoot } from "./slurm_cluster.ts";
import { listFiles, USER_SCRIPT, writeUserRecipe } from "./run_fixture.ts";

const DENO_DIR = Deno.env.get("DENO_DIR") ||
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

interface Site {
  readonly cwd: string;
  readonly rjd: string;
  readonly nemotronHome: string;
  run(...args: string[]): Promise<CliResult>;
}

/** A working dir with env.toml (bare-metal profile `cluster`), the user's recipe in `proj/`. */
async function site(): Promise<Site> {
  const cwd = await tempDir("nemotron-run-slurm-");
  const home = await tempDir("nemotron-run-slurm-home-");
  const rjd = path.join(tempJobRoot("nemotron-run-rjd-"), "rjd");
  await writeTree(cwd, {
    "env.toml": `[cluster]\nexecutor = "slurm"\nremote_job_dir = "${rjd}"\ntime = "00:10:00"\n`,
  });
  await writeUserRecipe(path.join(cwd, "proj"));
  const nemotronHome = path.join(home, ".nemotron");
  return {
    cwd,
    rjd,
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

/** `nemotron run SCRIPT --json ARGS…` (--json before any `--`). */
async function batch(s: Site, ...args: string[]): Promise<Submitted> {
  const r = await s.run(...args.slice(0, 2), "--json", ...args.slice(2));
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  assert.equal(out.mode, "batch");
  assert.equal(out.jobs.length, 1);
  return out.jobs[0];
}

/** Poll `nemotron jobs status ID --json` until the job is terminal. */
// deno-lint-ignore no-explicit-any
async function waitTerminal(s: Site, id: string, timeoutMs = 60_000): Promise<any> {
  const stop = new AbortController();
  const holds = releaseRequeueHolds(id, stop.signal);
  try {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const r = await s.run("jobs", "status", id, "--json");
      assert.equal(r.code, 0, r.stderr);
      const st = JSON.parse(r.stdout);
      if (st.terminal) return st;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`job ${id} not terminal within ${timeoutMs} ms`);
  } finally {
    stop.abort();
    await holds;
  }
}

async function logs(s: Site, id: string): Promise<string> {
  const r = await s.run("jobs", "logs", id);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

slurmTest(
  "run SCRIPT -b cluster key=value -- ARGS: the job runs the script with its sibling module",
  async () => {
    const s = await site();
    const job = await batch(
      s,
      "run",
      "proj/train.py",
      "-b",
      "cluster",
      "-c",
      "small",
      "train.steps=3",
      "--",
      "--flag",
    );
    assert.equal(job.name, "mine/train");
    const st = await waitTerminal(s, job.slurm_job_id);
    assert.equal(st.state, "COMPLETED", JSON.stringify(st));
    assert.equal(st.exit_code, 0);
    const out = await logs(s, job.slurm_job_id);
    assert.equal(out.match(/^step \d+ lr 0\.5$/gm)?.length, 3, out);
    assert.match(out, /^helper: steps=3 name=small$/m);
    assert.match(out, /^extra: \["--flag"\]$/m);
    // The code packager shipped the script's directory (no checkout): script, module, configs,
    // plus the launcher and the train config.
    assert.deepEqual(listFiles(path.join(job.job_dir, "code")), [
      "config.json",
      "config/default.yaml",
      "config/small.yaml",
      "helpers.py",
      "main.py",
      "train.py",
    ]);
    const rows = JSON.parse((await s.run("jobs", "list", "--all", "--json")).stdout);
    assert.deepEqual(rows.map((r: Submitted) => r.slurm_job_id), [job.slurm_job_id], "store row");
  },
);

slurmTest(
  "run SCRIPT --run cluster: streams the log; the script's exit code is nemotron's",
  async () => {
    const s = await site();
    const ok = await s.run("run", "proj/train.py", "--run", "cluster", "train.steps=2");
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout + ok.stderr, /^helper: steps=2 name=base$/m);
    const failed = await s.run("run", "proj/train.py", "--run", "cluster", "exit_code=3");
    assert.equal(failed.code, 3, failed.stdout + failed.stderr);
    assert.match(failed.stdout + failed.stderr, /helper: steps=2 name=base/);
  },
);

slurmTest(
  "run SCRIPT --package self-contained: one main.py with the sibling module inlined",
  async () => {
    const s = await site();
    const job = await batch(
      s,
      "run",
      "proj/train.py",
      "--package",
      "self-contained",
      "-b",
      "cluster",
      "train.steps=1",
    );
    const st = await waitTerminal(s, job.slurm_job_id);
    assert.equal(st.state, "COMPLETED", JSON.stringify(st));
    assert.deepEqual(listFiles(path.join(job.job_dir, "code")), ["config.yaml", "main.py"]);
    assert.match(Deno.readTextFileSync(path.join(job.job_dir, "code", "main.py")), /def describe/);
    assert.match(await logs(s, job.slurm_job_id), /^helper: steps=1 name=base$/m);
  },
);

slurmTest(
  "run SCRIPT in a git checkout: the checkout that holds the script ships, as on disk",
  async () => {
    const s = await site();
    const repo = await tempDir("nemotron-run-repo-");
    await writeUserRecipe(path.join(repo, "recipes"));
    await writeTree(repo, { ".gitignore": "scratch/\n", "scratch/big.bin": "ignored\n" });
    const git = async (...args: string[]) => {
      const o = await new Deno.Command("git", { args, cwd: repo, stdout: "null", stderr: "piped" })
        .output();
      assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    };
    await git("init", "-q");
    await git("add", ".");
    await git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init");
    // An uncommitted edit ships too.
    Deno.writeTextFileSync(
      path.join(repo, "recipes", "helpers.py"),
      'def describe(cfg):\n    return "edited %d" % cfg["train"]["steps"]\n',
    );
    const job = await batch(s, "run", path.join(repo, "recipes", "train.py"), "-b", "cluster");
    const st = await waitTerminal(s, job.slurm_job_id);
    assert.equal(st.state, "COMPLETED", JSON.stringify(st));
    assert.match(await logs(s, job.slurm_job_id), /^helper: edited 2$/m);
    assert.deepEqual(listFiles(path.join(job.job_dir, "code")), [
      ".gitignore",
      "config.json",
      "main.py",
      "recipes/config/default.yaml",
      "recipes/config/small.yaml",
      "recipes/helpers.py",
      "recipes/train.py",
    ]);
    assert.ok(Deno.statSync(path.join(job.job_dir, "code.commit")).isFile, "commit recorded");
  },
);

slurmTest(
  "run SCRIPT -d -r cluster: the sbatch script is shown, nothing is written or submitted",
  async () => {
    const s = await site();
    await writeTree(s.cwd, { "proj/.env": "MY_TOKEN=s3cret\n" });
    const r = await s.run("run", "proj/train.py", "-d", "--json", "-r", "cluster", "train.steps=9");
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.executor, "slurm");
    assert.deepEqual(out.command, ["python3", "main.py"]);
    assert.equal(out.train_config.train.steps, 9);
    assert.match(out.sbatch_script, /^#SBATCH --job-name=/m);
    assert.ok(out.notes.some((n: string) => n.startsWith("code: code package of ")));
    // The code package as planned: the script's directory, the .env beside it left out.
    assert.equal(out.code_package.root, path.join(s.cwd, "proj"));
    assert.ok(out.code_package.files >= 5, JSON.stringify(out.code_package));
    assert.deepEqual(out.code_package.excluded.map((x: { path: string }) => x.path), [".env"]);
    assert.throws(() => Deno.statSync(s.rjd), Deno.errors.NotFound, "no remote job dir");
    assert.deepEqual(listFiles(s.nemotronHome), [], "no job store");
  },
);

slurmTest("init: the starter runs on Slurm with the profile init wrote from sinfo", async () => {
  const cwd = await tempDir("nemotron-run-init-");
  const home = await tempDir("nemotron-run-init-home-");
  const env = {
    HOME: home,
    NEMOTRON_HOME: path.join(home, ".nemotron"),
    NEMOTRON_ENV_FILE: "",
    DENO_DIR,
  };
  const init = await runCli(["init", "starter"], { cwd, env });
  assert.equal(init.code, 0, init.stderr);
  const envToml = Deno.readTextFileSync(path.join(cwd, "starter", "env.toml"));
  // Independent: what sinfo calls the default partition.
  const sinfo = new TextDecoder().decode(
    (await new Deno.Command("sinfo", { args: ["-h", "-o", "%P"], stdout: "piped" }).output())
      .stdout,
  );
  const dflt = sinfo.split("\n").find((l) => l.trim().endsWith("*"))!.trim().slice(0, -1);
  assert.match(envToml, new RegExp(`^partition = "${dflt}"`, "m"));
  const r = await runCli(["run", "train.py", "--run", "slurm", "train.steps=2"], {
    cwd: path.join(cwd, "starter"),
    env,
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal((r.stdout + r.stderr).match(/^step \d\/2 loss [\d.]+$/gm)?.length, 2, r.stdout);
  // The starter's env.toml sits next to the script: the code packager's deny list leaves it out.
  const jobDir = /job dir: (\S+)/.exec(r.stderr)![1];
  const shipped = listFiles(path.join(jobDir, "code"));
  assert.ok(shipped.includes("train.py"), shipped.join(" "));
  assert.ok(!shipped.includes("env.toml"), shipped.join(" "));
});

slurmTest(
  "run SCRIPT with launch = ray, run.cmd and run.workdir: the command runs from the workdir",
  async () => {
    const s = await site();
    await writeUserRecipe(
      path.join(s.cwd, "ray"),
      USER_SCRIPT.replace(
        '# launch = "direct"',
        '# launch = "ray"\n# cmd = "python3 {script} --config {config} --via-cmd"\n# workdir = "/tmp"',
      ).replace('print("config-file', 'print("cwd: " + os.getcwd())\nprint("config-file'),
    );
    const r = await s.run("run", "ray/train.py", "--run", "cluster", "train.steps=1");
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = r.stdout + r.stderr;
    assert.match(out, /^extra: \["--via-cmd"\]$/m);
    assert.match(out, /^cwd: \/tmp$/m);
    assert.match(
      out,
      /^helper: steps=1 name=base$/m,
      "the sibling module imports from the package",
    );
    assert.match(out, /^config-file: config\.json$/m, "named by config.format");
  },
);

slurmTest(
  "run SCRIPT with launch = torchrun: torchrun starts run.env.nproc_per_node ranks",
  async () => {
    const s = await site();
    await writeUserRecipe(
      path.join(s.cwd, "torch"),
      USER_SCRIPT.replace('# launch = "direct"', '# launch = "torchrun"')
        .replace('print("helper: "', 'print("rank %s" % os.environ.get("RANK"))\nprint("helper: "'),
    );
    const r = await s.run(
      "run",
      "torch/train.py",
      "--run",
      "cluster",
      "train.steps=1",
      "run.env.nproc_per_node=2",
      // Debian's torch (as tests/multinode_ddp.test.ts): `python -m torch.distributed.run`.
      "run.env.python=/usr/bin/python3",
      // Debian's torch 1.13 needs these given explicitly (see lib/exec/slurm.ts).
      'run.env.torchrun_args=["--redirects=1","--tee=1"]',
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // --tee prefixes each rank's lines with `[defaultN]:`.
    const ranks = (r.stdout + r.stderr).match(/^\[default\d\]:rank \d$/gm)
      ?.map((l) => l.replace(/^\[default\d\]:/, "")).sort();
    assert.deepEqual(ranks, ["rank 0", "rank 1"], r.stdout + r.stderr);
  },
);
