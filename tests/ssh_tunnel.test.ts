/**
 * The ssh tunnel (`tunnel = "ssh"` profiles, issue 12) end to end against real components: an
 * OpenSSH server on a loopback port as the cluster's login node in front of the local Slurm
 * cluster, and nemotron running as the laptop user `nemotron-laptop` with its own ~/.ssh and a
 * PATH with no Slurm command (tests/ssh_world.ts). Ports 2222–2260.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import {
  filesContaining,
  makeSshWorld,
  run,
  sshTest,
  type SshWorld,
  watchArgv,
} from "./ssh_world.ts";
import { writeUserRecipe } from "./run_fixture.ts";
import { exists, runCli } from "./cli_helpers.ts";
import { releaseRequeueHolds } from "./slurm_cluster.ts";

const SECRET = "tok-" + crypto.randomUUID().replaceAll("-", "");

async function sha16(s: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
}

/** A cluster profile through the tunnel; `extra` lines are appended. */
function profile(w: SshWorld, host: string, extra = ""): string {
  return `[cluster]
executor = "slurm"
tunnel = "ssh"
host = "${host}"
remote_job_dir = "${w.remoteJobDir}"
container_image = ""
time = "00:05:00"
env_vars = { MY_API_TOKEN = "${SECRET}" }
startup_commands = ['echo "token-sha=$(printf %s "$MY_API_TOKEN" | sha256sum | cut -c1-16)"']
${extra}
`;
}

function directConfig(port: number): string {
  return `Host cluster\n  HostName 127.0.0.1\n  Port ${port}\n  User root\n  IdentityFile ~/.ssh/id_ed25519\n`;
}

async function squeueHas(id: string): Promise<boolean> {
  const r = await run("squeue", ["-h", "-j", id, "-o", "%i"]);
  return r.stdout.trim() === id;
}

