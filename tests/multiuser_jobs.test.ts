/**
 * Multi-user attacks on job dirs (issue 15 §1 and §3), replayed by `nemotron-other` against
 * `nemotron-victim` on the shared local Slurm cluster (tests/multiuser.ts; jobs run as the
 * victim): a forged job.json handed to `jobs cancel|status|logs`, a `remote_job_dir` the attacker
 * owns or could swap, another user's secrets dir planted in a shared `remote_job_dir`. The
 * victim's files, jobs and store rows must stay as they were; controls show the same commands
 * work on the victim's own job.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import {
  exists,
  mkdirAs,
  multiuserTest,
  OTHER,
  scancel,
  slurmState,
  VICTIM,
  type World,
  writeAs,
} from "./multiuser.ts";

interface Submitted {
  readonly slurm_job_id: string;
  readonly job_dir: string;
}

/** The victim's project dir with env.toml profile `cluster` (bare metal, a secret, sleeps). */
function victimProject(w: World, remoteJobDir: string): string {
  const proj = path.join(w.home(VICTIM), "proj");
  mkdirAs(w, VICTIM, proj);
  writeAs(
    w,
    VICTIM,
    path.join(proj, "env.toml"),
    `[cluster]\nexecutor = "slurm"\ncontainer_image = ""\ntime = "00:10:00"\n` +
      `remote_job_dir = "${remoteJobDir}"\nstartup_commands = ["sleep 300"]\n` +
      `env_vars = { MY_API_KEY = "victim-secret-value" }\n`,
  );
  return proj;
}

async function submit(
  w: World,
  proj: string,
): Promise<{ code: number; stderr: string; job?: Submitted }> {
  const r = await w.runAs(VICTIM, ["demo", "data", "-c", "tiny", "--batch", "cluster", "--json"], {
    cwd: proj,
  });
  if (r.code !== 0) return { code: r.code, stderr: r.stderr };
  return { code: 0, stderr: r.stderr, job: JSON.parse(r.stdout).jobs[0] };
}

function filesUnder(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].flatMap((e) =>
      e.isDirectory ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]
    );
  } catch {
    return [];
  }
}

multiuserTest(
  "multiuser: a forged job.json makes jobs cancel/status/logs delete nothing, cancel nothing, rewrite no row",
  async (w) => {
    const rjd = path.join(w.home(VICTIM), "rjd");
    const proj = victimProject(w, rjd);
    const precious = path.join(w.home(VICTIM), "precious.txt");
    writeAs(w, VICTIM, precious, "the victim's data\n", 0o600);
    const sub = await submit(w, proj);
    assert.equal(sub.code, 0, sub.stderr);
    const job = sub.job!;
    try {
      const secretsDir = path.join(rjd, `.nemotron-secrets-${w.uid(VICTIM)}`);
      const secrets = filesUnder(secretsDir);
      assert.equal(secrets.length, 1, "the job has its private env file");
      assert.match(path.basename(secrets[0]), /^[0-9a-f]{32}\.env$/);
      assert.equal(Deno.statSync(secretsDir).mode! & 0o777, 0o700);
      assert.equal(Deno.statSync(job.job_dir).mode! & 0o777, 0o700, "job dir is private");

      // The attacker copies the victim's job.json (it names the real key and Slurm id) into a job
      // dir of their own and points secrets_file at a file of the victim.
      const real = JSON.parse(Deno.readTextFileSync(path.join(job.job_dir, "job.json")));
      const fake = path.join(w.scratch, "fake-job");
      mkdirAs(w, OTHER, fake, 0o777);
      writeAs(
        w,
        OTHER,
        path.join(fake, "job.json"),
        JSON.stringify({ ...real, job_dir: fake, secrets_file: precious, state: "RUNNING" }),
        0o666,
      );
      for (const cmd of [["cancel"], ["status", "--json"], ["logs"]]) {
        const r = await w.runAs(VICTIM, ["jobs", cmd[0], fake, ...cmd.slice(1)], { cwd: proj });
        assert.equal(r.code, 2, `jobs ${cmd[0]}: ${r.stdout}${r.stderr}`);
        assert.match(
          r.stderr,
          new RegExp(`refusing to act on job dir ${fake}: .*belongs to another user`),
        );
        assert.doesNotMatch(r.stderr, /^\s+at /m, "a stack trace");
      }
      // Even a job dir of the victim's own that is not in the store is never cancelled.
      const own = path.join(w.home(VICTIM), "copied-job");
      mkdirAs(w, VICTIM, own, 0o700);
      writeAs(
        w,
        VICTIM,
        path.join(own, "job.json"),
        JSON.stringify({ ...real, job_dir: own, secrets_file: precious }),
      );
      const c = await w.runAs(VICTIM, ["jobs", "cancel", own], { cwd: proj });
      assert.equal(c.code, 2, c.stderr);
      assert.match(c.stderr, /is not in your job store/);

      assert.equal(Deno.readTextFileSync(precious), "the victim's data\n", "precious file changed");
      assert.match(
        await slurmState(job.slurm_job_id),
        /^(PENDING|RUNNING)$/,
        "the job was cancelled",
      );
      const st = await w.runAs(VICTIM, ["jobs", "status", job.slurm_job_id, "--json"], {
        cwd: proj,
      });
      assert.equal(st.code, 0, st.stderr);
      assert.equal(JSON.parse(st.stdout).job_dir, job.job_dir, "the store row was rewritten");
      assert.deepEqual(filesUnder(secretsDir), secrets, "the secrets file went");

      // Control: the victim's own job by its id is cancelled and its private env file removed.
      const mine = await w.runAs(VICTIM, ["jobs", "cancel", job.slurm_job_id], { cwd: proj });
      assert.equal(mine.code, 0, mine.stderr);
      assert.match(mine.stdout, new RegExp(`cancelled job ${job.slurm_job_id} .*CANCELLED`));
      assert.doesNotMatch(await slurmState(job.slurm_job_id), /^(PENDING|RUNNING)$/);
      assert.deepEqual(filesUnder(secretsDir), [], "cancel left the private env file");
      assert.equal(Deno.readTextFileSync(precious), "the victim's data\n");
    } finally {
      await scancel(job.slurm_job_id);
    }
  },
  { slurm: true },
);

