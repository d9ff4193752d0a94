/**
 * Secrets and code packages where the user meets them, through the CLI, without a Slurm cluster
 * (dry runs and refusals stop before sbatch; local runs need only python3):
 * - a Slurm dry run lists what the deny list leaves out of the code package (text and --json);
 * - the size guard stops with the largest files, exit 2, nothing written; --force-package and
 *   max_package_mb override it;
 * - `wandb.api_key=…` given as an override is redacted in job.yaml and the dry run, but reaches the
 *   train config (owner-only) that the script reads;
 * - `DB_PASS` in env_vars and `--password=…` never appear in the dry run's sbatch script or JSON.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { runCli, tempDir, writeTree } from "./cli_helpers.ts";

const DENO_DIR = Deno.env.get("DENO_DIR") ||
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

async function git(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: { GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" },
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** A checkout with secret files and an env.toml whose profile `cluster` has `extra` lines. */
async function checkout(extra = "") {
  const root = await tempDir("nemotron-secrets-cli-");
  const repo = path.join(root, "repo");
  const home = path.join(root, "home");
  const rjd = path.join(root, "rjd");
  await writeTree(repo, {
    "train.py": "print(1)\n",
    ".env": "DB_PASS=dotenv-secret-1\n",
    "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    ".nemotron/jobs/old/job.yaml": "x: 1\n",
    "env.toml": `[cluster]
executor = "slurm"
remote_job_dir = "${rjd}"
env_vars = { DB_PASS = "envtoml-dbpass-2", MY_API_KEY = "envtoml-key-3" }
${extra}
`,
  });
  await git(repo, "init", "-q");
  Deno.mkdirSync(home, { recursive: true });
  const env = {
    HOME: home,
    NEMOTRON_HOME: path.join(home, ".nemotron"),
    NEMOTRON_ENV_FILE: path.join(repo, "env.toml"),
    DENO_DIR,
  };
  return { root, repo, home, rjd, env };
}

Deno.test("cli: a Slurm dry run lists what the code package leaves out (text and --json)", async () => {
  const s = await checkout();
  const j = await runCli(["demo", "data", "-c", "tiny", "-b", "cluster", "-d", "--json"], {
    cwd: s.repo,
    env: s.env,
  });
  assert.equal(j.code, 0, j.stderr);
  const out = JSON.parse(j.stdout);
  assert.equal(out.code_package.root, Deno.realPathSync(s.repo));
  assert.deepEqual(out.code_package.excluded.map((x: { path: string }) => x.path).sort(), [
    ".env",
    ".nemotron/",
    "env.toml",
    "id_rsa",
  ]);
  const t = await runCli(["demo", "data", "-c", "tiny", "-b", "cluster", "-d"], {
    cwd: s.repo,
    env: s.env,
  });
  assert.equal(t.code, 0, t.stderr);
  assert.match(
    t.stdout,
    /── code package ─+\n\d+ files, [\d.]+ MB from .*\nleft out \(never shipped\):\n/,
  );
  assert.match(t.stdout, /^ {2}\.env {2}\(dotenv file\)$/m);
  assert.match(t.stdout, /^ {2}env\.toml {2}\(the env\.toml nemotron read\)$/m);
  assert.throws(() => Deno.statSync(s.rjd), Deno.errors.NotFound);
});

