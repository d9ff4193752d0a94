/**
 * The demo recipe commands end to end through the CLI (`nemotron demo data|train|pipe`), locally
 * in temp dirs: the whole pipe with no env.toml (loss per step, artifacts, lineage, job dirs),
 * dry runs that write nothing, `--dry-run --json`, secrets that reach the script but no file or
 * output, bad input (exit 2, nothing written), a failing script (its exit code, job dir, log tail)
 * and a missing artifact version.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { type CliResult, runCli, tempDir, writeTree } from "./cli_helpers.ts";

interface Sandbox {
  /** The working directory (where `.nemotron/jobs` goes). */
  readonly cwd: string;
  /** HOME; NEMOTRON_HOME is `<home>/.nemotron`. */
  readonly home: string;
  readonly nemotronHome: string;
  run(args: readonly string[], extraEnv?: Record<string, string>): Promise<CliResult>;
}

/** The parent's Deno cache: a fresh HOME would otherwise hold a new one (slow, and not ours). */
export const DENO_DIR = Deno.env.get("DENO_DIR") ||
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

async function sandbox(files: Record<string, string> = {}): Promise<Sandbox> {
  const cwd = await tempDir("nemotron-recipes-cwd-");
  const home = await tempDir("nemotron-recipes-home-");
  await writeTree(cwd, files);
  const nemotronHome = path.join(home, ".nemotron");
  return {
    cwd,
    home,
    nemotronHome,
    run: (args, extraEnv = {}) =>
      runCli(args, {
        cwd,
        env: {
          HOME: home,
          NEMOTRON_HOME: nemotronHome,
          NEMOTRON_ENV_FILE: "",
          DENO_DIR,
          ...extraEnv,
        },
      }),
  };
}