multiuserTest(
  "multiuser: a remote_job_dir another user owns or could swap is refused (exit 2, naming it); doctor says so",
  async (w) => {
    // 1. The attacker created the victim's remote_job_dir first (in the 1777 scratch dir).
    const taken = path.join(w.scratch, "victim-jobs");
    mkdirAs(w, OTHER, taken, 0o777);
    let proj = victimProject(w, taken);
    let r = await submit(w, proj);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`remote_job_dir ${taken} is not safe: ${taken}: it belongs to another user`),
    );
    assert.match(r.stderr, /hint: another user could replace your job dir there/);
    assert.deepEqual(filesUnder(taken), [], "something was written into the attacker's dir");
    const doc = await w.runAs(VICTIM, ["doctor", "cluster"], { cwd: proj });
    assert.equal(doc.code, 1, doc.stdout);
    assert.match(
      doc.stdout,
      new RegExp(`FAIL profile cluster: remote_job_dir +${taken} is not safe`),
    );

    // 2. The victim's own dir, but inside a directory everyone can write that is not sticky.
    const open = path.join(w.base, "open");
    mkdirAs(w, "root", open, 0o777);
    const inOpen = path.join(open, "mine");
    mkdirAs(w, VICTIM, inOpen, 0o755);
    Deno.removeSync(proj, { recursive: true });
    proj = victimProject(w, inOpen);
    r = await submit(w, proj);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`${open}: it is writable by everyone \\(mode 0777\\) and not sticky`),
    );
    assert.deepEqual(filesUnder(inOpen), []);

    // 3. A shared (root-owned, sticky) remote_job_dir where the attacker made `jobs/` or the
    //    victim's secrets dir first: refused, nothing half-made left, no stack trace.
    for (const planted of ["jobs", `.nemotron-secrets-${w.uid(VICTIM)}`]) {
      const shared = path.join(w.base, `shared-${planted.replace(/\W/g, "")}`);
      mkdirAs(w, "root", shared, 0o1777);
      mkdirAs(w, OTHER, path.join(shared, planted), 0o777);
      Deno.removeSync(proj, { recursive: true });
      proj = victimProject(w, shared);
      r = await submit(w, proj);
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`${path.join(shared, planted)}: it belongs to another user`),
      );
      assert.doesNotMatch(r.stderr, /^\s+at |PermissionDenied/m);
      assert.deepEqual(filesUnder(shared), [], "a half-created job dir was left");
    }

    // Control: the victim's own dir inside the sticky scratch dir is accepted; the job dir is
    // private, and the attacker can neither read nor move it.
    const good = path.join(w.scratch, "victim-own");
    mkdirAs(w, VICTIM, good, 0o755);
    Deno.removeSync(proj, { recursive: true });
    proj = victimProject(w, good);
    const okDoc = await w.runAs(VICTIM, ["doctor", "cluster"], { cwd: proj });
    assert.match(okDoc.stdout, new RegExp(`ok +profile cluster: remote_job_dir +${good} is safe`));
    const s = await submit(w, proj);
    assert.equal(s.code, 0, s.stderr);
    try {
      const jd = s.job!.job_dir;
      assert.equal(Deno.statSync(jd).mode! & 0o777, 0o700);
      const peek = await w.shAs(OTHER, `ls ${jd}/code || cat ${jd}/job.json`);
      assert.notEqual(peek.code, 0, "the attacker read the job dir");
      const swap = await w.shAs(OTHER, `mv ${jd} ${jd}.x || mv ${good}/jobs ${good}/jobs.x`);
      assert.notEqual(swap.code, 0, "the attacker moved the job dir");
      assert.equal(exists(jd), true);
    } finally {
      await scancel(s.job!.slurm_job_id);
    }
  },
  { slurm: true },
);

