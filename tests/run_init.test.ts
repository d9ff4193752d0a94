/**
 * `nemotron init [DIR]` through the CLI: the starter recipe runs at once; env.toml is written only
 * when discovery finds none, with the partition and account that `sinfo`/`sacctmgr` report, or
 * commented placeholders when they are missing; existing files are not overwritten without
 * `--force`. (The starter on the real Slurm cluster: tests/run_slurm.test.ts.)
 *
 * `sinfo` and `sacctmgr` stand-ins: small shell scripts on PATH, named as such, because the local
 * cluster has no accounting database (sacctmgr reports no account there).
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { listFiles } from "./run_fixture.ts";

const PYTHON = "/usr/bin/python3";

/** A cwd, a HOME, and a PATH holding only the given stand-in commands. */
async function site(standIns: Record<string, string>) {
  const cwd = await tempDir("nemotron-init-");
  const home = await tempDir("nemotron-init-home-");
  const bin = await tempDir("nemotron-init-bin-");
  for (const [name, body] of Object.entries(standIns)) {
    Deno.writeTextFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }
  const env = {
    HOME: home,
    NEMOTRON_HOME: path.join(home, ".nemotron"),
    NEMOTRON_ENV_FILE: "",
    PATH: bin,
    USER: "alice",
    NEMOTRON_PYTHON: PYTHON,
  };
  return {
    cwd,
    home,
    run: (args: string[], dir = cwd) => runCli(args, { cwd: dir, env }),
  };
}

Deno.test("init DIR: starter + env.toml from sinfo/sacctmgr (stand-ins); the starter runs at once", async () => {
  const s = await site({
    // stand-in sinfo: two partitions, the default marked with '*'
    sinfo: 'echo gpu; echo "batch*"',
    // stand-in sacctmgr: answers only for the association query of user alice
    sacctmgr: '[ "$*" = "-nP show assoc where user=alice format=account" ] && echo research',
  });
  const r = await s.run(["init", "proj"]);
  assert.equal(r.code, 0, r.stderr);
  const dir = path.join(s.cwd, "proj");
  assert.deepEqual(listFiles(dir), ["config/default.yaml", "env.toml", "train.py"]);
  const envToml = Deno.readTextFileSync(path.join(dir, "env.toml"));
  assert.match(envToml, /^partition = "batch" +# from sinfo/m);
  assert.match(envToml, /^account = "research" +# from sacctmgr/m);
  assert.match(envToml, /^# recipe_dirs = \["recipes"\]/m);

  // The profiles as nemotron reads them (from DIR, where discovery finds the new env.toml).
  const shown = await s.run(["env", "show", "slurm", "--json"], dir);
  assert.equal(shown.code, 0, shown.stderr);
  const slurm = JSON.parse(shown.stdout);
  assert.equal(slurm.executor, "slurm");
  assert.equal(slurm.partition, "batch");
  assert.equal(slurm.account, "research");
  assert.equal(slurm.remote_job_dir, path.join(s.home, ".nemotron", "slurm-jobs"));
  const local = await s.run(["env", "show", "local", "--json"], dir);
  assert.deepEqual(JSON.parse(local.stdout), { executor: "local" });

  // The runspec: what nemotron runspec check / show say.
  const spec = await s.run(["runspec", "show", "train.py", "--json"], dir);
  assert.equal(spec.code, 0, spec.stderr);
  const rs = JSON.parse(spec.stdout);
  assert.equal(rs.name, "proj/train");
  assert.equal(rs.run.launch, "direct");
  assert.equal(rs.config.format, "json");

  // Runs immediately, locally, with an override; and with the local profile.
  const run = await s.run(["run", "train.py", "train.steps=3"], dir);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.stdout.match(/^step \d\/3 loss [\d.]+$/gm)?.length, 3, run.stdout);
  const viaProfile = await s.run(["run", "train.py", "--run", "local"], dir);
  assert.equal(viaProfile.code, 0, viaProfile.stderr);
  assert.equal(viaProfile.stdout.match(/^step \d\/5 loss/gm)?.length, 5, viaProfile.stdout);
});

Deno.test("init without sinfo/sacctmgr: commented placeholders; the file still loads", async () => {
  const s = await site({});
  const r = await s.run(["init"]);
  assert.equal(r.code, 0, r.stderr);
  const envToml = Deno.readTextFileSync(path.join(s.cwd, "env.toml"));
  assert.match(envToml, /^# partition = "batch" +# sinfo did not answer here/m);
  assert.match(envToml, /^# account = "my-account" +# sacctmgr reported no account/m);
  const shown = await s.run(["env", "show", "slurm", "--json"]);
  assert.equal(shown.code, 0, shown.stderr);
  const slurm = JSON.parse(shown.stdout);
  assert.equal(slurm.partition, undefined);
  assert.equal(slurm.account, undefined);
  // The recipe name comes from the directory's name.
  const spec = await s.run(["runspec", "show", "train.py", "--json"]);
  assert.equal(JSON.parse(spec.stdout).name, `${path.basename(s.cwd)}/train`);
  assert.equal((await s.run(["run", "train.py"])).code, 0);
});

Deno.test("init: an env.toml found by discovery is kept; existing files need --force", async () => {
  const s = await site({});
  await writeTree(s.cwd, { "env.toml": '[mine]\nexecutor = "local"\n' });
  const r = await s.run(["init", "sub", "--name", "team/exp"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`env\\.toml: using ${path.join(s.cwd, "env.toml")}`));
  assert.deepEqual(listFiles(path.join(s.cwd, "sub")), ["config/default.yaml", "train.py"]);
  assert.match(
    Deno.readTextFileSync(path.join(s.cwd, "sub", "train.py")),
    /^# name = "team\/exp"$/m,
  );

  // The same files again: nothing to overwrite. An edited file: refused, nothing written.
  assert.equal((await s.run(["init", "sub", "--name", "team/exp"])).code, 0);
  Deno.writeTextFileSync(path.join(s.cwd, "sub", "train.py"), "# mine\n");
  Deno.removeSync(path.join(s.cwd, "sub", "config"), { recursive: true });
  const refused = await s.run(["init", "sub", "--name", "team/exp"]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /already exist with other content: .*sub\/train\.py/);
  assert.deepEqual(listFiles(path.join(s.cwd, "sub")), ["train.py"]);
  const forced = await s.run(["init", "sub", "--name", "team/exp", "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(Deno.readTextFileSync(path.join(s.cwd, "sub", "train.py")), /tool\.runspec/);

  const bad = await s.run(["init", "x", "--name", "bad name"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /recipe name 'bad name' is not a name nemotron can use/);
});
