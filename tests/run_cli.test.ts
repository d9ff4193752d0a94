/**
 * `nemotron run SCRIPT` locally, through the CLI only: a user's script written by the test (with a
 * sibling module it imports and a config dir) runs with a named config, overrides and script
 * arguments; its exit code is nemotron's; dry runs write nothing; its --help shows the recipe
 * panels; `config.format`, `run.launch` and `run.cmd` come from its runspec; catalogue names run
 * too; bad input is exit 2 with nothing written.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { listFiles, USER_SCRIPT, writeUserRecipe } from "./run_fixture.ts";

/** A project dir with the user's recipe in `proj/` and an empty NEMOTRON_HOME. */
async function project() {
  const cwd = await tempDir("nemotron-run-cli-");
  const home = await tempDir("nemotron-run-home-");
  await writeUserRecipe(path.join(cwd, "proj"));
  const env = { HOME: home, NEMOTRON_HOME: path.join(home, ".nemotron"), NEMOTRON_ENV_FILE: "" };
  return {
    cwd,
    nemotronHome: env.NEMOTRON_HOME,
    run: (args: string[], extra: Record<string, string> = {}) =>
      runCli(args, { cwd, env: { ...env, ...extra } }),
  };
}

Deno.test("run SCRIPT -c NAME key=value -- ARGS: runs locally with the config, overrides and args", async () => {
  const p = await project();
  const r = await p.run([
    "run",
    "proj/train.py",
    "-c",
    "small",
    "train.steps=3",
    "train.lr=0.25",
    "--",
    "--flag",
    "x",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.match(/^step \d+ lr .*$/gm), [
    "step 1 lr 0.25",
    "step 2 lr 0.25",
    "step 3 lr 0.25",
  ]);
  assert.match(r.stdout, /^helper: steps=3 name=small$/m, "the sibling module was imported");
  assert.match(r.stdout, /^extra: \["--flag", "x"\]$/m);
  assert.match(r.stdout, /^cwd-is-job-dir: True$/m);
  assert.match(r.stdout, /^config-file: train\.json$/m, "config.format = json");
  // The job dir: job.yaml (provenance), the train config, the log.
  const jobs = path.join(p.cwd, ".nemotron", "jobs");
  const [dir] = [...Deno.readDirSync(jobs)].map((e) => e.name);
  assert.match(dir, /^\d{8}-\d{6}-mine-train-[0-9a-f]{6}$/);
  assert.deepEqual(listFiles(path.join(jobs, dir)), ["job.yaml", "run.log", "train.json"]);
  const train = JSON.parse(Deno.readTextFileSync(path.join(jobs, dir, "train.json")));
  assert.deepEqual(train, { name: "small", exit_code: 0, train: { steps: 3, lr: 0.25 } });
  const jobYaml = Deno.readTextFileSync(path.join(jobs, dir, "job.yaml"));
  assert.match(jobYaml, new RegExp(`script: ${path.join(p.cwd, "proj", "train.py")}`));
  assert.match(jobYaml, /name: mine\/train/);
  assert.match(Deno.readTextFileSync(path.join(jobs, dir, "run.log")), /helper: steps=3/);
  // The job store row of the local run.
  const list = await p.run(["jobs", "list", "--all", "--json"]);
  assert.equal(list.code, 0, list.stderr);
  const rows = JSON.parse(list.stdout);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].name, "mine/train");
  assert.equal(rows[0].mode, "local");
  assert.equal(rows[0].state, "COMPLETED");
  assert.equal(rows[0].job_dir, path.join(jobs, dir));
});

Deno.test("run SCRIPT: the script's exit code is nemotron's, with the job dir and log tail", async () => {
  const p = await project();
  const r = await p.run(["run", "proj/train.py", "exit_code=7"]);
  assert.equal(r.code, 7, r.stdout + r.stderr);
  assert.match(r.stderr, /error: mine\/train failed with exit code 7/);
  assert.match(r.stderr, /job dir: .*\.nemotron\/jobs\/\d{8}-\d{6}-mine-train-/);
});

Deno.test("run SCRIPT -d and -d --json write nothing and show the plan", async () => {
  const p = await project();
  const before = listFiles(p.cwd);
  const text = await p.run(["run", "proj/train.py", "-d", "train.steps=4"]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /dry run: nothing was written or submitted/);
  const j = await p.run(["run", "proj/train.py", "-d", "--json", "train.steps=4", "--", "--x"]);
  assert.equal(j.code, 0, j.stderr);
  const out = JSON.parse(j.stdout);
  assert.equal(out.executor, "local");
  assert.deepEqual(out.train_config, { name: "base", exit_code: 0, train: { steps: 4, lr: 0.5 } });
  const script = path.join(p.cwd, "proj", "train.py");
  assert.deepEqual(out.command, [
    "python3",
    script,
    "--config",
    path.join(out.job_dir, "train.json"),
    "--x",
  ]);
  assert.match(out.job_dir, /\.nemotron\/jobs\/\d{8}-\d{6}-mine-train-XXXXXX$/);
  assert.equal(out.env_vars.NEMOTRON_RECIPE, "mine/train");
  assert.equal(out.job_config.run.recipe.script, script);
  assert.deepEqual(listFiles(p.cwd), before, "nothing written in the project");
  assert.deepEqual(listFiles(p.nemotronHome), [], "nothing written in NEMOTRON_HOME");
});

