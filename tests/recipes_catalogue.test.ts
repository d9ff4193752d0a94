/**
 * The recipe catalogue through the CLI: `recipes list|show|export`, recipe directories from env.toml
 * `[cli] recipe_dirs` (relative to the env.toml) and NEMOTRON_RECIPE_PATH, two recipes with one
 * name, and the export round trip for every built-in recipe: `nemotron run EXPORTED -d --json`
 * plans what the built-in command plans.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { ROOT, runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { listFiles, USER_SCRIPT, writeUserRecipe } from "./run_fixture.ts";

/** The built-in recipes with a script: name, command words, script under recipes/. */
const BUILTINS = [
  ["demo/data", ["demo", "data"], "demo/data.py"],
  ["demo/train", ["demo", "train"], "demo/train.py"],
  ["demo/ddp", ["demo", "ddp"], "demo/ddp.py"],
  [
    "nano3/data/prep/pretrain",
    ["nano3", "data", "prep", "pretrain"],
    "nano3/stage0_pretrain/data_prep.py",
  ],
  ["nano3/pretrain", ["nano3", "pretrain"], "nano3/stage0_pretrain/train.py"],
  ["nano3/data/prep/sft", ["nano3", "data", "prep", "sft"], "nano3/stage1_sft/data_prep.py"],
  ["nano3/sft", ["nano3", "sft"], "nano3/stage1_sft/train.py"],
  ["nano3/data/prep/rl", ["nano3", "data", "prep", "rl"], "nano3/stage2_rl/data_prep.py"],
  ["nano3/rl", ["nano3", "rl"], "nano3/stage2_rl/train.py"],
] as const;

async function site(env: Record<string, string> = {}) {
  const cwd = await tempDir("nemotron-catalogue-");
  const home = await tempDir("nemotron-catalogue-home-");
  const base = { HOME: home, NEMOTRON_HOME: path.join(home, ".nemotron"), NEMOTRON_ENV_FILE: "" };
  return {
    cwd,
    run: (args: string[], extra: Record<string, string> = {}) =>
      runCli(args, { cwd, env: { ...base, ...env, ...extra } }),
  };
}

// deno-lint-ignore no-explicit-any
type Row = Record<string, any>;

