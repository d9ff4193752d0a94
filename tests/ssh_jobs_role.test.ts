/**
 * `jobs logs --role` and job-dir IDs for jobs behind an ssh tunnel (issue 12), end to end: a real
 * OpenSSH server on a loopback port (2243–2250, this file's) as the login node of a PRIVATE
 * 2-node Slurm cluster (its own SLURM_LOCAL_DIR, slurmctld port 7957; the sshd hands its
 * SLURM_CONF to every session with `SetEnv`), and nemotron running as the laptop user with a PATH
 * that has no Slurm command (tests/ssh_world.ts). The remote job dirs are root's 0700 dirs: the
 * laptop user cannot read them, so whatever it prints came through the tunnel; the expected bytes
 * are read here, as root, from the real files on the cluster side.
 *
 * A Ray cluster job needs more than one node (one node runs `launch = "ray"` directly, without
 * role logs). Ray is not installable here: the job's PATH gets the STAND-IN `ray`
 * (tests/fixtures/ray/ray: a tiny TCP head that workers register with, NOT Ray), which is enough
 * for templates/ray.sub.j2 to write the per-role logs `jobs logs --role` reads. The job is
 * `nano3 data prep rl` with `nodes = 2`, whose driver command `uv run …` meets a STAND-IN `uv`
 * written by this test (not uv). Port 2244 is a plain TCP listener standing for a cluster whose
 * sshd closes every connection.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { type JobRecord, JobStore } from "../lib/jobs/store.ts";
import { readOrEmpty, runCli } from "./cli_helpers.ts";
import { LAPTOP, makeSshWorld, run, sshTest } from "./ssh_world.ts";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const STANDIN_DIR = path.join(HERE, "fixtures", "ray");
const START = path.resolve(HERE, "../../shared/slurm/start-local-slurm.sh");
const STOP = path.resolve(HERE, "../../shared/slurm/stop-local-slurm.sh");

/** The private 2-node cluster: slurmctld 7957, slurmd 7958, node slurmds 7959+ (inside 7957–7970). */
const CLUSTER_DIR = "/var/tmp/nemotron-ssh-role-2";
const CLUSTER_ENV: Record<string, string> = {
  SLURM_LOCAL_DIR: CLUSTER_DIR,
  SLURM_LOCAL_CTLD_PORT: "7957",
  SLURM_LOCAL_CONF_LINK: `${CLUSTER_DIR}/slurm.conf.link`,
  SLURM_CONF: `${CLUSTER_DIR}/etc/slurm.conf`,
  SLURM_LOCAL_NODES: "2",
  SLURM_LOCAL_FAKE_GPUS: "0",
};