Deno.test("run SCRIPT: config.format, run.launch and run.cmd come from the runspec", async () => {
  const p = await project();
  const withSpec = (extra: string) =>
    USER_SCRIPT.replace('format = "json"', 'format = "toml"')
      .replace('launch = "direct"', extra);
  await writeUserRecipe(path.join(p.cwd, "torch"), withSpec('launch = "torchrun"'));
  const t = await p.run([
    "run",
    "torch/train.py",
    "-d",
    "--json",
    "run.env.nproc_per_node=2",
    "run.env.python=/opt/py/bin/python3",
    'run.env.torchrun_args=["--tee=1"]',
  ], { NEMOTRON_PYTHON: "" });
  assert.equal(t.code, 0, t.stderr);
  const tj = JSON.parse(t.stdout);
  assert.deepEqual(tj.command, [
    "/opt/py/bin/python3",
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nnodes=1",
    "--nproc_per_node=2",
    "--tee=1",
    path.join(p.cwd, "torch", "train.py"),
    "--config",
    path.join(tj.job_dir, "train.toml"),
  ]);

  await writeUserRecipe(
    path.join(p.cwd, "cmd"),
    withSpec('launch = "direct"\n# cmd = "python3 {script} --config {config} --via-cmd"'),
  );
  const c = await p.run(["run", "cmd/train.py"]);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /^extra: \["--via-cmd"\]$/m);
  assert.match(c.stdout, /^config-file: train\.toml$/m);
});

Deno.test("run SCRIPT --help shows the recipe panels; run --help the command's own help", async () => {
  const p = await project();
  await writeTree(p.cwd, {
    "env.toml": '[cluster]\nexecutor = "slurm"\n[box]\nexecutor = "local"\n',
  });
  const h = await p.run(["run", "proj/train.py", "--help"], { NEMOTRON_ENV_FILE: "" });
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /^Usage: nemotron run proj\/train\.py \[OPTIONS\]/);
  assert.match(h.stdout, /My own training script with a sibling module\./);
  assert.match(h.stdout, /^Configs \(-c\/--config\):\n {2}Built-in: {2}default, small$/m);
  assert.match(h.stdout, /Available profiles: cluster, box/);
  assert.match(h.stdout, /^Dotlist Overrides:$/m);
  assert.match(h.stdout, /nemotron run proj\/train\.py -c default name=base/);
  assert.match(h.stdout, /^Examples:$/m);
  assert.match(h.stdout, /--package self-contained/);
  const g = await p.run(["run", "--help"]);
  assert.equal(g.code, 0, g.stderr);
  assert.match(g.stdout, /^Usage: nemotron run SCRIPT \[OPTIONS\]/);
  assert.match(g.stdout, /--package code\|self-contained/);
  const top = await p.run(["--help"]);
  assert.match(top.stdout, /^ {2}run\s+Run a Python script with a \[tool\.runspec\] block/m);
});

Deno.test("run NAME runs a catalogue recipe (NEMOTRON_RECIPE_PATH) and a built-in by name", async () => {
  const p = await project();
  const r = await p.run(["run", "mine/train", "train.steps=1"], { NEMOTRON_RECIPE_PATH: "proj" });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^helper: steps=1 name=base$/m);
  // A built-in by its runspec name plans exactly what its own command plans (paths aside).
  const a = await p.run(["demo", "train", "-c", "tiny", "-d", "--json"]);
  const b = await p.run(["run", "demo/train", "-c", "tiny", "-d", "--json"]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const ja = JSON.parse(a.stdout);
  const jb = JSON.parse(b.stdout);
  assert.deepEqual(jb.train_config, ja.train_config);
  assert.equal(jb.job_config.run.recipe.script, "demo/train.py");
  // The job dir's timestamp may differ by a second between the two commands.
  const stamp = (argv: string[]) => argv.map((a) => a.replace(/\d{8}-\d{6}/, "<STAMP>"));
  assert.deepEqual(stamp(jb.command.slice(2)), stamp(ja.command.slice(2)));
  assert.equal(path.basename(jb.command[1]), "train.py");
  // (The local run above made jobs.db; the dry runs left no unpacked recipe behind.)
  assert.deepEqual(listFiles(p.nemotronHome).filter((f) => !f.startsWith("jobs.db")), []);
});