Deno.test("recipes list: every built-in with its command, launch, image, configs, source", async () => {
  const s = await site();
  const r = await s.run(["recipes", "list", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const rows: Row[] = JSON.parse(r.stdout);
  assert.deepEqual(rows.map((x) => x.name), BUILTINS.map((b) => b[0]));
  for (const [name, words, script] of BUILTINS) {
    const row = rows.find((x) => x.name === name)!;
    assert.equal(row.command, `nemotron ${words.join(" ")}`);
    assert.equal(row.source, "built-in");
    assert.equal(row.script, `built-in:${script}`);
    // Independent check: the runspec text of the file in the repository.
    const text = Deno.readTextFileSync(path.join(ROOT, "recipes", script));
    assert.equal(row.launch, /^# launch = "(\w+)"/m.exec(text)![1], name);
    assert.equal(row.image, /^# image = "([^"]+)"/m.exec(text)?.[1] ?? null, name);
    assert.deepEqual(row.configs, ["default", "tiny"], name);
  }
  const text = await s.run(["recipes", "list"]);
  assert.match(text.stdout, /^NAME\s+COMMAND\s+LAUNCH\s+IMAGE\s+CONFIGS\s+SOURCE$/m);
  assert.match(
    text.stdout,
    /^demo\/train\s+nemotron demo train\s+direct\s+-\s+default,tiny\s+built-in$/m,
  );
});

Deno.test("recipes list: env.toml [cli] recipe_dirs (relative to env.toml) and NEMOTRON_RECIPE_PATH", async () => {
  const s = await site();
  // env.toml in conf/, naming ../team (relative to the env.toml, not the cwd).
  await writeUserRecipe(path.join(s.cwd, "team", "mine"));
  await writeTree(s.cwd, {
    "conf/env.toml": '[cli]\nrecipe_dirs = ["../team"]\n',
    // A script without a name is named by its path under the directory; a plain PEP 723 script
    // (no [tool.runspec]) and a non-Python file are not recipes.
    "extra/sub/unnamed.py": USER_SCRIPT.replace('# name = "mine/train"\n', ""),
    "extra/sub/config/default.yaml": "name: u\nexit_code: 0\ntrain: {steps: 1, lr: 1}\n",
    "extra/uvscript.py": '# /// script\n# dependencies = ["requests"]\n# ///\nprint(1)\n',
    "extra/notes.txt": "# [tool.runspec]\n",
  });
  const r = await s.run(["recipes", "list", "--json"], {
    NEMOTRON_ENV_FILE: path.join(s.cwd, "conf", "env.toml"),
    NEMOTRON_RECIPE_PATH: "extra",
  });
  assert.equal(r.code, 0, r.stderr);
  const rows: Row[] = JSON.parse(r.stdout);
  const mine = rows.filter((x) => x.source !== "built-in");
  assert.deepEqual(mine.map((x) => [x.name, x.source, x.command, x.launch, x.configs]), [
    ["mine/train", path.join(s.cwd, "team"), "nemotron run mine/train", "direct", [
      "default",
      "small",
    ]],
    ["sub/unnamed", path.join(s.cwd, "extra"), "nemotron run sub/unnamed", "direct", ["default"]],
  ]);
  assert.equal(mine[0].script, path.join(s.cwd, "team", "mine", "train.py"));
  // And the entries run by name.
  const run = await s.run(["run", "sub/unnamed", "-d", "--json"], {
    NEMOTRON_RECIPE_PATH: "extra",
  });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(JSON.parse(run.stdout).env_vars.NEMOTRON_RECIPE, "sub/unnamed");
});

Deno.test("recipes: two recipes with one name, bad recipe_dirs: exit 2 naming the files", async () => {
  const s = await site();
  await writeUserRecipe(path.join(s.cwd, "a"));
  await writeUserRecipe(path.join(s.cwd, "b"));
  const dup = await s.run(["recipes", "list"], { NEMOTRON_RECIPE_PATH: "a:b" });
  assert.equal(dup.code, 2, dup.stdout);
  assert.match(
    dup.stderr,
    new RegExp(
      `two recipes are named 'mine/train': ${path.join(s.cwd, "a", "train.py")} and ${
        path.join(s.cwd, "b", "train.py")
      }`,
    ),
  );
  const runDup = await s.run(["run", "mine/train"], { NEMOTRON_RECIPE_PATH: "a:b" });
  assert.equal(runDup.code, 2);
  assert.match(runDup.stderr, /two recipes are named 'mine\/train'/);
  // A fork that keeps a built-in's name clashes with the built-in.
  const exp = await s.run(["recipes", "export", "demo/train", "fork"]);
  assert.equal(exp.code, 0, exp.stderr);
  const clash = await s.run(["recipes", "show", "demo/train"], { NEMOTRON_RECIPE_PATH: "fork" });
  assert.equal(clash.code, 2);
  assert.match(
    clash.stderr,
    new RegExp(
      `'demo/train': built-in:demo/train\\.py and ${path.join(s.cwd, "fork", "train.py")}`,
    ),
  );
  // ... but runs by path.
  const byPath = await s.run(["run", "fork/train.py", "-d"], { NEMOTRON_RECIPE_PATH: "fork" });
  assert.equal(byPath.code, 0, byPath.stderr);

  await writeTree(s.cwd, { "env.toml": '[cli]\nrecipe_dirs = "a"\n' });
  const bad = await s.run(["recipes", "list"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /env\.toml:2(:\d+)?: error: \[cli\] recipe_dirs must be a list/);
  await writeTree(s.cwd, { "env.toml": '[cli]\nrecipe_dirs = ["missing"]\n' });
  const missing = await s.run(["recipes", "list"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /recipe directory not found: .*\/missing \(from env\.toml \[cli\]/);
});

Deno.test("recipes show NAME: resolved runspec, configs and files", async () => {
  const s = await site();
  const r = await s.run(["recipes", "show", "nano3/rl", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.name, "nano3/rl");
  assert.equal(j.command, "nemotron nano3 rl");
  assert.equal(j.runspec.run.cmd, "uv run python {script} --config {config}");
  assert.equal(j.runspec.run.workdir, "/opt/nemo-rl");
  assert.equal(j.runspec.config.default, "tiny");
  assert.equal(j.runspec.script_path, "built-in:nano3/stage2_rl/train.py");
  assert.equal(j.runspec.config_dir, "built-in:nano3/stage2_rl/config");
  assert.deepEqual(j.configs, ["default", "tiny"]);
  assert.deepEqual(j.files, [
    "config/default.yaml",
    "config/tiny.yaml",
    "nemotron_artifacts.py",
    "train.py",
  ]);
  const text = await s.run(["recipes", "show", "demo/data"]);
  assert.match(text.stdout, /^run\.launch\s+direct$/m);
  assert.match(text.stdout, /^files:\n(\s+\S+\n)*\s+corpus\.txt$/m);
  const none = await s.run(["recipes", "show", "demo/dta"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no recipe named 'demo\/dta'/);
  assert.match(none.stderr, /did you mean 'demo\/data'\?/);
});

Deno.test("recipes export: the files of the repository's recipe; no overwrite without --force", async () => {
  const s = await site();
  const r = await s.run(["recipes", "export", "nano3/data/prep/sft", "out"]);
  assert.equal(r.code, 0, r.stderr);
  const out = path.join(s.cwd, "out");
  // Independent check: byte-equal to the files under recipes/ in the repository.
  const src = path.join(ROOT, "recipes", "nano3", "stage1_sft");
  const expected = [
    "config/data_prep/data_blend_raw.json",
    "config/data_prep/data_blend_tiny.json",
    "config/data_prep/default.yaml",
    "config/data_prep/tiny.yaml",
    "data_prep.py",
    "nemotron_artifacts.py",
  ];
  assert.deepEqual(listFiles(out), expected);
  for (const f of expected) {
    const from = f === "nemotron_artifacts.py" ? path.join(ROOT, "recipes", f) : path.join(src, f);
    assert.equal(Deno.readTextFileSync(path.join(out, f)), Deno.readTextFileSync(from), f);
  }
  assert.match(r.stdout, new RegExp(`run it: nemotron run ${path.join(out, "data_prep.py")}`));

  // Same content again: fine. Another recipe into the same dir shares the helper: fine.
  assert.equal((await s.run(["recipes", "export", "nano3/data/prep/sft", "out"])).code, 0);
  // An edited file is not overwritten, and nothing else is written either.
  Deno.writeTextFileSync(path.join(out, "config/data_prep/tiny.yaml"), "mine: 1\n");
  Deno.removeSync(path.join(out, "data_prep.py"));
  const refused = await s.run(["recipes", "export", "nano3/data/prep/sft", "out"]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /1 file\(s\) already exist with other content: .*tiny\.yaml/);
  assert.match(refused.stderr, /nothing was written/);
  assert.throws(() => Deno.statSync(path.join(out, "data_prep.py")), Deno.errors.NotFound);
  const forced = await s.run(["recipes", "export", "nano3/data/prep/sft", "out", "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(Deno.readTextFileSync(path.join(out, "config/data_prep/tiny.yaml")), "mine: 1\n");

  await writeUserRecipe(path.join(s.cwd, "mine"));
  const notBuiltin = await s.run(["recipes", "export", "mine/train", "x"], {
    NEMOTRON_RECIPE_PATH: "mine",
  });
  assert.equal(notBuiltin.code, 2);
  assert.match(notBuiltin.stderr, /'mine\/train' is not a built-in recipe/);
});

/**
 * The dry-run JSON with the fields that differ by construction normalised, each after checking
 * its expected value:
 * - `job_config.run.cli.argv` and `env_vars.NEMOTRON_COMMAND`: the command line typed;
 * - `job_config.run.recipe.script`: `recipes/`-relative for the built-in, the file for the fork;
 * - the script path wherever it appears (the built-in runs `<job dir>/code/<script>`, the fork
 *   runs the exported file in place): replaced by `<SCRIPT>`;
 * - the job dir's timestamp (the two commands run a second apart): replaced by `<STAMP>`;
 * - nano3 pretrain/sft only: `nemotron run` starts a local torchrun as `demo ddp` and the Slurm job
 *   do (`--standalone --nnodes=1`, `run.env.python`, `run.env.torchrun_args`); those two built-ins
 *   still use the older line without `--standalone --nnodes=1`. The test checks that these two
 *   flags are the whole difference, then drops them.
 * Everything else — train config, job config, environment, the command around the script path,
 * executor, job dir — must be equal.
 */
function normalised(
  stdout: string,
  expect: { argv: string[]; script: string; recorded: string },
): Row {
  const j = JSON.parse(stdout);
  assert.deepEqual(j.job_config.run.cli.argv, expect.argv);
  assert.equal(j.env_vars.NEMOTRON_COMMAND, ["nemotron", ...expect.argv].join(" "));
  assert.equal(j.job_config.run.recipe.script, expect.recorded);
  j.job_config.run.cli.argv = "<ARGV>";
  j.env_vars.NEMOTRON_COMMAND = "<ARGV>";
  j.job_config.run.recipe.script = "<RECORDED>";
  const stamp = (t: string) => t.replace(/\d{8}-\d{6}/g, "<STAMP>");
  return JSON.parse(stamp(JSON.stringify(j)).replaceAll(stamp(expect.script), "<SCRIPT>"));
}

for (const [name, words, script] of BUILTINS) {
  Deno.test(`recipes export ${name}: run EXPORTED -d --json plans what '${words.join(" ")} -d --json' plans`, async () => {
    const s = await site();
    const exp = await s.run(["recipes", "export", name, "fork"]);
    assert.equal(exp.code, 0, exp.stderr);
    const base = path.basename(script);
    const exported = path.join(s.cwd, "fork", base);
    for (const config of ["default", "tiny"]) {
      const builtinArgv = [...words, "-c", config, "-d", "--json"];
      const forkArgv = ["run", `fork/${base}`, "-c", config, "-d", "--json"];
      const a = await s.run(builtinArgv);
      const b = await s.run(forkArgv);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      const ja = JSON.parse(a.stdout);
      const na = normalised(a.stdout, {
        argv: builtinArgv,
        script: path.join(ja.job_dir, "code", base),
        recorded: script,
      });
      const nb = normalised(b.stdout, { argv: forkArgv, script: exported, recorded: exported });
      if (name === "nano3/pretrain" || name === "nano3/sft") {
        const at = nb.command.indexOf("torch.distributed.run") + 1;
        assert.deepEqual(nb.command.slice(at, at + 2), ["--standalone", "--nnodes=1"]);
        nb.command.splice(at, 2);
      }
      assert.deepEqual(nb, na, `${name} -c ${config}`);
      // The comparison is not vacuous: the script path was in the command and got normalised.
      assert.ok(JSON.stringify(na.command).includes("<SCRIPT>"), JSON.stringify(na.command));
      assert.ok(Object.keys(na.train_config).length > 0);
    }
    assert.deepEqual(listFiles(path.join(s.cwd, ".nemotron")), [], "dry runs wrote nothing");
  });
}

Deno.test("recipes export demo/data and demo/train into one dir: the fork runs end to end", async () => {
  const s = await site();
  for (const name of ["demo/data", "demo/train"]) {
    const r = await s.run(["recipes", "export", name, "fork"]);
    assert.equal(r.code, 0, r.stderr);
  }
  // A fork: one edit to the train config.
  const tiny = path.join(s.cwd, "fork", "config", "train", "tiny.yaml");
  Deno.writeTextFileSync(tiny, Deno.readTextFileSync(tiny).replace("steps: 8", "steps: 3"));
  const data = await s.run(["run", "fork/data.py", "-c", "tiny"]);
  assert.equal(data.code, 0, data.stderr);
  const train = await s.run(["run", "fork/train.py", "-c", "tiny"]);
  assert.equal(train.code, 0, train.stderr);
  assert.equal(train.stdout.match(/^step \d+\/3 loss /gm)?.length, 3, train.stdout);
  const lin = await s.run(["artifacts", "lineage", "demo-model-tiny"]);
  assert.equal(lin.code, 0, lin.stderr);
  assert.match(lin.stdout, /^demo-model-tiny:v1\s+model\s+demo\/train/m);
  assert.match(lin.stdout, /demo-data-tiny:v1\s+dataset\s+demo\/data/);
  // The torchrun fork: two ranks under Debian's torch (run.env.torchrun_args of its config).
  assert.equal((await s.run(["recipes", "export", "demo/ddp", "fork"])).code, 0);
  const ddp = await s.run(["run", "fork/ddp.py", "-c", "tiny"], {
    NEMOTRON_PYTHON: "/usr/bin/python3",
  });
  assert.equal(ddp.code, 0, ddp.stdout + ddp.stderr);
  assert.match(ddp.stdout, /^\[default0\]:rank 0 step \d+\/\d+ loss/m);
  assert.match(ddp.stdout, /^\[default1\]:rank 1 step \d+\/\d+ loss/m);
});