/** Relative paths of every file and directory under `dir` (sorted); [] when it does not exist. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of Deno.readDirSync(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory) walk(path.join(d, e.name), r);
    }
  };
  try {
    walk(dir, "");
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** Every regular file under `dir` whose bytes contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  for (const rel of tree(dir)) {
    const p = path.join(dir, rel);
    const st = Deno.lstatSync(p);
    if (!st.isFile) continue;
    if (new TextDecoder().decode(Deno.readFileSync(p)).includes(needle)) hits.push(p);
  }
  return hits;
}

function losses(stdout: string): number[] {
  return [...stdout.matchAll(/^step (\d+)\/(\d+) loss ([\d.]+) val_loss ([\d.]+)$/gm)].map((m) =>
    Number(m[3])
  );
}

function jobDirs(cwd: string): string[] {
  return tree(path.join(cwd, ".nemotron", "jobs")).filter((r) => !r.includes("/"));
}

Deno.test("demo pipe -c tiny: runs locally with no env.toml, prints losses, publishes artifacts with lineage", async () => {
  const sb = await sandbox();
  const r = await sb.run(["demo", "pipe", "-c", "tiny"]);
  assert.equal(r.code, 0, r.stderr);

  // loss per step, lower at the end
  const ls = losses(r.stdout);
  assert.equal(ls.length, 8, r.stdout);
  assert.deepEqual(
    [...r.stdout.matchAll(/^step (\d+)\/8 /gm)].map((m) => Number(m[1])),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  assert.ok(ls[ls.length - 1] < ls[0], `loss decreases: ${ls.join(" ")}`);

  // artifacts in $NEMOTRON_HOME/artifacts, reported at the end
  const root = path.join(sb.nemotronHome, "artifacts");
  for (const name of ["demo-data-tiny", "demo-model-tiny"]) {
    const manifest = JSON.parse(
      Deno.readTextFileSync(path.join(root, name, "v1", "manifest.json")),
    );
    assert.equal(manifest.name, name);
    assert.match(r.stdout, new RegExp(`^  ${name}:v1  ${root}/${name}/v1`, "m"));
  }
  assert.match(r.stdout, new RegExp(`registry: ${root}$`, "m"));

  // lineage: the model names the data artifact
  const lin = await sb.run(["artifacts", "lineage", "demo-model-tiny"]);
  assert.equal(lin.code, 0, lin.stderr);
  assert.match(lin.stdout, /^demo-model-tiny:v1\b/m);
  assert.match(lin.stdout, /demo-data-tiny:v1\s+dataset\s+demo\/data/);

  // one job dir per stage, each with job.yaml, the train config and the log of the run
  const dirs = jobDirs(sb.cwd);
  assert.equal(dirs.length, 2, dirs.join(", "));
  assert.match(dirs[0], /^\d{8}-\d{6}-demo-data-[0-9a-f]{6}$/);
  assert.match(dirs[1], /^\d{8}-\d{6}-demo-train-[0-9a-f]{6}$/);
  for (const d of dirs) {
    const base = path.join(sb.cwd, ".nemotron", "jobs", d);
    for (const f of ["job.yaml", "train.json", "run.log"]) {
      assert.ok(Deno.statSync(path.join(base, f)).isFile, `${d}/${f}`);
    }
    assert.match(r.stderr, new RegExp(`job dir ${base}`));
  }
  const trainLog = Deno.readTextFileSync(
    path.join(sb.cwd, ".nemotron", "jobs", dirs[1], "run.log"),
  );
  assert.equal(losses(trainLog).length, 8, "the log has the loss lines");
  const trainCfg = JSON.parse(
    Deno.readTextFileSync(path.join(sb.cwd, ".nemotron", "jobs", dirs[1], "train.json")),
  );
  assert.equal(trainCfg.train.steps, 8);
  assert.equal(trainCfg.run.data, "demo-data-tiny:latest");
});

Deno.test("dry runs write nothing; --dry-run --json has exactly the documented keys", async () => {
  const sb = await sandbox();
  for (
    const args of [
      ["demo", "pipe", "-c", "tiny", "--dry-run"],
      ["demo", "data", "-c", "tiny", "-d"],
      ["demo", "train", "--dry-run", "train.steps=3"],
      ["demo", "train", "-c", "tiny", "--dry-run", "--json"],
    ]
  ) {
    const r = await sb.run(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.deepEqual(tree(sb.cwd), [], `${args.join(" ")} wrote into the cwd`);
    assert.deepEqual(tree(sb.home), [], `${args.join(" ")} wrote into HOME/NEMOTRON_HOME`);
    if (!args.includes("--json")) {
      assert.match(r.stdout, /dry run: nothing was written or submitted/);
      continue;
    }
    const j = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(j).sort(), [
      "command",
      "env_vars",
      "executor",
      "job_config",
      "job_dir",
      "train_config",
    ]);
    assert.equal(j.executor, "local");
    assert.ok(j.job_dir.startsWith(path.join(sb.cwd, ".nemotron", "jobs") + "/"), j.job_dir);
    assert.equal(j.command[0], "python3");
    assert.deepEqual(j.command.slice(-2), ["--config", path.join(j.job_dir, "train.json")]);
    assert.equal(j.job_config.run.recipe.name, "demo/train");
    assert.equal(j.train_config.train.steps, 8);
    assert.equal(j.train_config.run.data, "demo-data-tiny:latest");
    assert.equal(j.env_vars.NEMOTRON_RECIPE, "demo/train");
  }
  // the pipe's dry run shows both stages
  const pipe = await sb.run(["demo", "pipe", "-c", "tiny", "--dry-run"]);
  assert.equal(pipe.stdout.match(/dry run: nothing was written/g)?.length, 2);
  assert.match(pipe.stdout, /job dir: .*-demo-data-XXXXXX[\s\S]*job dir: .*-demo-train-XXXXXX/);
});

/**
 * A `sitecustomize.py` on PYTHONPATH runs inside every python3 the recipe starts: it records the
 * HF_TOKEN the script process really received (outside the sandbox), and exits with DIE_CODE.
 */