multiuserTest(
  "multiuser: users sharing a remote_job_dir each get their own secrets dir",
  async (w) => {
    // A root-made shared dir with a root-made sticky jobs/ (how an admin would set one up), and
    // the other user's secrets dir already there.
    const shared = path.join(w.base, "team");
    mkdirAs(w, "root", shared, 0o1777);
    mkdirAs(w, "root", path.join(shared, "jobs"), 0o1777);
    const theirs = path.join(shared, `.nemotron-secrets-${w.uid(OTHER)}`);
    mkdirAs(w, OTHER, theirs, 0o700);
    writeAs(w, OTHER, path.join(theirs, `${"a".repeat(32)}.env`), "export X=1\n", 0o600);
    const proj = victimProject(w, shared);
    const s = await submit(w, proj);
    assert.equal(s.code, 0, s.stderr);
    try {
      const mine = path.join(shared, `.nemotron-secrets-${w.uid(VICTIM)}`);
      assert.equal(Deno.statSync(mine).uid, w.uid(VICTIM));
      assert.equal(Deno.statSync(mine).mode! & 0o777, 0o700);
      assert.equal(filesUnder(mine).length, 1);
      assert.equal(Deno.statSync(s.job!.job_dir).mode! & 0o777, 0o700);
      assert.equal(filesUnder(theirs).length, 1, "the other user's secrets were touched");
    } finally {
      await scancel(s.job!.slurm_job_id);
    }
  },
  { slurm: true },
);

multiuserTest("multiuser: job_dir_group makes job dirs 0750 for that group", async (w) => {
  const rjd = path.join(w.home(VICTIM), "rjd");
  const proj = victimProject(w, rjd);
  const env = path.join(proj, "env.toml");
  Deno.writeTextFileSync(env, Deno.readTextFileSync(env) + `job_dir_group = "${VICTIM}"\n`);
  const s = await submit(w, proj);
  assert.equal(s.code, 0, s.stderr);
  try {
    const st = Deno.statSync(s.job!.job_dir);
    assert.equal(st.mode! & 0o777, 0o750);
    assert.equal(st.gid, w.uid(VICTIM)); // useradd made a group with the user's name and id
  } finally {
    await scancel(s.job!.slurm_job_id);
  }
  writeAs(
    w,
    VICTIM,
    env,
    Deno.readTextFileSync(env).replace(
      `job_dir_group = "${VICTIM}"`,
      `job_dir_group = "no-such-group-xyz"`,
    ),
  );
  const bad = await submit(w, proj);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /job_dir_group: no group 'no-such-group-xyz'/);
}, { slurm: true });