async function waitDone(w: SshWorld, id: string, ms = 120000): Promise<string> {
  const end = Date.now() + ms;
  let last = "";
  while (Date.now() < end) {
    const r = await w.nemotron(["jobs", "status", id, "--json"]);
    if (r.code === 0) {
      const s = JSON.parse(r.stdout);
      last = s.state;
      if (s.terminal) return s.state;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`job ${id} did not end: ${last}`);
}

sshTest(
  "ssh tunnel: demo pipe --batch, jobs status/logs/cancel, secret only in the job",
  async () => {
    const w = await makeSshWorld();
    try {
      const sshd = await w.startSshd(2231);
      w.sshConfig(directConfig(2231), sshd.knownHostsLine + "\n");
      w.envToml(profile(w, "cluster"));
      // The laptop has ssh but no Slurm: proof that every Slurm call goes through the tunnel.
      const which = await run("runuser", [
        "-u",
        "nemotron-laptop",
        "--",
        "/usr/bin/env",
        "-i",
        `PATH=${w.binDir}`,
        "sh",
        "-c",
        "command -v ssh && ! command -v sbatch && ! command -v squeue",
      ]);
      assert.equal(which.code, 0, which.stdout + which.stderr);

      const watch = watchArgv(SECRET);
      const sub = await w.nemotron(["demo", "pipe", "-c", "tiny", "--batch", "cluster", "--json"], {
        env: { HF_HOME: "/laptop-only/hf" },
      });
      const argvHits = await watch.stop();
      assert.equal(sub.code, 0, sub.stdout + sub.stderr);
      assert.ok(watch.seen() > 3, "the argv scan ran during the submit");
      assert.deepEqual(argvHits, [], "the secret was in a process argv");
      const report = JSON.parse(sub.stdout);
      assert.equal(report.jobs.length, 2);
      const [data, train] = report.jobs;
      for (const j of report.jobs) {
        assert.ok(j.job_dir.startsWith(w.remoteJobDir + "/jobs/"), j.job_dir);
        // The job dir exists on the cluster side, private.
        const st = Deno.statSync(j.job_dir);
        assert.equal(st.mode! & 0o077, 0, `${j.job_dir} is private`);
        assert.ok(Deno.statSync(path.join(j.job_dir, "code")).isDirectory);
        const manifest = JSON.parse(Deno.readTextFileSync(path.join(j.job_dir, "job.json")));
        assert.equal(manifest.slurm_job_id, j.slurm_job_id);
        // Paths in the job's environment are the cluster's, not this machine's.
        const script = Deno.readTextFileSync(path.join(j.job_dir, "sbatch.sh"));
        assert.match(script, new RegExp(`export HF_HOME=${w.remoteJobDir}/hf\n`));
        assert.match(
          script,
          new RegExp(`export NEMOTRON_ARTIFACTS_ROOT=${w.remoteJobDir}/artifacts\n`),
        );
        assert.ok(!script.includes("/laptop-only/") && !script.includes(`${w.home}/`));
      }
      // The job store records the tunnel as the job's cluster.
      const list = await w.nemotron(["jobs", "list", "--json"]);
      assert.equal(list.code, 0, list.stderr);
      const rows = JSON.parse(list.stdout);
      assert.equal(rows.length, 2);
      for (const r of rows) assert.match(r.cluster, /^ssh:\/\/cluster$/);
      assert.equal(
        rows.find((r: { slurm_job_id: string }) => r.slurm_job_id === train.slurm_job_id)
          .dependency,
        `afterok:${data.slurm_job_id}`,
      );

      // Both stages run to the end; logs come through the tunnel.
      assert.equal(await waitDone(w, train.slurm_job_id), "COMPLETED");
      assert.equal(await waitDone(w, data.slurm_job_id), "COMPLETED");
      // The artifacts went to the registry on the cluster (<remote_job_dir>/artifacts), none here.
      const published = [...Deno.readDirSync(path.join(w.remoteJobDir, "artifacts"))].map((e) =>
        e.name
      );
      assert.ok(published.some((n) => n.startsWith("demo-data")), published.join(" "));
      assert.ok(published.some((n) => n.startsWith("demo-model")), published.join(" "));
      assert.ok(!exists(path.join(w.home, ".nemotron", "artifacts")), "no registry on the laptop");
      // ... but `artifacts … --on cluster` reads the cluster's, through the tunnel: the same
      // names, versions and paths as the manifests on the cluster side's disk.
      const remoteList = await w.nemotron(["artifacts", "list", "--on", "cluster", "--json"]);
      assert.equal(remoteList.code, 0, remoteList.stderr);
      const onDisk = published.flatMap((name) =>
        [...Deno.readDirSync(path.join(w.remoteJobDir, "artifacts", name))]
          .filter((e) => /^v\d+$/.test(e.name))
          .map((e) =>
            JSON.parse(Deno.readTextFileSync(
              path.join(w.remoteJobDir, "artifacts", name, e.name, "manifest.json"),
            ))
          )
      );
      const listed = JSON.parse(remoteList.stdout).flatMap((
        e: { name: string; versions: { version: number; path: string }[] },
      ) => e.versions.map((v) => `${e.name}:v${v.version} ${v.path}`)).sort();
      assert.deepEqual(
        listed,
        onDisk.map((m: { name: string; version: number; path: string }) =>
          `${m.name}:v${m.version} ${m.path}`
        ).sort(),
      );
      const text = await w.nemotron(["artifacts", "list", "--on", "cluster"]);
      assert.match(text.stdout, new RegExp(`^registry: cluster:${w.remoteJobDir}/artifacts$`, "m"));
      const model = published.find((n) => n.startsWith("demo-model"))!;
      const lineage = await w.nemotron([
        "artifacts",
        "lineage",
        model,
        "--on",
        "cluster",
        "--json",
      ]);
      assert.equal(lineage.code, 0, lineage.stderr);
      assert.match(JSON.parse(lineage.stdout).inputs[0].name, /^demo-data/);
      const show = await w.nemotron(["artifacts", "show", `${model}:latest`, "--on", "cluster"]);
      assert.match(show.stdout, new RegExp(`path:\\s+${w.remoteJobDir}/artifacts/${model}/v1/`));
      assert.deepEqual(
        [...Deno.readDirSync(path.join(w.home, ".nemotron", "ssh"))].filter((e) =>
          e.name.startsWith("artifacts-")
        ),
        [],
        "the copy of the registry was removed",
      );
      const localList = await w.nemotron(["artifacts", "list", "--json"]);
      assert.deepEqual(JSON.parse(localList.stdout), [], "the laptop's registry is empty");
      // job.json on the cluster says how the jobs ended, as on a login node.
      for (const j of report.jobs) {
        const m = JSON.parse(Deno.readTextFileSync(path.join(j.job_dir, "job.json")));
        assert.equal(m.state, "COMPLETED", j.job_dir);
        assert.equal(m.exit_code, 0);
        assert.equal(m.slurm_job_id, j.slurm_job_id);
      }
      const logs = await w.nemotron(["jobs", "logs", train.slurm_job_id]);
      assert.equal(logs.code, 0, logs.stderr);
      assert.match(logs.stdout, new RegExp(`token-sha=${await sha16(SECRET)}`), logs.stdout);
      const follow = await w.nemotron(["jobs", "logs", train.slurm_job_id, "-f"]);
      assert.equal(follow.code, 0, follow.stderr);
      assert.equal(follow.stdout, logs.stdout, "logs -f of an ended job prints the same log once");
      const status = JSON.parse(
        (await w.nemotron(["jobs", "status", train.slurm_job_id, "--json"])).stdout,
      );
      assert.equal(status.attempts, 1);
      assert.equal(status.exit_code, 0);
      const sb = await w.nemotron(["jobs", "logs", data.slurm_job_id, "--sbatch"]);
      assert.match(sb.stdout, /\[nemotron\] attempt 0 exited with code 0/);

      // The secret is in no file (but env.toml itself), on either side, nor in any output.
      const local = filesContaining(w.home, SECRET, (p) => p === path.join(w.cwd, "env.toml"));
      assert.deepEqual(local, [], "secret in a local file");
      assert.deepEqual(filesContaining(w.remoteJobDir, SECRET), [], "secret in a remote file");
      for (const out of [sub, list, logs, sb]) {
        assert.ok(!(out.stdout + out.stderr).includes(SECRET), "secret in output");
      }

      // Cancel through the tunnel: a long job, then `jobs cancel`.
      w.envToml(profile(w, "cluster", 'setup_lines = "sleep 300"'));
      const long = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster", "--json"]);
      assert.equal(long.code, 0, long.stderr);
      const longId = JSON.parse(long.stdout).jobs[0].slurm_job_id;
      const longDir = JSON.parse(long.stdout).jobs[0].job_dir;
      assert.ok(await squeueHas(longId));
      const secretsDir = path.join(w.remoteJobDir, ".nemotron-secrets-0");
      assert.equal(
        [...Deno.readDirSync(secretsDir)].length,
        1,
        "the secrets file is on the cluster",
      );
      assert.equal(Deno.statSync(secretsDir).mode! & 0o777, 0o700);
      const st = await w.nemotron(["jobs", "status", longId]);
      assert.match(st.stdout, new RegExp(`job dir:\\s+${longDir}`));
      const cancel = await w.nemotron(["jobs", "cancel", longId]);
      assert.equal(cancel.code, 0, cancel.stdout + cancel.stderr);
      assert.match(cancel.stdout, /cancelled job \d+ .*CANCELLED/);
      const sq = await run("squeue", ["-h", "-j", longId, "-o", "%T"]);
      assert.ok(!/RUNNING|PENDING/.test(sq.stdout), sq.stdout);
      assert.equal([...Deno.readDirSync(secretsDir)].length, 0, "cancel removed the secrets file");
    } finally {
      await w.close();
    }
  },
);

sshTest(
  "ssh tunnel: --run streams the remote log to the end; unchanged files are not sent again",
  async () => {
    const w = await makeSshWorld();
    try {
      const sshd = await w.startSshd(2233);
      w.sshConfig(directConfig(2233), sshd.knownHostsLine + "\n");
      w.envToml(profile(w, "cluster"));
      const r = await w.nemotron(["demo", "pipe", "-c", "tiny", "--run", "cluster"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      // The train stage's log (streamed through the tunnel): the loss per step and the secret's hash.
      assert.match(r.stdout, /loss/i, r.stdout);
      assert.match(r.stdout, new RegExp(`token-sha=${await sha16(SECRET)}`));
      assert.match(r.stderr, /\[nemotron\] job \d+ COMPLETED/);
      assert.ok(!(r.stdout + r.stderr).includes(SECRET));
      // One handshake for the whole command: sshd accepted exactly one connection.
      const accepted = sshd.log().match(/Accepted publickey/g) ?? [];
      assert.equal(accepted.length, 1, sshd.log());
      // The second stage's job dir lends nothing it had to send: files that are the same in both
      // job dirs are hard links on the cluster (rsync --link-dest), not second copies.
      const jobs = [...Deno.readDirSync(path.join(w.remoteJobDir, "jobs"))].map((e) =>
        path.join(w.remoteJobDir, "jobs", e.name)
      );
      assert.equal(jobs.length, 2);
      let linked = 0;
      const walk = (d: string, rel = ""): string[] =>
        [...Deno.readDirSync(path.join(d, rel))].flatMap((e) =>
          e.isDirectory ? walk(d, path.join(rel, e.name)) : e.isFile ? [path.join(rel, e.name)] : []
        );
      for (const rel of walk(jobs[0], "code")) {
        const a = Deno.statSync(path.join(jobs[0], rel));
        let b: Deno.FileInfo;
        try {
          b = Deno.statSync(path.join(jobs[1], rel));
        } catch {
          continue;
        }
        const same = Deno.readFileSync(path.join(jobs[0], rel)).join() ===
          Deno.readFileSync(path.join(jobs[1], rel)).join();
        if (same) {
          assert.equal(a.ino, b.ino, `${rel} is the same in both job dirs but was copied twice`);
          linked++;
        }
      }
      assert.ok(linked > 0, "no file in common between the two job dirs");
      // Secrets files are gone after the jobs (the script removes them).
      assert.deepEqual(filesContaining(w.remoteJobDir, SECRET), []);

      // A master killed hard leaves a stale socket: the next command replaces it; two commands at
      // once start one master between them (no stray background connection).
      const ctl = path.join(w.home, ".nemotron", "ssh");
      const masters = () => {
        const out: number[] = [];
        for (const e of Deno.readDirSync("/proc")) {
          if (!/^\d+$/.test(e.name)) continue;
          try {
            const argv = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
            if (
              argv[0].endsWith("ssh") && argv.includes("-N") && argv.some((a) => a.includes(ctl))
            ) {
              out.push(Number(e.name));
            }
          } catch { /* gone */ }
        }
        return out;
      };
      const before = masters();
      assert.equal(before.length, 1, "one master after the command");
      for (const p of before) Deno.kill(p, "SIGKILL");
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(
        [...Deno.readDirSync(ctl)].some((e) => /^[0-9a-f]{40}$/.test(e.name)),
        "the stale socket is still there",
      );
      const [l1, l2] = await Promise.all([
        w.nemotron(["jobs", "list", "--all"]),
        w.nemotron(["jobs", "list", "--all"]),
      ]);
      assert.equal(l1.code, 0, l1.stderr);
      assert.equal(l2.code, 0, l2.stderr);
      assert.equal(masters().length, 1, "exactly one master for two commands");

      // The user's own script (`nemotron run`) through the tunnel: its sibling module travels in
      // the code package (or is inlined with --package self-contained); its exit code is ours.
      await writeUserRecipe(path.join(w.cwd, "proj"));
      const own = await w.nemotron(["run", "proj/train.py", "--run", "cluster", "train.steps=3"]);
      assert.equal(own.code, 0, own.stdout + own.stderr);
      assert.match(own.stdout, /^step 3 lr 0\.5$/m);
      assert.match(own.stdout, /^helper: steps=3 name=base$/m);
      const inlined = await w.nemotron([
        "run",
        "proj/train.py",
        "--run",
        "cluster",
        "--package",
        "self-contained",
        "exit_code=3",
      ]);
      assert.equal(inlined.code, 3, inlined.stdout + inlined.stderr);
      assert.match(inlined.stdout, /^helper: steps=2 name=base$/m);
    } finally {
      await w.close();
    }
  },
);

sshTest("ssh tunnel: a Host alias with ProxyJump through a second sshd (bastion)", async () => {
  const w = await makeSshWorld();
  try {
    const cluster = await w.startSshd(2234);
    const bastion = await w.startSshd(2235, { logLevel: "DEBUG1" });
    w.sshConfig(
      `Host login-via-bastion\n  HostName 127.0.0.1\n  Port 2234\n  User root\n  ProxyJump bastion\n` +
        `Host bastion\n  HostName 127.0.0.1\n  Port 2235\n  User root\n` +
        `Host *\n  IdentityFile ~/.ssh/id_ed25519\n`,
      cluster.knownHostsLine + "\n" + bastion.knownHostsLine + "\n",
    );
    w.envToml(profile(w, "login-via-bastion"));
    const r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster", "--json"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const id = JSON.parse(r.stdout).jobs[0].slurm_job_id;
    assert.equal(await waitDone(w, id), "COMPLETED");
    // The connection went through the bastion: it forwarded a channel to the cluster's port.
    assert.match(bastion.log(), /direct-tcpip.*2234|to 127\.0\.0\.1 port 2234/, bastion.log());
    const doctor = await w.nemotron(["doctor", "cluster"]);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    assert.match(
      doctor.stdout,
      /ok\s+profile cluster: ssh login-via-bastion\s+connected in \d+ ms \(handshake\)/,
    );
    assert.match(doctor.stdout, /ok\s+profile cluster: remote sbatch\s+slurm(-wlm)? \d+/);
    assert.match(doctor.stdout, /ok\s+profile cluster: remote squeue\s+slurm(-wlm)? \d+/);
    assert.match(
      doctor.stdout,
      /ok\s+profile cluster: remote_job_dir\s+.* is safe .* and writable/,
    );
    // `doctor` without a profile does not check a tunnel profile's remote_job_dir on the laptop.
    const all = await w.nemotron(["doctor"]);
    assert.match(
      all.stdout,
      /profile cluster\s+tunnel = "ssh" \(login-via-bastion\): `nemotron doctor cluster`/,
    );
  } finally {
    await w.close();
  }
});

/** Nothing was half-done: no row in the laptop's store, no job dir and no job on the cluster. */
async function assertNothingSubmitted(w: SshWorld, jobsBefore: string): Promise<void> {
  const list = await w.nemotron(["jobs", "list", "--all", "--json"]);
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout), [], "a job was recorded");
  let dirs: string[] = [];
  try {
    dirs = [...Deno.readDirSync(path.join(w.remoteJobDir, "jobs"))].map((e) => e.name);
  } catch { /* no jobs/ at all */ }
  assert.deepEqual(dirs, [], "a job dir was left on the cluster");
  const sq = await run("squeue", ["-h", "-o", "%i"]);
  const now = new Set(sq.stdout.split("\n").filter((x) => x));
  const before = new Set(jobsBefore.split("\n").filter((x) => x));
  const added = [...now].filter((x) => !before.has(x));
  const ours: string[] = [];
  for (const id of added) {
    const s = await run("scontrol", ["show", "job", id]);
    if (s.stdout.includes(w.remoteJobDir)) ours.push(id);
  }
  assert.deepEqual(ours, [], "a job reached Slurm");
}

sshTest(
  "ssh tunnel: unknown host key, wrong key, unreachable host, bad profile: clear errors, nothing done",
  async () => {
    const w = await makeSshWorld();
    try {
      const sshd = await w.startSshd(2236);
      const before = (await run("squeue", ["-h", "-o", "%i"])).stdout;
      w.envToml(profile(w, "cluster"));

      // Unknown host key: never accepted, the error says how to check and add it.
      w.sshConfig(directConfig(2236), "");
      let r = await w.nemotron(["demo", "pipe", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 1, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /host key is unknown/);
      assert.match(r.stderr, /ssh-keyscan -p 2236 127\.0\.0\.1/);
      assert.match(r.stderr, /log in once with `ssh cluster`/);
      assert.match(r.stderr, /ssh-keygen -lf/);
      assert.equal(Deno.readTextFileSync(path.join(w.home, ".ssh", "known_hosts")), "");
      await assertNothingSubmitted(w, before);

      // A changed host key: refused, with how to replace it.
      w.sshConfig(
        directConfig(2236),
        `[127.0.0.1]:2236 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDxl0p+z2vQ6wYkpvRk6c3c1j7m5I2mM3lQm9a2X4V5y\n`,
      );
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 1, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /host key CHANGED/);
      assert.match(r.stderr, /ssh-keygen -R '\[127\.0\.0\.1\]:2236'/);
      await assertNothingSubmitted(w, before);

      // Wrong key: the login fails, the error names user / identity.
      w.sshConfig(directConfig(2236), sshd.knownHostsLine + "\n");
      const other = await w.startSshd(2237, {
        authorizedKeys:
          "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDxl0p+z2vQ6wYkpvRk6c3c1j7m5I2mM3lQm9a2X4V5y x",
      });
      w.sshConfig(directConfig(2237), other.knownHostsLine + "\n");
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 1, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /login failed: .*Permission denied/);
      assert.match(r.stderr, /identity/);
      await assertNothingSubmitted(w, before);

      // Unreachable: nothing listens on the port.
      w.sshConfig(directConfig(2238), "");
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 1, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /cannot reach the cluster: .*Connection refused/);
      const doc = await w.nemotron(["doctor", "cluster"]);
      assert.equal(doc.code, 1);
      assert.match(doc.stdout, /FAIL\s+profile cluster: ssh cluster\s+ssh cluster: cannot reach/);

      // Bad profiles: exit 2 before anything is tried, naming the key and its line.
      w.envToml(profile(w, "cluster").replace('host = "cluster"', 'host = ""'));
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 2, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /profile 'cluster': host: is required with tunnel = "ssh"/);
      w.envToml(profile(w, "cluster", "port = 70000"));
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 2, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /env\.toml:\d+.*port: must be a port number/s);
      w.envToml(profile(w, "cluster", 'tunnel = "paramiko"').replace('tunnel = "ssh"\n', ""));
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 2, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /tunnel: must be "ssh" or "local"/);
      await assertNothingSubmitted(w, before);
      w.envToml(profile(w, "cluster").replace('tunnel = "ssh"\n', ""));
      r = await w.nemotron(["artifacts", "list", "--on", "cluster"]);
      assert.equal(r.code, 2, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /--on cluster: profile 'cluster' does not say tunnel = "ssh"/);

      // A partition the cluster's Slurm does not have: Slurm there says so (sbatch --test-only
      // in the same round trip as the cluster checks), exit 2, nothing copied or queued.
      w.sshConfig(directConfig(2236), sshd.knownHostsLine + "\n");
      w.envToml(profile(w, "cluster", 'partition = "no-such-partition"'));
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 2, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /Slurm on cluster would refuse this job: .*invalid partition/i);
      await assertNothingSubmitted(w, before);
    } finally {
      await w.close();
    }
  },
);