async function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(cmd, {
    args,
    env: CLUSTER_ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

/** Slurm's state of a job on the private cluster (asked here, as root, not through nemotron). */
async function slurmState(id: string): Promise<string> {
  return (await sh("squeue", ["-h", "-t", "all", "-j", id, "-o", "%T"])).out.trim();
}

async function waitFor(what: string, ok: () => Promise<boolean> | boolean, ms = 120_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * A STAND-IN for `uv` (this test's; not uv) on the job's PATH: `nano3 data prep rl` runs
 * `uv run … python SCRIPT --config CONFIG` as the Ray driver. It prints a line, waits until the
 * file $PROBE_GO exists (so the test can follow a running driver), prints another and exits 0.
 */
const UV_STANDIN = `#!/bin/bash
echo "driver line 1 RAY_ADDRESS=\${RAY_ADDRESS:-unset}"
for _ in $(seq 1 1500); do [ -e "\${PROBE_GO}" ] && break; sleep 0.2; done
echo "driver line 2"
`;

sshTest(
  "ssh tunnel: jobs logs --role of a Ray cluster job (stand-in ray), job dir paths as IDs",
  async () => {
    const w = await makeSshWorld();
    await sh("bash", [STOP]); // left over from an interrupted run of this test
    const started = await sh("bash", [START, "--clean"]);
    try {
      assert.equal(started.code, 0, `private 2-node Slurm did not start:\n${started.out}`);
      const sshd = await w.startSshd(2243, {
        extraConfig: `SetEnv SLURM_CONF=${CLUSTER_ENV.SLURM_CONF}`,
      });
      w.sshConfig(
        `Host cluster\n  HostName 127.0.0.1\n  Port 2243\n  User root\n  IdentityFile ~/.ssh/id_ed25519\n`,
        sshd.knownHostsLine + "\n",
      );
      // the cluster side (root's, as the sshd account): the stand-ins' dir and the go file
      const bin = path.join(w.base, "cluster", "bin");
      Deno.mkdirSync(bin, { mode: 0o700 });
      Deno.writeTextFileSync(path.join(bin, "uv"), UV_STANDIN, { mode: 0o755 });
      const go = path.join(w.base, "cluster", "go");
      const jobPath =
        `${bin}:${STANDIN_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
      const standinDir = path.join(w.base, "cluster", "standin");
      w.envToml(`[cluster]
executor = "slurm"
tunnel = "ssh"
host = "cluster"
remote_job_dir = "${w.remoteJobDir}"
container_image = ""
time = "00:05:00"
nodes = 2
ray_port = 17957
ray_head_timeout = 60
ray_join_timeout = 60
env_vars = { PATH = "${jobPath}", NEMOTRON_RAY_STANDIN_DIR = "${standinDir}", PROBE_GO = "${go}" }

[one-node]
extends = "cluster"
nodes = 1
env_vars = { PATH = "${jobPath}", PROBE_GO = "${go}-never" }
`);

      // ---- a 2-node Ray cluster job, submitted from the laptop ----
      const sub = await w.nemotron(["nano3", "data", "prep", "rl", "--batch", "cluster", "--json"]);
      assert.equal(sub.code, 0, sub.stdout + sub.stderr);
      const job = JSON.parse(sub.stdout).jobs[0];
      const id: string = job.slurm_job_id;
      const jobDir: string = job.job_dir;
      assert.ok(jobDir.startsWith(`${w.remoteJobDir}/jobs/`), jobDir);
      const roleDir = path.join(jobDir, "logs", `ray_${id}_0`);
      const roleLog = (role: string) => readOrEmpty(path.join(roleDir, `ray-${role}.log`));
      // the laptop user cannot read the job dir itself: every byte below came through the tunnel
      const peek = await run("runuser", [
        "-u",
        LAPTOP,
        "--",
        "cat",
        path.join(roleDir, "ray-driver.log"),
      ]);
      assert.notEqual(peek.code, 0, "the laptop user can read the cluster's job dir");

      await waitFor("the driver's first line", () => roleLog("driver").includes("driver line 1"));
      // -f of a role follows it through the tunnel until the job ends
      const follow = w.spawnNemotron(["jobs", "logs", id, "--role", "driver", "-f"]);
      const chunks: Uint8Array[] = [];
      let seen = "";
      const reading = (async () => {
        for await (const c of follow.stdout) {
          chunks.push(c);
          seen += new TextDecoder().decode(c);
        }
      })();
      const followErr = new Response(follow.stderr).text();
      await waitFor("-f to print the first line", () => seen.includes("driver line 1"), 60_000);
      assert.ok(!seen.includes("driver line 2"), "the driver has not printed line 2 yet");
      assert.match(await slurmState(id), /^RUNNING$/, "the job runs while -f prints");
      Deno.writeTextFileSync(go, "");
      const st = await follow.status;
      await reading;
      assert.equal(st.code, 0, await followErr);
      assert.equal(await slurmState(id), "COMPLETED");
      const driver = roleLog("driver");
      assert.match(driver, /driver line 1 RAY_ADDRESS=\S+:17957\ndriver line 2\n/);
      // every byte exactly once: read incrementally, not the whole file again each poll
      assert.equal(seen, driver);

      // ---- each role's log, as on the cluster ----
      const roles = [...Deno.readDirSync(roleDir)].map((e) => e.name).sort();
      assert.deepEqual(roles, ["ray-driver.log", "ray-head.log", "ray-worker-1.log"]);
      for (const role of ["driver", "head", "worker-1"]) {
        const r = await w.nemotron(["jobs", "logs", id, "--role", role]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, roleLog(role), `--role ${role}`);
      }
      assert.notEqual(roleLog("head"), roleLog("worker-1"), "two different logs");

      // ---- the same checks and errors as on a login node (exit 2) ----
      const worker2 = await w.nemotron(["jobs", "logs", id, "--role", "worker-2"]);
      assert.equal(worker2.code, 2, worker2.stderr);
      assert.match(worker2.stderr, new RegExp(`job ${id} attempt 0 has no worker-2 log`));
      assert.match(worker2.stderr, /roles with logs: driver, head, worker-1/);
      const attempt1 = await w.nemotron(["jobs", "logs", id, "--role", "head", "--attempt", "1"]);
      assert.equal(attempt1.code, 2, attempt1.stderr);
      assert.match(attempt1.stderr, new RegExp(`job ${id} attempt 1 has no head log`));
      const bad = await w.nemotron(["jobs", "logs", id, "--role", "boss"]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /--role must be driver, head or worker-N, got 'boss'/);
      const both = await w.nemotron(["jobs", "logs", id, "--role", "head", "--sbatch"]);
      assert.equal(both.code, 2, both.stderr);
      assert.match(both.stderr, /give --role or --sbatch, not both/);

      // ---- the job dir on the cluster as the ID ----
      for (
        const dirId of [jobDir, `${jobDir}/`, `${path.dirname(jobDir)}//${path.basename(jobDir)}`]
      ) {
        const s = await w.nemotron(["jobs", "status", dirId, "--json"]);
        assert.equal(s.code, 0, `${dirId}: ${s.stderr}`);
        const rec = JSON.parse(s.stdout);
        assert.equal(rec.slurm_job_id, id);
        assert.equal(rec.job_dir, jobDir);
        assert.equal(rec.cluster, "ssh://cluster");
        assert.equal(rec.state, "COMPLETED");
      }
      const byDir = await w.nemotron(["jobs", "logs", jobDir, "--role", "head"]);
      assert.equal(byDir.code, 0, byDir.stderr);
      assert.equal(byDir.stdout, roleLog("head"));
      const taskLog = await w.nemotron(["jobs", "logs", jobDir]);
      assert.equal(taskLog.code, 0, taskLog.stderr);
      assert.equal(taskLog.stdout, driver, "the task log is the driver's");
      const unknown = await w.nemotron(["jobs", "status", `${w.remoteJobDir}/jobs/no-such-job`]);
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.match(
        unknown.stderr,
        new RegExp(
          `no job with job dir ${w.remoteJobDir}/jobs/no-such-job: it is not in the job store`,
        ),
      );
      assert.ok(!unknown.stderr.includes("    at "), "no stack trace");

      // ---- what list and status say about the Ray job ----
      const list = await w.nemotron(["jobs", "list", "--json"]);
      assert.equal(list.code, 0, list.stderr);
      const row = JSON.parse(list.stdout).find((r: JobRecord) => r.slurm_job_id === id);
      const sacctLike = (await sh("squeue", ["-h", "-t", "all", "-j", id, "-o", "%N|%T"])).out
        .trim();
      assert.equal(`${row.nodes}|${row.state}`, sacctLike, "nodes and state as Slurm has them");
      assert.equal(row.exit_code, 0);
      const status = await w.nemotron(["jobs", "status", id]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^ {2}state: {5}COMPLETED$/m);
      assert.match(status.stdout, /^ {2}exit code: 0$/m);
      assert.match(status.stdout, new RegExp(`^ {2}job dir: {3}${jobDir}$`, "m"));
      assert.match(status.stdout, /^ {2}ray: {7}attempt 0: up: all 2 nodes joined/m);
      assert.match(status.stdout, /driver exited with code 0/);

      // ---- a job that is not a Ray cluster job; cancelled by its job dir ----
      const sub2 = await w.nemotron([
        "nano3",
        "data",
        "prep",
        "rl",
        "--batch",
        "one-node",
        "--json",
      ]);
      assert.equal(sub2.code, 0, sub2.stdout + sub2.stderr);
      const sleeper = JSON.parse(sub2.stdout).jobs[0];
      await waitFor(
        "the sleeper to run",
        async () => await slurmState(sleeper.slurm_job_id) === "RUNNING",
      );
      const notRay = await w.nemotron(["jobs", "logs", sleeper.job_dir, "--role", "head"]);
      assert.equal(notRay.code, 2, notRay.stderr);
      assert.match(
        notRay.stderr,
        new RegExp(`job ${sleeper.slurm_job_id} is not a Ray cluster job`),
      );
      const cancel = await w.nemotron(["jobs", "cancel", `${sleeper.job_dir}/`]);
      assert.equal(cancel.code, 0, cancel.stdout + cancel.stderr);
      assert.match(cancel.stdout, new RegExp(`cancelled job ${sleeper.slurm_job_id} `));
      assert.equal(await slurmState(sleeper.slurm_job_id), "CANCELLED");
    } finally {
      await w.close();
      const stopped = await sh("bash", [STOP]);
      if (stopped.code !== 0) console.error(`stop-local-slurm.sh: ${stopped.out}`);
    }
  },
);

function record(over: Partial<JobRecord>): JobRecord {
  const now = new Date().toISOString();
  return {
    slurm_job_id: "41",
    cluster: "ssh://a",
    key: "probe-20261130-120000-aaaaaa",
    name: "mine/probe",
    slurm_name: "mine-probe",
    profile: "cluster",
    mode: "batch",
    job_dir: "/cluster/only/jobs/probe-20261130-120000-aaaaaa",
    pipeline: null,
    stage: null,
    stages: null,
    dependency: null,
    state: "COMPLETED",
    terminal: true,
    exit_code: 0,
    signal: null,
    attempts: 1,
    nodes: "node1",
    reason: null,
    elapsed: "0:05",
    secrets_file: null,
    submitted_at: now,
    started_at: now,
    ended_at: now,
    updated_at: now,
    note: null,
    ...over,
  };
}

Deno.test("job dir IDs of jobs on clusters behind tunnels: found in the store, ambiguous, unknown", async () => {
  const home = Deno.makeTempDirSync({ prefix: "nemotron-ssh-role-" });
  const env = { HOME: home, NEMOTRON_HOME: path.join(home, ".nemotron") };
  const store = await JobStore.open(path.join(env.NEMOTRON_HOME, "jobs.db"));
  // ended jobs: `jobs status` shows the row without connecting (the hosts do not exist)
  store.insert(record({}));
  const twin = "/cluster/twin/jobs/probe-20261130-120000-bbbbbb";
  store.insert(record({ key: "k-on-a", slurm_job_id: "42", job_dir: twin }));
  store.insert(record({ key: "k-on-b", slurm_job_id: "42", cluster: "ssh://b", job_dir: twin }));
  store.close();
  try {
    const dir = "/cluster/only/jobs/probe-20261130-120000-aaaaaa";
    for (const id of [dir, `${dir}/`, "/cluster//only/./jobs/x/../probe-20261130-120000-aaaaaa"]) {
      const r = await runCli(["jobs", "status", id, "--json"], { env });
      assert.equal(r.code, 0, `${id}: ${r.stderr}`);
      assert.equal(JSON.parse(r.stdout).key, "probe-20261130-120000-aaaaaa");
    }
    // two rows with the same job dir (two clusters): the keys to choose from, exit 2
    for (const cmd of ["status", "logs", "cancel"]) {
      const r = await runCli(["jobs", cmd, twin], { env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`job dir ${twin} belongs to 2 jobs in the job store`));
      assert.match(r.stderr, /k-on-a \(job 42 on ssh:\/\/a\)/);
      assert.match(r.stderr, /k-on-b \(job 42 on ssh:\/\/b\)/);
      assert.ok(!r.stderr.includes("    at "), "no stack trace");
    }
    // the same Slurm job id on two clusters: which one is asked, exit 2; the key picks one
    for (const cmd of ["status", "logs", "cancel"]) {
      const r = await runCli(["jobs", cmd, "42"], { env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /job 42 is on 2 clusters in the job store/);
      assert.match(
        r.stderr,
        /k-on-a \(on ssh:\/\/a\), k-on-b \(on ssh:\/\/b\)|k-on-b \(on ssh:\/\/b\), k-on-a \(on ssh:\/\/a\)/,
      );
    }
    const byKey = await runCli(["jobs", "status", "k-on-b", "--json"], { env });
    assert.equal(byKey.code, 0, byKey.stderr);
    assert.equal(JSON.parse(byKey.stdout).cluster, "ssh://b");
    for (const cmd of ["status", "logs", "cancel"]) {
      const r = await runCli(["jobs", cmd, "/cluster/only/jobs/nope"], { env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        /no job with job dir \/cluster\/only\/jobs\/nope: it is not in the job store/,
      );
    }
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});

Deno.test("jobs status of a job on a cluster that cannot be reached: one connection try, last known state", async () => {
  const home = Deno.makeTempDirSync({ prefix: "nemotron-ssh-role-" });
  const env = { HOME: home, NEMOTRON_HOME: path.join(home, ".nemotron") };
  // a "cluster" that accepts TCP connections and closes them at once, counting them
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 2244 });
  let accepted = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      conn.close();
    }
  })();
  const store = await JobStore.open(path.join(env.NEMOTRON_HOME, "jobs.db"));
  const dir = "/cluster/down/jobs/probe-20261130-120000-cccccc";
  store.insert(record({
    cluster: "ssh://127.0.0.1:2244",
    key: "probe-20261130-120000-cccccc",
    job_dir: dir,
    state: "RUNNING",
    terminal: false,
    exit_code: null,
    ended_at: null,
  }));
  store.close();
  try {
    const r = await runCli(["jobs", "status", dir], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}state: {5}RUNNING$/m, "the last known state");
    assert.match(r.stderr, /warning: .*127\.0\.0\.1:2244.*showing the last known states/);
    assert.match(r.stderr, /attempts, logs and Ray facts of the job dir not shown/);
    assert.equal(accepted, 1, "the refresh and the Ray facts share one failed connection try");
  } finally {
    listener.close();
    await serving.catch(() => {});
    Deno.removeSync(home, { recursive: true });
  }
});
