/**
 * Private state and safe writes (issue 15 §1, §3): `$NEMOTRON_HOME` is 0700 whatever the first
 * command was, so another user cannot read the job store, blob cache or artifacts; a local job dir
 * under a base another user controls is refused; the one atomic write (lib/atomic.ts) never
 * follows a planted symlink and honours the umask.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { writeFileAtomic } from "../lib/atomic.ts";
import { exists, mkdirAs, multiuserTest, OTHER, VICTIM, writeAs } from "./multiuser.ts";
import { tempDir } from "./cli_helpers.ts";

multiuserTest(
  "multiuser: NEMOTRON_HOME is created 0700 (and an old 0755 one tightened); others cannot read it",
  async (w) => {
    const proj = path.join(w.home(VICTIM), "proj");
    mkdirAs(w, VICTIM, proj);
    const nh = path.join(w.home(VICTIM), ".nemotron");
    // First command: a local recipe run (unpacks recipes, publishes an artifact into the home).
    const r = await w.runAs(VICTIM, ["demo", "data", "-c", "tiny"], { cwd: proj });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Deno.statSync(nh).mode! & 0o777, 0o700);
    assert.equal(exists(path.join(nh, "artifacts", "demo-data-tiny")), true);
    const peek = await w.shAs(OTHER, `ls ${nh}/artifacts || cat ${nh}/recipes/*/*.py`);
    assert.notEqual(peek.code, 0, "another user read NEMOTRON_HOME");
    // Local job dirs are private too.
    const jobs = [...Deno.readDirSync(path.join(proj, ".nemotron", "jobs"))];
    assert.equal(jobs.length, 1);
    assert.equal(
      Deno.statSync(path.join(proj, ".nemotron", "jobs", jobs[0].name)).mode! & 0o777,
      0o700,
    );

    // A home made 0755 by an older version: the next command that writes there makes it 0700.
    Deno.chmodSync(nh, 0o755);
    const list = await w.runAs(VICTIM, ["jobs", "list"], { cwd: proj });
    assert.equal(list.code, 0, list.stderr);
    assert.equal(Deno.statSync(nh).mode! & 0o777, 0o700);
    assert.equal(exists(path.join(nh, "jobs.db")), true);
    const db = await w.shAs(OTHER, `cat ${nh}/jobs.db > /dev/null`);
    assert.notEqual(db.code, 0, "another user read jobs.db");
  },
);

multiuserTest(
  "multiuser: local job dirs under a .nemotron another user planted in a shared cwd are refused",
  async (w) => {
    // The victim works in a 1777 dir where the attacker already made `.nemotron/jobs` (0777).
    const planted = await w.shAs(OTHER, "mkdir -p -m 777 .nemotron/jobs && chmod 777 .nemotron");
    assert.equal(planted.code, 0, planted.stderr);
    const r = await w.runAs(VICTIM, ["demo", "data", "-c", "tiny"], { cwd: w.scratch });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`${w.scratch}/\\.nemotron: it belongs to another user`));
    assert.deepEqual([...Deno.readDirSync(path.join(w.scratch, ".nemotron", "jobs"))], []);
  },
);

Deno.test("atomic write: replaces a planted symlink instead of writing through it", async () => {
  const dir = await tempDir("nemotron-atomic-");
  const victim = path.join(dir, "authorized_keys");
  Deno.writeTextFileSync(victim, "ssh-ed25519 AAAA victim\n");
  const out = path.join(dir, "job.json");
  Deno.symlinkSync(victim, out);
  writeFileAtomic(out, "{}\n");
  assert.equal(Deno.readTextFileSync(victim), "ssh-ed25519 AAAA victim\n");
  assert.equal(Deno.lstatSync(out).isFile, true);
  assert.equal(Deno.readTextFileSync(out), "{}\n");
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("atomic write: a symlink planted at the temp name is never followed (O_EXCL)", async () => {
  const dir = await tempDir("nemotron-atomic-");
  const victim = path.join(dir, "bashrc");
  Deno.writeTextFileSync(victim, "# victim\n");
  const out = path.join(dir, "sbatch.sh");
  // Make the "random" suffix predictable, as an attacker would wish, and plant a link there.
  const real = crypto.getRandomValues;
  crypto.getRandomValues = (<T extends ArrayBufferView | null>(a: T): T => {
    new Uint8Array((a as unknown as Uint8Array).buffer).fill(0xab);
    return a;
  }) as typeof crypto.getRandomValues;
  try {
    Deno.symlinkSync(victim, path.join(dir, `.sbatch.sh.${"ab".repeat(16)}.tmp`));
    assert.throws(() => writeFileAtomic(out, "echo pwned\n"), Deno.errors.AlreadyExists);
  } finally {
    crypto.getRandomValues = real;
  }
  assert.equal(Deno.readTextFileSync(victim), "# victim\n");
  assert.equal(exists(out), false);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("atomic write: the mode honours the umask (0644 and 0755 become 0600 and 0700 under 077)", async () => {
  const dir = await tempDir("nemotron-atomic-");
  const old = Deno.umask(0o077);
  try {
    writeFileAtomic(path.join(dir, "a"), "x");
    writeFileAtomic(path.join(dir, "b"), "x", 0o755);
  } finally {
    Deno.umask(old);
  }
  assert.equal(Deno.statSync(path.join(dir, "a")).mode! & 0o777, 0o600);
  assert.equal(Deno.statSync(path.join(dir, "b")).mode! & 0o777, 0o700);
  writeFileAtomic(path.join(dir, "c"), "x", 0o600);
  assert.equal(Deno.statSync(path.join(dir, "c")).mode! & 0o777, 0o600);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["a", "b", "c"]);
  Deno.removeSync(dir, { recursive: true });
});

multiuserTest(
  "multiuser: a remote_job_dir reached through another user's symlink is unsafe, even to a dir of yours",
  async (w) => {
    const mine = path.join(w.home(VICTIM), "jobs-real");
    mkdirAs(w, VICTIM, mine, 0o700);
    // The attacker's symlink in the 1777 scratch dir points at the victim's own dir today (and
    // could point at the attacker's tomorrow).
    const link = path.join(w.scratch, "victim-rjd");
    const made = await w.shAs(OTHER, `ln -s ${mine} ${link}`);
    assert.equal(made.code, 0, made.stderr);
    const proj = path.join(w.home(VICTIM), "proj");
    mkdirAs(w, VICTIM, proj);
    for (const [name, rjd] of [["linked", link], ["direct", mine]]) {
      writeAs(w, VICTIM, path.join(proj, "env.toml"), `[${name}]\nremote_job_dir = "${rjd}"\n`);
      const doc = await w.runAs(VICTIM, ["doctor", name], { cwd: proj });
      const line = doc.stdout.split("\n").find((l) => l.includes("remote_job_dir")) ?? "";
      if (name === "linked") {
        assert.match(
          line,
          new RegExp(`^FAIL .*${link} is not safe: ${link}: it belongs to another user`),
        );
      } else {
        assert.match(line, new RegExp(`^ok .*${mine} is safe`), "control: the real dir is fine");
      }
    }
  },
);

multiuserTest(
  "multiuser: `artifacts publish` as the first command also makes NEMOTRON_HOME 0700",
  async (w) => {
    const data = path.join(w.home(VICTIM), "data.txt");
    writeAs(w, VICTIM, data, "hello\n");
    const r = await w.runAs(VICTIM, ["artifacts", "publish", "first", data]);
    assert.equal(r.code, 0, r.stderr);
    const nh = path.join(w.home(VICTIM), ".nemotron");
    assert.equal(Deno.statSync(nh).mode! & 0o777, 0o700);
    assert.equal(exists(path.join(nh, "artifacts", "first", "v1", "manifest.json")), true);
  },
);