sshTest(
  "ssh tunnel: sshd stopped mid-submit, remote disk full, unsafe remote_job_dir, images, no remote sbatch",
  async () => {
    const w = await makeSshWorld();
    try {
      const sshd = await w.startSshd(2239);
      w.sshConfig(directConfig(2239), sshd.knownHostsLine + "\n");
      w.envToml(profile(w, "cluster"));
      const before = (await run("squeue", ["-h", "-o", "%i"])).stdout;

      // sshd dies after the checks, when the copy starts: an rsync wrapper on the laptop's PATH
      // waits until the test has killed sshd (listener, master session and all).
      const mark = path.join(w.cwd, "copy-starts");
      const go = path.join(w.cwd, "go-on");
      Deno.removeSync(path.join(w.binDir, "rsync"));
      Deno.writeTextFileSync(
        path.join(w.binDir, "rsync"),
        `#!/bin/sh\ntouch ${mark}\nwhile [ ! -e ${go} ]; do sleep 0.05; done\nexec /usr/bin/rsync "$@"\n`,
        { mode: 0o755 },
      );
      const child = w.spawnNemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      const end = Date.now() + 60000;
      while (Date.now() < end) {
        try {
          Deno.statSync(mark);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await sshd.stop();
      Deno.writeTextFileSync(go, "");
      const out = await child.output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, stderr);
      assert.match(
        stderr,
        /copying the job dir to cluster:.* failed: .*cannot reach|Connection refused/,
      );
      assert.match(stderr, /nothing was submitted/);
      await assertNothingSubmitted(w, before);
      Deno.removeSync(path.join(w.binDir, "rsync"));
      Deno.symlinkSync("/usr/bin/rsync", path.join(w.binDir, "rsync"));

      // Remote disk full: remote_job_dir on a tiny tmpfs on the cluster side.
      const sshd2 = await w.startSshd(2240);
      w.sshConfig(directConfig(2240), sshd2.knownHostsLine + "\n");
      const m = await run("mount", [
        "-t",
        "tmpfs",
        "-o",
        "size=12k,mode=0700",
        "tmpfs",
        w.remoteJobDir,
      ]);
      assert.equal(m.code, 0, m.stderr);
      try {
        const r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
        assert.equal(r.code, 1, `${r.code} ${r.stdout} ${r.stderr}`);
        assert.match(r.stderr, /the cluster's disk is full/);
        assert.match(r.stderr, /nothing was submitted/);
        await assertNothingSubmitted(w, before);
      } finally {
        await run("umount", [w.remoteJobDir]);
      }

      // remote_job_dir that another user on the cluster could swap: exit 2 naming the directory;
      // `doctor` says the same.
      const shared = path.join(w.base, "cluster", "shared");
      Deno.mkdirSync(shared, { mode: 0o777 });
      Deno.chmodSync(shared, 0o777);
      w.envToml(profile(w, "cluster").replace(w.remoteJobDir, path.join(shared, "me")));
      let r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 2, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(
          `remote_job_dir cluster:${shared}/me is not safe: ${shared}: it is writable by everyone`,
        ),
      );
      const doc = await w.nemotron(["doctor", "cluster"]);
      assert.equal(doc.code, 1);
      assert.match(doc.stdout, /FAIL\s+profile cluster: remote_job_dir\s+.*is not safe/);
      assert.ok(!exists(path.join(shared, "me")), "nothing was created in the unsafe dir");

      // Images: a registry image is never uploaded: without a .sqsh on the cluster it is an error
      // saying how to squash there; a .sqsh path on the cluster is used as is.
      w.envToml(
        profile(w, "cluster").replace(
          'container_image = ""',
          'container_image = "nvcr.io/nvidia/pytorch:25.01-py3"',
        ),
      );
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 2, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /has no squashed \.sqsh on cluster/);
      assert.match(r.stderr, /nemotron squash nvcr\.io\/nvidia\/pytorch:25\.01-py3 -o /);
      w.envToml(
        profile(w, "cluster").replace(
          'container_image = ""',
          'container_image = "/lustre/img/pt.sqsh"',
        ),
      );
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster", "--dry-run"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /--container-image=\/lustre\/img\/pt\.sqsh/);
      await assertNothingSubmitted(w, before);

      // No Slurm on the cluster account's PATH: a clear error before anything is copied.
      const sshd3 = await w.startSshd(2241, {
        extraConfig:
          `ForceCommand export PATH=${w.binDir}; exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"`,
      });
      w.sshConfig(directConfig(2241), sshd3.knownHostsLine + "\n");
      w.envToml(profile(w, "cluster"));
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster"]);
      assert.equal(r.code, 1, `${r.code} ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /sbatch not found on cluster/);
      await assertNothingSubmitted(w, before);
      // NeMo-Run's pre_command (e.g. `module load slurm`) runs before every remote command: with
      // one that puts Slurm on the PATH the same cluster works, and so do the later `jobs`
      // commands (they reach the cluster again from the job store's record of it).
      w.envToml(profile(w, "cluster", `pre_command = 'export PATH="/usr/bin:$PATH"'`));
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const preJob = JSON.parse(r.stdout).jobs[0];
      assert.equal(await waitDone(w, preJob.slurm_job_id), "COMPLETED");
      const preLogs = await w.nemotron(["jobs", "logs", preJob.slurm_job_id]);
      assert.match(preLogs.stdout, /token-sha=/);
      w.envToml(profile(w, "cluster"));
      // No rsync on the cluster: the copy falls back to tar over ssh and the job runs.
      const noRsync = path.join(w.base, "cluster-bin");
      Deno.mkdirSync(noRsync);
      for (const dir of ["/usr/bin", "/bin"]) {
        for (const e of Deno.readDirSync(dir)) {
          if (e.name === "rsync") continue;
          try {
            Deno.symlinkSync(path.join(dir, e.name), path.join(noRsync, e.name));
          } catch { /* same name in both */ }
        }
      }
      const sshd4 = await w.startSshd(2242, {
        extraConfig: `ForceCommand export PATH=${noRsync}; exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"`,
      });
      w.sshConfig(directConfig(2242), sshd4.knownHostsLine + "\n");
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const tarJob = JSON.parse(r.stdout).jobs[0];
      assert.ok(Deno.statSync(path.join(tarJob.job_dir, "code")).isDirectory);
      assert.equal(await waitDone(w, tarJob.slurm_job_id), "COMPLETED");
    } finally {
      await w.close();
    }
  },
);