async function probeDir(): Promise<string> {
  const dir = await tempDir("nemotron-recipes-probe-");
  await writeTree(dir, {
    "sitecustomize.py": [
      "import os",
      `with open(${JSON.stringify(path.join(dir, "seen.txt"))}, "a") as f:`,
      "    f.write('HF_TOKEN=%s\\n' % os.environ.get('HF_TOKEN', '<unset>'))",
      "if os.environ.get('DIE_CODE'):",
      "    os._exit(int(os.environ['DIE_CODE']))",
      "",
    ].join("\n"),
  });
  return dir;
}

Deno.test("secrets: the script receives HF_TOKEN; no output, job file or log shows it", async () => {
  const SECRET = "hf-secret-123";
  const probe = await probeDir();
  const sb = await sandbox({
    "env.toml": [
      "[workstation]",
      'executor = "local"',
      `env_vars = { HF_TOKEN = "${SECRET}", PYTHONPATH = "${probe}" }`,
      `startup_commands = ["printenv HF_TOKEN > ${probe}/startup.txt"]`,
      "",
    ].join("\n"),
  });
  // dry runs, text and JSON
  for (const extra of [[], ["--json"]]) {
    const d = await sb.run(["demo", "data", "-c", "tiny", "-r", "workstation", "-d", ...extra]);
    assert.equal(d.code, 0, d.stderr);
    assert.ok(!d.stdout.includes(SECRET) && !d.stderr.includes(SECRET), d.stdout);
    assert.match(d.stdout, /HF_TOKEN"?[=:]\s*['"]?\*{6}/);
  }
  // a real run
  const r = await sb.run(["demo", "data", "-c", "tiny", "-r", "workstation"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes(SECRET) && !r.stderr.includes(SECRET));
  assert.equal(Deno.readTextFileSync(path.join(probe, "seen.txt")), `HF_TOKEN=${SECRET}\n`);
  assert.equal(Deno.readTextFileSync(path.join(probe, "startup.txt")), `${SECRET}\n`);
  const dir = jobDirs(sb.cwd);
  assert.equal(dir.length, 1);
  const jobDir = path.join(sb.cwd, ".nemotron", "jobs", dir[0]);
  for (const f of ["job.yaml", "train.json", "run.log"]) {
    assert.ok(Deno.statSync(path.join(jobDir, f)).isFile, f);
  }
  assert.match(Deno.readTextFileSync(path.join(jobDir, "job.yaml")), /HF_TOKEN: '\*{6}'/);
  assert.deepEqual(filesContaining(path.join(sb.cwd, ".nemotron"), SECRET), []);
  assert.deepEqual(filesContaining(sb.home, SECRET), []);
});

Deno.test("secrets: a secret given as a command-line override is not written to job.yaml or shown", async () => {
  const SECRET = "cli-secret-456";
  const sb = await sandbox();
  const override = `run.env.env_vars.MY_API_KEY=${SECRET}`;
  const d = await sb.run(["demo", "data", "-c", "tiny", "--dry-run", override]);
  assert.equal(d.code, 0, d.stderr);
  const r = await sb.run(["demo", "data", "-c", "tiny", override]);
  assert.equal(r.code, 0, r.stderr);
  // run.cli.argv / run.cli.dotlist keep the token as typed: the value must be redacted there too
  assert.ok(!d.stdout.includes(SECRET), "the dry run shows the secret (run.cli.argv/dotlist)");
  assert.deepEqual(filesContaining(path.join(sb.cwd, ".nemotron"), SECRET), []);
});

/** Bad input: exit 2, nothing in the cwd, and nothing in NEMOTRON_HOME but the recipe cache. */
async function assertBadInput(
  sb: Sandbox,
  args: readonly string[],
  message: RegExp,
): Promise<CliResult> {
  const before = tree(sb.cwd);
  const r = await sb.run(args);
  assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr, message, args.join(" "));
  assert.deepEqual(tree(sb.cwd), before, `${args.join(" ")} wrote into the cwd`);
  assert.deepEqual(tree(sb.nemotronHome), [], `${args.join(" ")} wrote into NEMOTRON_HOME`);
  return r;
}

