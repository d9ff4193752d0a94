/**
 * Issue-10 items that need the real local Slurm cluster (tests/slurm_cluster.ts; the tests print
 * why and pass when it cannot start), through the CLI only, with bare-metal profiles:
 * `ntasks_per_node = 2` with a direct launch runs the script once (one artifact version); the
 * packaged train config of a json recipe is `config.json`; `--stage` writes a complete job dir,
 * submits nothing, and the printed `sbatch` and `salloc … bash` commands run it; the registry
 * directory (a container mount source) exists before submission; `jobs logs ID` into a closed
 * pipe exits 0.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { type CliResult, MAIN, runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { slurmTest, tempJobRoot, waitForJob } from "./slurm_cluster.ts";

const DENO_DIR = Deno.env.get("DENO_DIR") ||
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

interface Site {
  readonly cwd: string;
  readonly nemotronHome: string;
  readonly rjd: string;
  readonly env: Record<string, string>;
  run(...args: string[]): Promise<CliResult>;
}

async function site(): Promise<Site> {
  const cwd = await tempDir("nemotron-validate-slurm-");
  const home = await tempDir("nemotron-validate-slurm-home-");
  const rjd = path.join(tempJobRoot("nemotron-validate-rjd-"), "rjd");
  const base = `executor = "slurm"\nremote_job_dir = "${rjd}"\ntime = "00:10:00"\n`;
  await writeTree(cwd, {
    "env.toml": [
      `[cluster]\n${base}`,
      `[two]\n${base}ntasks_per_node = 2\n`,
      `[noisy]\n${base}startup_commands = ["seq 1 50000"]\n`,
      // a container profile: the job fails here (no pyxis), but it is submitted
      `[box]\n${base}container_image = "/var/tmp/no-such-image.sqsh"\n`,
    ].join("\n"),
  });
  const nemotronHome = path.join(home, ".nemotron");
  const env = { HOME: home, NEMOTRON_HOME: nemotronHome, NEMOTRON_ENV_FILE: "", DENO_DIR };
  return { cwd, nemotronHome, rjd, env, run: (...args) => runCli(args, { cwd, env }) };
}

function submitted(r: CliResult): { slurm_job_id: string; job_dir: string }[] {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).jobs;
}

slurmTest(
  "ntasks_per_node = 2 with launch direct: one task, the script runs once, one version",
  async () => {
    const s = await site();
    const r = await s.run("demo", "data", "-c", "tiny", "--run", "two");
    assert.equal(r.code, 0, r.stderr);
    const versions = [...Deno.readDirSync(path.join(s.nemotronHome, "artifacts", "demo-data-tiny"))]
      .map((e) => e.name).filter((n) => /^v\d+$/.test(n));
    assert.deepEqual(versions, ["v1"], "the script ran more than once");
    assert.match(r.stderr, /warning: ntasks_per_node = 2 ignored: launch = "direct" runs one task/);
    // the json recipe's packaged config is config.json (the name matches the format)
    const jobs = [...Deno.readDirSync(path.join(s.rjd, "jobs"))].map((e) => e.name);
    assert.equal(jobs.length, 1);
    const code = path.join(s.rjd, "jobs", jobs[0], "code");
    JSON.parse(Deno.readTextFileSync(path.join(code, "config.json")));
    assert.throws(() => Deno.statSync(path.join(code, "config.yaml")));
    assert.match(Deno.readTextFileSync(path.join(code, "main.py")), /CONFIG = "config\.json"/);
    const script = Deno.readTextFileSync(path.join(s.rjd, "jobs", jobs[0], "sbatch.sh"));
    assert.match(script, /^#SBATCH --ntasks-per-node=1$/m);
    assert.match(script, /--ntasks-per-node=1 --kill-on-bad-exit=1 \\\n {2}--wait=60 \\$/m);
  },
);

slurmTest(
  "--stage: a complete job dir, nothing submitted; the printed sbatch and salloc commands run it",
  async () => {
    const s = await site();
    const r = await s.run("demo", "data", "-c", "tiny", "--stage", "-b", "cluster");
    assert.equal(r.code, 0, r.stderr);
    const jobDir = /^staged demo\/data \(not submitted\): (\S+)$/m.exec(r.stdout)?.[1];
    assert.ok(jobDir, r.stdout);
    for (const f of ["sbatch.sh", "job.json", "code/main.py", "code/config.json"]) {
      Deno.statSync(path.join(jobDir, f));
    }
    assert.equal(JSON.parse(Deno.readTextFileSync(path.join(jobDir, "job.json"))).state, "STAGED");
    const list = await s.run("jobs", "list", "--json");
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout).jobs ?? JSON.parse(list.stdout), []);
    assert.throws(() => Deno.statSync(path.join(s.nemotronHome, "artifacts", "demo-data-tiny")));

    // The printed commands work as they are.
    const sbatchCmd = /^ {2}submit it: +(sbatch .*)$/m.exec(r.stdout)![1];
    const sub = await new Deno.Command("bash", { args: ["-c", sbatchCmd], stdout: "piped" })
      .output();
    assert.equal(sub.code, 0);
    const id = new TextDecoder().decode(sub.stdout).trim();
    assert.match(await waitForJob(id), /^COMPLETED/);
    const salloc = /^ {2}or interactively: +(salloc .*)$/m.exec(r.stdout)![1];
    assert.match(salloc, /^salloc --job-name=demo-data .*--nodes=1 .*bash \S+\/sbatch\.sh$/);
    const inter = await new Deno.Command("bash", {
      args: ["-c", salloc],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(inter.code, 0, new TextDecoder().decode(inter.stderr));
    const versions = [...Deno.readDirSync(path.join(s.nemotronHome, "artifacts", "demo-data-tiny"))]
      .map((e) => e.name).filter((n) => /^v\d+$/.test(n)).sort();
    assert.deepEqual(versions, ["v1", "v2"]); // one per start
  },
);

slurmTest(
  "the registry dir (a container mount source) exists before submission; a dry run creates nothing",
  async () => {
    const s = await site();
    const registry = path.join(s.nemotronHome, "artifacts");
    const dry = await s.run("demo", "data", "-c", "tiny", "-b", "box", "-d");
    assert.equal(dry.code, 0, dry.stderr);
    assert.ok(dry.stdout.includes(`${registry}:${registry}`), "the registry is not mounted");
    assert.throws(() => Deno.statSync(registry), "a dry run created the registry");
    const [job] = submitted(await s.run("demo", "data", "-c", "tiny", "-b", "box", "--json"));
    assert.ok(Deno.statSync(registry).isDirectory);
    await s.run("jobs", "cancel", job.slurm_job_id); // no pyxis here: the job cannot run anyway
  },
);

slurmTest("jobs logs ID into a closed pipe (| head -1): exit 0, no stack trace", async () => {
  const s = await site();
  const r = await s.run("demo", "data", "-c", "tiny", "--run", "noisy");
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const id = /job (\d+)/.exec(r.stderr)?.[1] ?? /(\d+)/.exec(r.stderr)![1];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "jobs", "logs", id],
    cwd: s.cwd,
    env: { ...s.env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.ok(!first.done);
  await reader.cancel();
  const status = await child.status;
  const stderr = await new Response(child.stderr).text();
  assert.equal(status.code, 0, stderr);
  assert.doesNotMatch(stderr, /BrokenPipe|Broken pipe|^ {4}at /m);
});