Deno.test("run: bad input is exit 2 with a clear message and nothing written", async () => {
  const p = await project();
  await writeTree(p.cwd, { "plain.py": "print('no runspec')\n" });
  const cases: [string[], RegExp][] = [
    [["run"], /nemotron run needs a SCRIPT/],
    [["run", "--mock"], /needs a SCRIPT before script arguments, got '--mock'/],
    [["run", "nope.py"], /Script not found: .*nope\.py/],
    [["run", "no/such/recipe"], /no recipe named 'no\/such\/recipe'/],
    [["run", "demo/trian"], /did you mean 'demo\/train'\?/],
    [["run", "plain.py"], /No PEP 723 metadata block found/],
    [["run", "proj/train.py", "-c", "huge"], /Config 'huge' not found in .*proj\/config/],
    [["run", "proj/train.py", "--package", "zip"], /--package must be 'code' or 'self-contained'/],
    [["run", "proj/train.py", "-r", "nowhere"], /Profile 'nowhere' not found/],
  ];
  for (const [args, re] of cases) {
    const r = await p.run(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, re, args.join(" "));
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
  assert.deepEqual(listFiles(path.join(p.cwd, ".nemotron")), []);
});

Deno.test("run SCRIPT with a profile: image squash planned, secrets hidden, startup commands, artifact vars", async () => {
  const p = await project();
  await writeUserRecipe(
    path.join(p.cwd, "img"),
    USER_SCRIPT.replace(
      '# name = "mine/train"',
      '# name = "mine/img"\n# image = "nvcr.io/nvidia/x:1"',
    ),
  );
  const rjd = path.join(p.cwd, "rjd");
  await writeTree(p.cwd, {
    "env.toml": [
      "[cluster]",
      'executor = "slurm"',
      `remote_job_dir = "${rjd}"`,
      'env_vars = { MY_TOKEN = "s3cret-value" }',
      "[box]",
      'executor = "local"',
      'startup_commands = ["echo started-$NEMOTRON_RECIPE"]',
      'env_vars = { MY_TOKEN = "s3cret-value" }',
      "",
    ].join("\n"),
  });
  const d = await p.run(["run", "img/train.py", "-d", "--json", "-b", "cluster"]);
  assert.equal(d.code, 0, d.stderr);
  assert.doesNotMatch(d.stdout, /s3cret-value/, "no secret in the dry run");
  const out = JSON.parse(d.stdout);
  assert.equal(out.env_vars.MY_TOKEN, "******");
  assert.ok(
    out.notes.some((n: string) => /^container: nvcr\.io\/nvidia\/x:1 → .+\.sqsh$/.test(n)),
    JSON.stringify(out.notes),
  );
  assert.match(out.sbatch_script, /--container-image/);
  assert.ok(out.env_vars.NEMOTRON_ARTIFACTS_ROOT, "artifact registry root");
  assert.equal(out.env_vars.NEMOTRON_RECIPE, "mine/img");
  assert.throws(() => Deno.statSync(rjd), Deno.errors.NotFound);

  const local = await p.run(["run", "proj/train.py", "--run", "box"]);
  assert.equal(local.code, 0, local.stderr);
  assert.match(local.stderr, /\[startup\] echo started-\$NEMOTRON_RECIPE/);
  assert.match(local.stdout, /^started-mine\/train$/m);
  const logs = listFiles(path.join(p.cwd, ".nemotron"));
  const jobYaml = logs.find((f) => f.endsWith("job.yaml"))!;
  const text = Deno.readTextFileSync(path.join(p.cwd, ".nemotron", jobYaml));
  assert.doesNotMatch(text, /s3cret-value/, "no secret in job.yaml");
  assert.match(text, /MY_TOKEN: '?\*{6}'?/);
});

Deno.test("run SCRIPT follows the override rule and builds on built-in configs (config engine)", async () => {
  const p = await project();
  const typo = await p.run(["run", "proj/train.py", "train.stepz=3"]);
  assert.equal(typo.code, 2, typo.stdout);
  assert.match(
    typo.stderr,
    /key 'train\.stepz' is not in the config\. Did you mean train\.steps\?/,
  );
  assert.deepEqual(listFiles(path.join(p.cwd, ".nemotron")), [], "nothing ran");
  const plus = await p.run(["run", "proj/train.py", "-d", "--json", "+train.extra=1", "~name"]);
  assert.equal(plus.code, 0, plus.stderr);
  assert.deepEqual(JSON.parse(plus.stdout).train_config, {
    exit_code: 0,
    train: { steps: 2, lr: 0.5, extra: 1 },
  });
  // A user config that starts from a built-in one, run with the exported fork.
  assert.equal((await p.run(["recipes", "export", "demo/train", "fork"])).code, 0);
  await writeTree(p.cwd, { "mine.yaml": "defaults: [demo/train:tiny]\ntrain:\n  steps: 2\n" });
  const mine = await p.run(["run", "fork/train.py", "-c", "./mine.yaml", "-d", "--json"]);
  assert.equal(mine.code, 0, mine.stderr);
  const train = JSON.parse(mine.stdout).train_config;
  assert.equal(train.train.steps, 2);
  assert.equal(train.artifact.name, "demo-model-tiny", "the rest comes from demo/train:tiny");
});
