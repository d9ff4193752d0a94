/**
 * The ssh tunnel's pieces that need no sshd: profile keys, the job store's cluster key, how ssh
 * failures are explained, the remote StrictModes-style check of remote_job_dir (its facts are
 * gathered by a shell snippet; here the snippet runs locally, and the verdicts are compared with
 * the login-node check on the same real directories), incremental remote log reading, and a dry
 * run that does not connect.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import {
  isTunnelCluster,
  parseTunnelClusterKey,
  sshFailure,
  tunnelClusterKey,
  tunnelSpecOf,
} from "../lib/exec/ssh.ts";
import { checkRemoteGroup, checkRemoteJobDirOverSsh, probeRemote } from "../lib/exec/ssh_submit.ts";
import { readPreflight } from "../lib/exec/slurm_preflight.ts";
import {
  finishRemoteJobs,
  remoteJobFiles,
  RemoteLogReader,
  remoteRayFiles,
} from "../lib/exec/ssh_jobs.ts";
import { rayAttempts, rayClusterSummary, rayRoles } from "../lib/exec/ray.ts";
import { readAttempts } from "../lib/exec/job_dir.ts";
import type { JobRecord } from "../lib/jobs/store.ts";
import { untrustedPathComponent } from "../lib/trusted_path.ts";
import { secretsDirName } from "../lib/exec/slurm.ts";
import { RuntimeFailure, UsageError } from "../lib/errors.ts";

/** Runs the "remote" scripts on this machine: `sh -c SCRIPT nemotron ARGS…`. */
const localTunnel = {
  spec: { host: "local-test" },
  async exec(script: string, stdin?: Uint8Array, args: readonly string[] = []) {
    const child = new Deno.Command("sh", {
      args: ["-c", script, "nemotron", ...args],
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (stdin) {
      const w = child.stdin.getWriter();
      await w.write(stdin);
      await w.close();
    }
    const o = await child.output();
    return { code: o.code, stdout: o.stdout, stderr: new TextDecoder().decode(o.stderr) };
  },
};

Deno.test("tunnelSpecOf: the keys of a tunnel profile, each bad value an exit-2 error naming it", () => {
  assert.equal(tunnelSpecOf({}), undefined);
  assert.equal(tunnelSpecOf({ tunnel: "local" }), undefined);
  assert.deepEqual(tunnelSpecOf({ tunnel: "ssh", host: "login.example.org" }), {
    host: "login.example.org",
    user: undefined,
    port: undefined,
    identity: undefined,
    preCommand: undefined,
  });
  const key = Deno.makeTempFileSync();
  const s = tunnelSpecOf({
    tunnel: "ssh",
    host: "h",
    user: "me",
    port: 2222,
    identity: key,
    pre_command: "module load slurm",
  });
  assert.deepEqual(s, {
    host: "h",
    user: "me",
    port: 2222,
    identity: key,
    preCommand: "module load slurm",
  });
  const bad = (p: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => tunnelSpecOf({ tunnel: "ssh", host: "h", ...p }, { profileName: "c" }),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
    );
  bad({ host: undefined }, /profile 'c': host: is required with tunnel = "ssh"/);
  bad({ host: "-oProxyCommand=x" }, /host: .* is not a host name/);
  bad({ host: "a b" }, /host: .* is not a host name/);
  bad({ user: "-l" }, /user: .* is not a user name/);
  bad({ port: 0 }, /port: must be a port number/);
  bad({ port: "22x" }, /port: must be a port number/);
  bad({ identity: "/nonexistent/key" }, /identity: key file \/nonexistent\/key not found/);
  bad({ tunnel: "paramiko" }, /tunnel: must be "ssh" or "local"/);
  bad({ pre_command: "module load\nslurm" }, /pre_command: must be one line/);
  Deno.removeSync(key);
});

Deno.test("tunnel cluster key: round trip, recognised, plain cluster names are not tunnels", () => {
  for (
    const spec of [
      { host: "cluster" },
      { host: "login.example.org", user: "a.b", port: 2222 },
      { host: "h", user: "u", identity: "/home/u/.ssh/id key" },
      { host: "h", identity: "/k&pre_command=x", preCommand: "module load slurm && A=1&B=2" },
      { host: "h", port: 22, preCommand: "source /etc/profile" },
    ]
  ) {
    const key = tunnelClusterKey(spec);
    assert.ok(isTunnelCluster(key));
    assert.deepEqual(
      parseTunnelClusterKey(key),
      { user: undefined, port: undefined, identity: undefined, preCommand: undefined, ...spec },
    );
  }
  assert.equal(tunnelClusterKey({ host: "h", user: "u", port: 2 }), "ssh://u@h:2");
  assert.equal(
    tunnelClusterKey({ host: "h", identity: "/k", preCommand: "module load slurm" }),
    "ssh://h?identity=%2Fk&pre_command=module%20load%20slurm",
  );
  assert.ok(!isTunnelCluster("localcluster"));
});

Deno.test("sshFailure: ssh's messages become errors that say what to do", () => {
  const spec = { host: "cluster" };
  const unknown = sshFailure(
    spec,
    "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n",
    { hostname: "127.0.0.1", port: 2222 },
  )!;
  assert.ok(unknown instanceof RuntimeFailure);
  assert.match(unknown.message, /host key is unknown/);
  assert.match(unknown.hint!, /ssh-keyscan -p 2222 127\.0\.0\.1/);
  const changed = sshFailure(
    spec,
    "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.",
  )!;
  assert.match(changed.message, /host key CHANGED/);
  assert.match(
    sshFailure(spec, "root@127.0.0.1: Permission denied (publickey).")!.message,
    /login failed/,
  );
  assert.match(
    sshFailure(spec, "ssh: connect to host 127.0.0.1 port 2238: Connection refused")!.message,
    /cannot reach the cluster/,
  );
  assert.match(
    sshFailure(spec, "ssh: Could not resolve hostname nohost: Name or service not known")!.message,
    /cannot reach the cluster/,
  );
  assert.equal(sshFailure(spec, ""), undefined);
});

Deno.test("remote remote_job_dir check (snippet + facts) agrees with the login-node check", async () => {
  if (Deno.uid() !== 0) {
    console.log("SKIP: needs root to make directories of other owners");
    return;
  }
  const base = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "nm-ssh-unit-" });
  try {
    Deno.chmodSync(base, 0o755);
    const mk = (rel: string, mode: number, uid = 0) => {
      const p = path.join(base, rel);
      Deno.mkdirSync(p, { recursive: true });
      Deno.chmodSync(p, mode);
      Deno.chownSync(p, uid, uid);
      return p;
    };
    const cases: Record<string, string> = {
      private: mk("private/rjd", 0o700),
      "missing below a private dir": path.join(mk("p2", 0o755), "a/b"),
      "world-writable": path.join(mk("open", 0o777), "me"),
      "sticky shared, own subdir": mk("sticky/mine", 0o700),
      "sticky shared, another user's subdir": mk("sticky2/theirs", 0o755, 4242),
      "another user's dir": mk("theirs/rjd", 0o700, 4242),
      "jobs/ of another user": path.dirname(mk("shared-rjd/jobs", 0o700, 4242)),
    };
    Deno.chmodSync(path.join(base, "sticky"), 0o1777);
    Deno.chmodSync(path.join(base, "sticky2"), 0o1777);
    Deno.symlinkSync(path.join(base, "open"), path.join(base, "link-to-open"));
    cases["symlink into a world-writable dir"] = path.join(base, "link-to-open", "x");
    Deno.symlinkSync(path.join(base, "private"), path.join(base, "link-to-private"));
    cases["symlink to a private dir"] = path.join(base, "link-to-private", "rjd");
    let problems = 0;
    for (const [name, rjd] of Object.entries(cases)) {
      const probe = await probeRemote(localTunnel, rjd);
      assert.equal(probe.uid, 0);
      assert.equal(probe.remoteJobDir, rjd);
      for (const sub of ["jobs", "git-cache", secretsDirName(0)]) {
        const target = path.join(rjd, sub);
        const local = untrustedPathComponent(target, 0);
        const remote = untrustedPathComponent(target, 0, probe.inspector);
        assert.deepEqual(remote, local, `${name}: ${target}`);
        if (local) problems++;
      }
      let refused = false;
      try {
        checkRemoteJobDirOverSsh(probe, "cluster");
      } catch (e) {
        assert.ok(e instanceof UsageError);
        assert.match(e.message, /^remote_job_dir cluster:.* is not safe: /);
        refused = true;
      }
      const expectRefused = !/^private|^missing|^sticky shared, own|^symlink to a private/.test(
        name,
      );
      assert.equal(refused, expectRefused, name);
    }
    assert.ok(problems >= 5, "the cases include unsafe ones");
    // `~` is the remote account's home.
    const probe = await probeRemote(localTunnel, "~/x");
    assert.equal(probe.remoteJobDir, path.join(Deno.env.get("HOME")!, "x"));
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("probeRemote: job_dir_group and sbatch --test-only answered in the same round trip", async () => {
  const base = Deno.makeTempDirSync();
  try {
    // A stand-in sbatch (first on PATH) that refuses the way Slurm does; the probe relays it.
    const bin = path.join(base, "bin");
    Deno.mkdirSync(bin);
    Deno.writeTextFileSync(
      path.join(bin, "sbatch"),
      `#!/bin/sh\nprintf '%s\\n' "$*" > ${base}/argv\necho "sbatch: error: invalid partition specified: nope" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const withPath = {
      ...localTunnel,
      exec: (script: string, stdin?: Uint8Array, args: readonly string[] = []) =>
        localTunnel.exec(`PATH=${bin}:$PATH\n${script}`, stdin, args),
    };
    const rjd = path.join(base, "rjd");
    const gid = Number(new TextDecoder().decode(
      new Deno.Command("id", { args: ["-g"], stdout: "piped" }).outputSync().stdout,
    ));
    const own = new TextDecoder().decode(
      new Deno.Command("id", { args: ["-gn"], stdout: "piped" }).outputSync().stdout,
    ).trim();
    const probe = await probeRemote(withPath, rjd, "", {
      group: own,
      testOnly: ["--test-only", "--partition=nope", "--wrap=true"],
    });
    assert.deepEqual(probe.group, { gid, member: true });
    assert.equal(
      Deno.readTextFileSync(path.join(base, "argv")),
      "--test-only --partition=nope --wrap=true\n",
    );
    assert.deepEqual(readPreflight(probe.preflight!), {
      ok: false,
      message: "invalid partition specified: nope",
    });
    checkRemoteGroup(own, probe, "local-test");
    // A group that does not exist there; one you are not in (unless the account is root).
    const none = await probeRemote(localTunnel, rjd, "", { group: "no-such-group-nm" });
    assert.deepEqual(none.group, { gid: null, member: false });
    assert.equal(none.preflight, undefined, "no --test-only asked for");
    assert.throws(
      () => checkRemoteGroup("no-such-group-nm", none, "local-test"),
      (e) => e instanceof UsageError && /no group 'no-such-group-nm' on local-test/.test(e.message),
    );
    const notIn = { ...probe, uid: 4242, group: { gid: 4242, member: false } };
    assert.throws(
      () => checkRemoteGroup("g", notIn, "local-test"),
      (e) => e instanceof UsageError && /not in group 'g' \(gid 4242\)/.test(e.message),
    );
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("RemoteLogReader: only the bytes added since the last read; a truncated log starts over", async () => {
  const jobDir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(path.join(jobDir, "logs"));
    const prefix = "log-x_12_";
    const reader = new RemoteLogReader(localTunnel, jobDir, prefix);
    const file = `${prefix}0.out`;
    let r = await reader.read(file);
    assert.equal(r.bytes.length, 0);
    assert.deepEqual(r.attempts, []);
    const f = path.join(jobDir, "logs", file);
    Deno.writeTextFileSync(f, "line 1\n");
    r = await reader.read(file);
    assert.equal(new TextDecoder().decode(r.bytes), "line 1\n");
    assert.deepEqual(r.attempts, [0]);
    Deno.writeTextFileSync(f, "line 2\n\u0000bin\n", { append: true });
    Deno.writeTextFileSync(path.join(jobDir, "logs", `${prefix}1.out`), "");
    r = await reader.read(file);
    assert.equal(new TextDecoder().decode(r.bytes), "line 2\n\u0000bin\n");
    assert.deepEqual(r.attempts, [0, 1]);
    assert.equal((await reader.read(file)).bytes.length, 0);
    Deno.writeTextFileSync(f, "new\n"); // truncated (shorter than what was read)
    assert.equal((await reader.read(file)).bytes.length, 0);
    assert.equal(new TextDecoder().decode((await reader.read(file)).bytes), "new\n");
  } finally {
    Deno.removeSync(jobDir, { recursive: true });
  }
});

Deno.test("a dry run with a tunnel profile connects nowhere and shows where the job would go", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(
      path.join(dir, "env.toml"),
      `[cluster]\nexecutor = "slurm"\ntunnel = "ssh"\nhost = "127.0.0.1"\nport = 2259\nremote_job_dir = "/lustre/me/jobs"\ncontainer_image = "/lustre/img/pt.sqsh"\n`,
    );
    const main = new URL("../main.ts", import.meta.url).pathname;
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "demo", "data", "-c", "tiny", "--batch", "cluster", "--dry-run"],
      cwd: dir,
      env: { NEMOTRON_HOME: path.join(dir, "home"), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(o.stdout);
    assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    assert.match(out, /tunnel: ssh 127\.0\.0\.1:2259/);
    assert.match(out, /--container-image=\/lustre\/img\/pt\.sqsh/);
    assert.match(out, /job dir: \/lustre\/me\/jobs\/jobs\//);
    assert.throws(() => Deno.statSync(path.join(dir, "home", "ssh")), "no control dir: no ssh");
    assert.doesNotMatch(out, /paths below show this machine's home/);
    // remote_job_dir under ~: the dry run says the paths show this machine's home.
    Deno.writeTextFileSync(
      path.join(dir, "env.toml"),
      `[cluster]\nexecutor = "slurm"\ntunnel = "ssh"\nhost = "127.0.0.1"\nport = 2259\nremote_job_dir = "~/jobs"\ncontainer_image = ""\n`,
    );
    const home = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "demo", "data", "-c", "tiny", "--batch", "cluster", "--dry-run"],
      cwd: dir,
      env: { NEMOTRON_HOME: path.join(dir, "home"), NO_COLOR: "1", HOME: dir },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(home.code, 0, new TextDecoder().decode(home.stderr));
    assert.match(
      new TextDecoder().decode(home.stdout),
      /remote_job_dir ~\/jobs: paths below show this machine's home and uid; on 127\.0\.0\.1:2259 they are yours there/,
    );
    assert.throws(() => Deno.statSync(path.join(dir, "home", "ssh")), "no control dir: no ssh");
    Deno.writeTextFileSync(
      path.join(dir, "env.toml"),
      `[cluster]\nexecutor = "slurm"\ntunnel = "ssh"\nhost = "127.0.0.1"\nport = 2259\nremote_job_dir = "/lustre/me/jobs"\ncontainer_image = "/lustre/img/pt.sqsh"\n`,
    );
    // nano3 eval (its launcher runs here): a dry run says where the images are looked for on the
    // cluster, without connecting (tests/ssh_eval.test.ts covers the rest).
    const ev = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "nano3", "eval", "--batch", "cluster", "--dry-run"],
      cwd: dir,
      env: { NEMOTRON_HOME: path.join(dir, "home"), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(ev.code, 0, new TextDecoder().decode(ev.stderr));
    assert.match(
      new TextDecoder().decode(ev.stdout),
      /deployment\.image: vllm\/vllm-openai:v0\.11\.0 → \/lustre\/me\/jobs\/vllm_vllm_openai_v0_11_0\.sqsh on 127\.0\.0\.1:2259/,
    );
    assert.throws(() => Deno.statSync(path.join(dir, "home", "ssh")), "no control dir: no ssh");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("remoteJobFiles: attempts.tsv and job.json of several job dirs in one call, as read locally", async () => {
  const base = Deno.makeTempDirSync();
  try {
    const mk = (name: string, tsv: string | null, retries: number | null) => {
      const d = path.join(base, name);
      Deno.mkdirSync(d);
      if (tsv !== null) Deno.writeTextFileSync(path.join(d, "attempts.tsv"), tsv);
      if (retries !== null) {
        Deno.writeTextFileSync(
          path.join(d, "job.json"),
          JSON.stringify({ key: name, retries, attempts: [] }, null, 2),
        );
      }
      return { key: name, job_dir: d } as unknown as JobRecord;
    };
    const recs = [
      mk("a", "start\t0\t11\t1700000000\tn1\nend\t0\t3\t1700000010\n", 2),
      mk(
        "b",
        "start\t0\t12\t1700000000\tn1\nend\t0\t1\t1700000005\nstart\t1\t12\t1700000100\tn2\n",
        1,
      ),
      mk("c", null, null),
    ];
    const files = await remoteJobFiles(localTunnel, recs);
    for (const r of recs) {
      assert.deepEqual(files.get(r.key)?.attempts, readAttempts(r.job_dir), r.key);
    }
    assert.equal(files.get("a")?.manifest?.retries, 2);
    assert.equal(files.get("b")?.manifest?.retries, 1);
    assert.equal(files.get("c")?.manifest, undefined);
    assert.equal(files.get("b")?.attempts.length, 2);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("finishRemoteJobs: job.json on the cluster gets the final state; nothing else is touched", async () => {
  const base = Deno.makeTempDirSync();
  try {
    const mk = (name: string) => {
      const d = path.join(base, name);
      Deno.mkdirSync(d);
      const m = { key: name, state: "SUBMITTED", exit_code: null, attempts: [{ state: "x" }] };
      Deno.writeTextFileSync(path.join(d, "job.json"), JSON.stringify(m, null, 2) + "\n");
      return d;
    };
    const a = mk("a"), b = mk("b");
    Deno.removeSync(path.join(b, "job.json"));
    Deno.symlinkSync(path.join(a, "job.json"), path.join(b, "job.json"));
    const rec = (d: string, state: string, exit_code: number | null) =>
      ({ job_dir: d, state, exit_code, secrets_file: null }) as unknown as JobRecord;
    // b's job.json is a symlink (to a's): never written through.
    await finishRemoteJobs(localTunnel, [rec(b, "FAILED", 3)]);
    assert.equal(JSON.parse(Deno.readTextFileSync(path.join(a, "job.json"))).state, "SUBMITTED");
    await finishRemoteJobs(localTunnel, [rec(a, "COMPLETED", 0)]);
    const m = JSON.parse(Deno.readTextFileSync(path.join(a, "job.json")));
    assert.deepEqual(m, { key: "a", state: "COMPLETED", exit_code: 0, attempts: [{ state: "x" }] });
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("RemoteLogReader: a Ray job's task log (a symlink to the driver's log) is read whole", async () => {
  const jobDir = Deno.makeTempDirSync();
  try {
    // as templates/ray.sub.j2 lays it out: logs/log-<name>_<tag>.out -> ray_<tag>/ray-driver.log
    Deno.mkdirSync(path.join(jobDir, "logs", "ray_7_0"), { recursive: true });
    const driver = path.join(jobDir, "logs", "ray_7_0", "ray-driver.log");
    Deno.writeTextFileSync(driver, "a line longer than the link's own target name\n");
    Deno.symlinkSync("ray_7_0/ray-driver.log", path.join(jobDir, "logs", "log-x_7_0.out"));
    const reader = new RemoteLogReader(localTunnel, jobDir, "log-x_7_");
    const dec = new TextDecoder();
    let r = await reader.read("log-x_7_0.out");
    assert.equal(dec.decode(r.bytes), Deno.readTextFileSync(driver));
    assert.deepEqual(r.attempts, [0]);
    Deno.writeTextFileSync(driver, "more\n", { append: true });
    r = await reader.read("log-x_7_0.out");
    assert.equal(dec.decode(r.bytes), "more\n");
    // a role's log by its path under logs/ (jobs logs --role)
    r = await new RemoteLogReader(localTunnel, jobDir, "log-x_7_").read("ray_7_0/ray-driver.log");
    assert.equal(dec.decode(r.bytes), Deno.readTextFileSync(driver));
  } finally {
    Deno.removeSync(jobDir, { recursive: true });
  }
});

Deno.test("remoteRayFiles: one listing answers rayAttempts, rayRoles and rayClusterSummary as the local files do", async () => {
  const jobDir = Deno.makeTempDirSync();
  try {
    // two attempts of job 7 (a requeue), a stray dir of another job id, roles of each attempt
    const files: Record<string, string> = {
      "ray/7_0/events.tsv": "1\thead_up\tnode1\t\n2\tnot_joined\tnode3\t\n",
      "ray/7_1/events.tsv":
        "3\thead_up\tnode1\t\n4\tall_joined\tnode[1-3]\t3\n5\tdriver_exit\tnode1\t0\n",
      "ray/8_0/events.tsv": "",
      "logs/ray_7_0/ray-head.log": "h0\n",
      "logs/ray_7_1/ray-driver.log": "d1\n",
      "logs/ray_7_1/ray-head.log": "h1\n",
      "logs/ray_7_1/ray-worker-1.log": "w1\n",
      "logs/ray_7_1/ray-worker-2.log": "w2\n",
      "logs/ray_7_1/ray-worker-10.log": "w10\n",
      "logs/log-x_7_1.out": "",
      "code/ray/not-this.txt": "",
    };
    for (const [rel, text] of Object.entries(files)) {
      Deno.mkdirSync(path.dirname(path.join(jobDir, rel)), { recursive: true });
      Deno.writeTextFileSync(path.join(jobDir, rel), text);
    }
    const remote = await remoteRayFiles(localTunnel, jobDir);
    assert.deepEqual(rayAttempts(jobDir, "7", remote), rayAttempts(jobDir, "7"));
    assert.deepEqual(rayAttempts(jobDir, "7", remote), [0, 1]);
    for (const a of [0, 1, 2]) {
      assert.deepEqual(rayRoles(jobDir, "7", a, remote), rayRoles(jobDir, "7", a));
    }
    assert.deepEqual(rayRoles(jobDir, "7", 1, remote), [
      "driver",
      "head",
      "worker-1",
      "worker-2",
      "worker-10",
    ]);
    assert.equal(rayClusterSummary(jobDir, "7", remote), rayClusterSummary(jobDir, "7"));
    assert.match(rayClusterSummary(jobDir, "7", remote)!, /^attempt 1: up: all 3 nodes joined/);
    // a job dir that is not there (or has no Ray files): nothing, as locally
    const none = await remoteRayFiles(localTunnel, path.join(jobDir, "missing"));
    assert.deepEqual(rayAttempts(path.join(jobDir, "missing"), "7", none), []);
    assert.equal(rayClusterSummary(path.join(jobDir, "code"), "7", none), undefined);
  } finally {
    Deno.removeSync(jobDir, { recursive: true });
  }
});