Deno.test("bad input exits 2 and writes nothing", async () => {
  const sb = await sandbox({
    "env.toml": '[cluster]\nexecutor = "slurm"\n\n[workstation]\nexecutor = "local"\n',
  });
  // unknown config name: the built-ins are listed
  const cfg = await assertBadInput(sb, ["demo", "data", "-c", "nope"], /Config 'nope' not found/);
  assert.match(cfg.stderr, /Built-in configs: default, tiny/);
  await assertBadInput(sb, ["demo", "pipe", "-c", "nope"], /Built-in configs: default, tiny/);
  // unknown profile: the list and a suggestion
  const prof = await assertBadInput(
    sb,
    ["demo", "data", "-c", "tiny", "-b", "clustr"],
    /Profile 'clustr' not found/,
  );
  assert.match(prof.stderr, /cluster/);
  assert.match(prof.stderr, /workstation/);
  assert.match(prof.stderr, /Did you mean 'cluster'\?/i);
  // malformed dotlist
  await assertBadInput(sb, ["demo", "train", "-c", "tiny", "=x"], /malformed key/);
  // --run and --batch together
  await assertBadInput(
    sb,
    ["demo", "data", "-c", "tiny", "--run", "a", "--batch", "b"],
    /--run and --batch cannot both be set/,
  );
  assert.deepEqual(tree(sb.cwd), ["env.toml"]);
});

Deno.test("a failing script: its exit code, the job dir and the last lines of its log; the pipe stops", async () => {
  const sb = await sandbox();
  const r = await sb.run(["demo", "pipe", "-c", "tiny", "corpus=/nonexistent"]);
  // the demo script reports a missing corpus with exit code 2
  assert.equal(r.code, 2, r.stderr);
  const dirs = jobDirs(sb.cwd);
  assert.equal(dirs.length, 1, "demo train did not run");
  const jobDir = path.join(sb.cwd, ".nemotron", "jobs", dirs[0]);
  assert.match(r.stderr, /error: demo\/data failed with exit code 2\n/);
  assert.ok(r.stderr.includes(`  job dir: ${jobDir}\n`), r.stderr);
  assert.ok(r.stderr.includes(`last lines of ${path.join(jobDir, "run.log")}:`), r.stderr);
  assert.match(r.stderr, /^ {4}error: corpus \/nonexistent not found$/m);
  assert.match(r.stderr, /'demo train' did not run/);
  assert.match(Deno.readTextFileSync(path.join(jobDir, "run.log")), /corpus \/nonexistent/);
  assert.deepEqual(tree(path.join(sb.nemotronHome, "artifacts")), []);

  // a different exit code is passed through as is (the python process exits 7)
  const probe = await probeDir();
  const sb2 = await sandbox({
    "env.toml":
      `[die]\nexecutor = "local"\nenv_vars = { PYTHONPATH = "${probe}", DIE_CODE = "7" }\n`,
  });
  const die = await sb2.run(["demo", "data", "-c", "tiny", "--run", "die"]);
  assert.equal(die.code, 7, die.stderr);
  assert.match(die.stderr, /error: demo\/data failed with exit code 7\n/);
});

Deno.test("demo train with a missing artifact or version: the versions that exist", async () => {
  const sb = await sandbox();
  const none = await sb.run(["demo", "train", "-c", "tiny"]);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /artifact 'demo-data-tiny' not found/);
  const data = await sb.run(["demo", "data", "-c", "tiny"]);
  assert.equal(data.code, 0, data.stderr);
  const r = await sb.run(["demo", "train", "-c", "tiny", "run.data=demo-data-tiny:v99"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /artifact 'demo-data-tiny' has no version v99; versions: v1\n/);
  assert.match(r.stderr, /error: demo\/train failed with exit code 2/);
  assert.equal(
    tree(path.join(sb.nemotronHome, "artifacts")).filter((p) => p.startsWith("demo-model")).length,
    0,
  );
  // and with the version that exists it trains
  const ok = await sb.run(["demo", "train", "-c", "tiny", "run.data=demo-data-tiny:v1"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(losses(ok.stdout).length, 8);
});