sshTest(
  "ssh tunnel: --stage (job_dir_group, secrets) and the printed ssh command; git auto_mount on the cluster; jobs status of a failed job",
  async () => {
    const w = await makeSshWorld();
    const group = `nmjdg${Deno.pid}`;
    try {
      const sshd = await w.startSshd(2232);
      w.sshConfig(directConfig(2232), sshd.knownHostsLine + "\n");
      const g = await run("groupadd", [group]);
      assert.equal(g.code, 0, g.stderr);
      const gid = Number((await run("getent", ["group", group])).stdout.split(":")[2]);
      const before = (await run("squeue", ["-h", "-o", "%i"])).stdout;

      // A group the cluster does not know: exit 2 before anything is copied.
      w.envToml(profile(w, "cluster", 'job_dir_group = "no-such-group-nm"'));
      let r = await w.nemotron(["demo", "data", "-c", "tiny", "--stage", "-b", "cluster"]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /job_dir_group: no group 'no-such-group-nm' on cluster/);
      await assertNothingSubmitted(w, before);

      // --stage: the job dir on the cluster is complete and STAGED, given to the group (0750);
      // the secrets file is there (0600, in the private secrets dir); nothing is queued.
      w.envToml(profile(w, "cluster", `job_dir_group = "${group}"`));
      const watch = watchArgv(SECRET);
      r = await w.nemotron(["demo", "data", "-c", "tiny", "--stage", "-b", "cluster"]);
      assert.deepEqual(await watch.stop(), [], "the secret was in a process argv");
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const jobDir = new RegExp(
        `staged demo/data \\(not submitted\\): cluster:(${w.remoteJobDir}/jobs/\\S+)`,
      )
        .exec(r.stdout)?.[1];
      assert.ok(jobDir, r.stdout);
      const st = Deno.statSync(jobDir);
      assert.equal(st.gid, gid, "the job dir belongs to job_dir_group");
      assert.equal(st.mode! & 0o777, 0o750);
      assert.equal(Deno.statSync(path.join(jobDir, "logs")).gid, gid);
      assert.equal(Deno.statSync(path.join(jobDir, "logs")).mode! & 0o070, 0o050);
      const manifest = JSON.parse(Deno.readTextFileSync(path.join(jobDir, "job.json")));
      assert.equal(manifest.state, "STAGED");
      assert.ok(Deno.statSync(path.join(jobDir, "sbatch.sh")).isFile);
      const secretsDir = path.join(w.remoteJobDir, ".nemotron-secrets-0");
      const secrets = [...Deno.readDirSync(secretsDir)].map((e) => path.join(secretsDir, e.name));
      assert.equal(secrets.length, 1);
      assert.equal(Deno.statSync(secrets[0]).mode! & 0o777, 0o600);
      assert.match(
        Deno.readTextFileSync(secrets[0]),
        new RegExp(`^export MY_API_TOKEN='?${SECRET}'?$`, "m"),
      );
      assert.deepEqual(filesContaining(w.remoteJobDir, SECRET), secrets, "secret elsewhere");
      assert.deepEqual(
        filesContaining(w.home, SECRET, (p) => p === path.join(w.cwd, "env.toml")),
        [],
        "secret in a local file",
      );
      assert.equal((await run("squeue", ["-h", "-o", "%i"])).stdout, before, "a job was queued");
      const list = await w.nemotron(["jobs", "list", "--all", "--json"]);
      assert.deepEqual(JSON.parse(list.stdout), [], "a staged job is not in the store");
      assert.ok(
        !exists(path.join(w.home, ".nemotron", "ssh", "stage")) ||
          [...Deno.readDirSync(path.join(w.home, ".nemotron", "ssh", "stage"))].length === 0,
      );

      // The printed command, typed by the laptop user, submits the staged job; it runs with the
      // secret (its hash in the log) and removes the secrets file.
      const submit = /submit it:\s+(ssh .*)$/m.exec(r.stdout)?.[1];
      assert.ok(submit && submit.startsWith("ssh cluster sbatch --parsable "), r.stdout);
      const typed = await run("runuser", [
        "-u",
        "nemotron-laptop",
        "--",
        "/usr/bin/env",
        "-i",
        `HOME=${w.home}`,
        `PATH=${w.binDir}`,
        "sh",
        "-c",
        submit,
      ]);
      assert.equal(typed.code, 0, typed.stderr);
      const id = typed.stdout.trim();
      assert.match(id, /^\d+$/);
      const end = Date.now() + 120000;
      let log = "";
      while (Date.now() < end) {
        const sq = await run("squeue", ["-h", "-j", id, "-o", "%T"]);
        if (sq.stdout.trim() === "") break;
        await new Promise((res) => setTimeout(res, 500));
      }
      for (const e of Deno.readDirSync(path.join(jobDir, "logs"))) {
        if (e.name.endsWith(".out")) {
          log += Deno.readTextFileSync(path.join(jobDir, "logs", e.name));
        }
      }
      assert.match(log, new RegExp(`token-sha=${await sha16(SECRET)}`), log);
      assert.deepEqual([...Deno.readDirSync(secretsDir)], [], "the job removed the secrets file");

      // git auto_mount: cloned by git on the cluster into <remote_job_dir>/git-cache at the ref,
      // mounted into the container; a new commit on the branch is fetched by the next stage.
      const src = path.join(w.base, "cluster", "src");
      const git = (...a: string[]) =>
        run("git", ["-C", src, "-c", "user.name=t", "-c", "user.email=t@t", ...a]);
      Deno.mkdirSync(src);
      assert.equal((await run("git", ["init", "-q", "-b", "main", src])).code, 0);
      Deno.writeTextFileSync(path.join(src, "hello.txt"), "one\n");
      await git("add", "hello.txt");
      assert.equal((await git("commit", "-q", "-m", "one")).code, 0);
      const uid = Number((await run("id", ["-u", "nemotron-laptop"])).stdout.trim());
      const writeLaptop = (name: string, text: string) => {
        Deno.writeTextFileSync(path.join(w.cwd, name), text);
        Deno.chownSync(path.join(w.cwd, name), uid, null);
      };
      writeLaptop("base.yaml", "max_documents: 2\nartifact:\n  name: demo-data-tiny\n");
      writeLaptop(
        "mount.yaml",
        `defaults: base\nrun:\n  env:\n    mounts:\n      - "\${auto_mount:git+${src}@main,/opt/src}"\n`,
      );
      w.envToml(
        profile(w, "cluster").replace(
          'container_image = ""',
          'container_image = "/lustre/img/pt.sqsh"',
        ),
      );
      const dry = await w.nemotron(["demo", "data", "-c", "mount.yaml", "-b", "cluster", "-d"]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(
        dry.stderr + dry.stdout,
        /would sync .*src@main into .*\/git-cache\/src on cluster/,
      );
      assert.ok(!exists(path.join(w.remoteJobDir, "git-cache")), "a dry run cloned");
      for (const commit of ["one", "two"]) {
        if (commit === "two") {
          Deno.writeTextFileSync(path.join(src, "hello.txt"), "two\n");
          assert.equal((await git("commit", "-q", "-am", "two")).code, 0);
        }
        const s = await w.nemotron([
          "demo",
          "data",
          "-c",
          "mount.yaml",
          "--stage",
          "-b",
          "cluster",
        ]);
        assert.equal(s.code, 0, s.stdout + s.stderr);
        const dir = /\(not submitted\): cluster:(\S+)/.exec(s.stdout)![1];
        const cache = path.join(w.remoteJobDir, "git-cache", "src");
        assert.equal(Deno.readTextFileSync(path.join(cache, "hello.txt")), `${commit}\n`);
        const head = await run("git", ["-C", cache, "rev-parse", "HEAD"]);
        const want = await git("rev-parse", "main");
        assert.equal(head.stdout, want.stdout);
        const script = Deno.readTextFileSync(path.join(dir, "sbatch.sh"));
        assert.match(script, new RegExp(`--container-mounts=${cache}:/opt/src,`));
      }
      assert.equal((await run("squeue", ["-h", "-o", "%i"])).stdout, before, "a job was queued");

      // A job that fails (twice: retries = 1): `jobs status` on the laptop shows what the login
      // node shows for the same job dir — the attempts, the end of the log, the failed node.
      w.envToml(
        profile(w, "cluster", "retries = 1").replace(
          /^startup_commands = .*$/m,
          `startup_commands = ['echo "boom on $(hostname)"; exit 7']`,
        ),
      );
      const sub = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster", "--json"]);
      assert.equal(sub.code, 0, sub.stderr);
      const failedJob = JSON.parse(sub.stdout).jobs[0];
      // The local cluster holds a requeued job (its credential cache): release it (tests/slurm_cluster.ts).
      const stop = new AbortController();
      const holds = releaseRequeueHolds(failedJob.slurm_job_id, stop.signal);
      try {
        assert.equal(await waitDone(w, failedJob.slurm_job_id), "FAILED");
      } finally {
        stop.abort();
        await holds;
      }
      const viaTunnel = await w.nemotron(["jobs", "status", failedJob.slurm_job_id, "--json"]);
      assert.equal(viaTunnel.code, 0, viaTunnel.stderr);
      const remote = JSON.parse(viaTunnel.stdout);
      const onLoginNode = await runCli(["jobs", "status", failedJob.job_dir, "--json"]);
      assert.equal(onLoginNode.code, 0, onLoginNode.stderr);
      const local = JSON.parse(onLoginNode.stdout);
      assert.equal(remote.attempt_history.length, 2, viaTunnel.stdout);
      for (
        const k of ["attempt_history", "last_log_tail", "failed_on", "restarts", "max_restarts"]
      ) {
        assert.deepEqual(remote[k], local[k], k);
      }
      assert.match(remote.last_log_tail.join("\n"), /boom on /);
      const text = await w.nemotron(["jobs", "status", failedJob.slurm_job_id]);
      assert.match(text.stdout, /^ {4}attempt 0 .* failed with exit code 7$/m, text.stdout);
      assert.match(text.stdout, /^ {4}attempt 1 .* failed with exit code 7$/m, text.stdout);
    } finally {
      await w.close();
      await run("groupdel", [group]);
    }
  },
);