Deno.test("cli: the size guard stops an oversized package (exit 2, nothing written); --force-package and max_package_mb override", async () => {
  const s = await checkout("max_package_mb = 1");
  Deno.writeFileSync(path.join(s.repo, "dump.bin"), new Uint8Array(3 << 20));
  for (const extra of [["-d"], []]) {
    const r = await runCli(["demo", "data", "-c", "tiny", "-b", "cluster", ...extra], {
      cwd: s.repo,
      env: s.env,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /error: the code package would be 3\.\d MB, over the limit of 1 MB/);
    assert.match(r.stderr, /^ +3\.0 MB {2}dump\.bin$/m);
    assert.match(r.stderr, /hint: .*\.gitignore.*--force-package/);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/); // no stack trace
    assert.throws(() => Deno.statSync(s.rjd), Deno.errors.NotFound);
  }
  const forced = await runCli(
    ["demo", "data", "-c", "tiny", "-b", "cluster", "-d", "--force-package", "--json"],
    { cwd: s.repo, env: s.env },
  );
  assert.equal(forced.code, 0, forced.stderr);
  assert.ok(JSON.parse(forced.stdout).code_package.bytes > 3 << 20);
  const raised = await runCli(
    ["demo", "data", "-c", "tiny", "-b", "cluster", "-d", "++run.env.max_package_mb=10"],
    { cwd: s.repo, env: s.env },
  );
  assert.equal(raised.code, 0, raised.stderr);
});

Deno.test("cli: secrets in env_vars, overrides and --password=… stay out of the Slurm dry run", async () => {
  const s = await checkout();
  const r = await runCli([
    "demo",
    "data",
    "-c",
    "tiny",
    "-b",
    "cluster",
    "-d",
    "--json",
    "+wandb.api_key=override-key-4",
    "--",
    "--password=cli-pass-5",
    "--db-pass",
    "cli-dbpass-6",
  ], { cwd: s.repo, env: s.env });
  assert.equal(r.code, 0, r.stderr);
  for (
    const v of ["envtoml-dbpass-2", "envtoml-key-3", "override-key-4", "cli-pass-5", "cli-dbpass-6"]
  ) {
    assert.ok(!r.stdout.includes(v) && !r.stderr.includes(v), `dry run shows ${v}`);
  }
  const out = JSON.parse(r.stdout);
  assert.equal(out.job_config.wandb.api_key, "******");
  assert.equal(out.train_config.wandb.api_key, "******");
  assert.match(
    out.sbatch_script,
    /'--password=\$\{NEMOTRON_SECRET_ARG_1\}' --db-pass '\$\{NEMOTRON_SECRET_ARG_2\}'/,
  );
  assert.doesNotMatch(out.sbatch_script, /DB_PASS=/);
});

Deno.test("cli: a local run redacts wandb.api_key=… in job.yaml but the script's train config has it, owner-only", async () => {
  const s = await checkout();
  const r = await runCli(["demo", "data", "-c", "tiny", "+wandb.api_key=override-key-7"], {
    cwd: s.repo,
    env: { ...s.env, NEMOTRON_ENV_FILE: "" },
  });
  assert.equal(r.code, 0, r.stderr);
  const jobs = path.join(s.repo, ".nemotron", "jobs");
  // The new job dir (the checkout holds a planted `old` one).
  const [jobDir] = [...Deno.readDirSync(jobs)].filter((e) => e.name !== "old")
    .map((e) => path.join(jobs, e.name));
  const jobYaml = Deno.readTextFileSync(path.join(jobDir, "job.yaml"));
  assert.match(jobYaml, /api_key: '?\*\*\*\*\*\*'?/);
  assert.ok(!jobYaml.includes("override-key-7"));
  const train = path.join(jobDir, "train.json");
  assert.equal(JSON.parse(Deno.readTextFileSync(train)).wandb.api_key, "override-key-7");
  assert.equal(Deno.statSync(train).mode! & 0o777, 0o600);
  assert.ok(!Deno.readTextFileSync(path.join(jobDir, "run.log")).includes("override-key-7"));
});

Deno.test("cli: a local dry run of a run.cmd recipe hides --password=…", async () => {
  const s = await checkout();
  const r = await runCli(
    ["nano3", "data", "prep", "rl", "-c", "tiny", "-d", "--json", "--", "--password=cli-pass-8"],
    { cwd: s.repo, env: { ...s.env, NEMOTRON_ENV_FILE: "" } },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes("cli-pass-8"), r.stdout);
  assert.ok(JSON.parse(r.stdout).command.includes("--password=******"));
});
