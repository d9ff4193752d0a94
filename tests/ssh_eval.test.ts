/**
 * `nemotron nano3 eval` with a `tunnel = "ssh"` profile (issue 12) against real components: an
 * OpenSSH server on a loopback port (2251–2259) as the cluster's login node in front of the local
 * Slurm cluster, nemotron running as the laptop user with a PATH without Slurm (tests/ssh_world.ts).
 *
 * Two stand-ins, because the real programs are not installable here:
 * - `nemo-evaluator-launcher` on the LAPTOP's PATH: records its argv, the eval.yaml it was given
 *   and short hashes of the secret env values it received (never the values);
 * - `enroot` on the CLUSTER side's PATH only (the sshd's ForceCommand sets it): records who ran it
 *   (uid, Slurm job id) and writes a tiny squashfs as the `.sqsh`.
 * The launcher's images must end up as `.sqsh` paths on the cluster; nothing is squashed on or
 * uploaded from the laptop.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { exists } from "./cli_helpers.ts";
import {
  filesContaining,
  makeSshWorld,
  run,
  type Sshd,
  sshTest,
  type SshWorld,
  watchArgv,
} from "./ssh_world.ts";

/** A laptop user of this file's own: other ssh test files may run their worlds meanwhile. */
const LAPTOP = "nemotron-laptop-eval";

const SECRET = "tok-" + crypto.randomUUID().replaceAll("-", "");
const WANDB_SECRET = "wk-" + crypto.randomUUID().replaceAll("-", "");
/** sqshName of the recipe's deployment image, written out by hand. */
const VLLM_SQSH = "vllm_vllm_openai_v0_11_0.sqsh";
/** sqshName of `haproxy:2.9` (docker://haproxy:2.9), by hand. */
const HAPROXY_SQSH = "haproxy_2_9.sqsh";

async function sha16(s: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
}

const LAUNCHER_STAND_IN = `#!/bin/sh
# Stand-in for nemo-evaluator-launcher (test only; the real one is not installable here): records
# its argv, the eval.yaml it got, and hashes of the secret env values it received.
set -eu
rec="$HOME/launcher-calls"
mkdir -p "$rec"
d="$rec/call-$(ls "$rec" | wc -l)"
mkdir "$d"
printf '%s\\n' "$@" > "$d/argv"
prev=
for a in "$@"; do [ "$prev" = --config ] && cp "$a" "$d/eval.yaml"; prev=$a; done
printf '%s' "\${MY_API_TOKEN-}" | sha256sum | cut -c1-16 > "$d/token-sha"
printf '%s' "\${WANDB_API_KEY-}" | sha256sum | cut -c1-16 > "$d/wandb-sha"
echo "stand-in launcher: submitted"
`;

function enrootStandIn(log: string): string {
  return `#!/bin/bash
# Stand-in for 'enroot import --output OUT SOURCE' (test only; enroot is not installable here):
# records uid, Slurm job id, output and source, and writes a tiny squashfs as OUT.
set -euo pipefail
[ "$1" = import ] && [ "$2" = --output ] || { echo "unexpected: $*" >&2; exit 2; }
out="$3"; src="$4"
[ -e "$out" ] && { echo "File already exists: $out" >&2; exit 1; }
printf '%s\\t%s\\t%s\\t%s\\n' "$(id -u)" "\${SLURM_JOB_ID:-none}" "$out" "$src" >> ${log}
d="$(mktemp -d)"; printf '%s\\n' "$src" > "$d/source"
mksquashfs "$d" "$out" -noappend -all-root -no-progress >/dev/null
rm -rf "$d"
echo "stand-in enroot imported $src"
`;
}

/** A tunnel profile for eval; `extra` lines are appended. */
function profile(w: SshWorld, extra = ""): string {
  return `[cluster]
executor = "slurm"
tunnel = "ssh"
host = "cluster"
user = "root"
remote_job_dir = "${w.remoteJobDir}"
build_time = "00:05:00"
env_vars = { MY_API_TOKEN = "${SECRET}" }
${extra}

[wandb]
project = "evalproj"
entity = "team"
`;
}

function directConfig(port: number): string {
  return `Host cluster\n  HostName 127.0.0.1\n  Port ${port}\n  IdentityFile ~/.ssh/id_ed25519\n`;
}

/** Overrides so the eval config resolves without an artifact registry or $PWD. */
const OVERRIDES = [
  "deployment.checkpoint_path=/lustre/ckpt/nano3",
  "execution.account=acct",
  "execution.partition=batch",
  "execution.output_dir=/lustre/eval-out",
];

/** The laptop's job dirs of nano3 eval (in the working directory's .nemotron/jobs). */
function jobDirs(w: SshWorld): string[] {
  const base = path.join(w.cwd, ".nemotron", "jobs");
  return exists(base) ? [...Deno.readDirSync(base)].map((e) => path.join(base, e.name)) : [];
}

/** The stand-in launcher's recorded calls, oldest first. */
function launcherCalls(w: SshWorld): string[] {
  const rec = path.join(w.home, "launcher-calls");
  if (!exists(rec)) return [];
  return [...Deno.readDirSync(rec)].map((e) => e.name).sort((a, b) =>
    Number(a.split("-")[1]) - Number(b.split("-")[1])
  ).map((n) => path.join(rec, n));
}

// deno-lint-ignore no-explicit-any
function evalYaml(call: string): any {
  return parseYaml(Deno.readTextFileSync(path.join(call, "eval.yaml")));
}

/** Put the stand-in launcher on the laptop's PATH (world dir, root-owned, readable by all). */
function installLauncher(w: SshWorld): void {
  Deno.writeTextFileSync(path.join(w.binDir, "nemo-evaluator-launcher"), LAUNCHER_STAND_IN, {
    mode: 0o755,
  });
}

sshTest(
  "ssh eval: a dry run connects nowhere and says where the images are looked for",
  async () => {
    const w = await makeSshWorld({ laptop: LAPTOP });
    try {
      installLauncher(w);
      // Nothing listens on 2251: a dry run that tried to connect would fail.
      w.sshConfig(directConfig(2251), "");
      w.envToml(profile(w, 'squash = "enroot"'));
      const r = await w.nemotron([
        "nano3",
        "eval",
        "--batch",
        "cluster",
        "--dry-run",
        "--json",
        ...OVERRIDES,
        "+execution.proxy.image=haproxy:2.9",
      ]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const report = JSON.parse(r.stdout);
      const notes: string[] = report.notes;
      assert.ok(notes.includes("tunnel: ssh root@cluster"), notes.join("\n"));
      assert.ok(
        notes.some((n) =>
          n.startsWith(
            `deployment.image: vllm/vllm-openai:v0.11.0 → ${w.remoteJobDir}/${VLLM_SQSH} on root@cluster`,
          )
        ),
        notes.join("\n"),
      );
      assert.ok(
        notes.some((n) =>
          n.startsWith(
            `execution.proxy.image: haproxy:2.9 → ${w.remoteJobDir}/${HAPROXY_SQSH} on root@cluster`,
          )
        ),
        notes.join("\n"),
      );
      // The launcher logs in to the cluster itself: it gets the profile's host and user.
      assert.equal(report.train_config.execution.hostname, "cluster");
      assert.equal(report.train_config.execution.username, "root");
      // Nothing written, no ssh master started, no launcher run.
      assert.deepEqual(jobDirs(w), []);
      assert.ok(!exists(path.join(w.home, ".nemotron", "ssh")), "no ssh control dir");
      assert.deepEqual(launcherCalls(w), []);
      assert.ok(!exists(path.join(w.remoteJobDir, VLLM_SQSH)));

      // The user's own execution.hostname / username win; without a profile user, the user
      // ssh logs in as for the host (here ~/.ssh/config's User) is filled in.
      w.sshConfig(directConfig(2251) + "  User clusteruser\n", "");
      w.envToml(profile(w).replace('user = "root"\n', ""));
      const own = await w.nemotron([
        "nano3",
        "eval",
        "--batch",
        "cluster",
        "-d",
        "--json",
        ...OVERRIDES,
        "+execution.hostname=login.example.org",
      ]);
      assert.equal(own.code, 0, own.stderr);
      const ex = JSON.parse(own.stdout).train_config.execution;
      assert.equal(ex.hostname, "login.example.org");
      assert.equal(ex.username, "clusteruser");
      // The recipe's default output_dir is a path of this machine: a warning says so.
      const pwd = await w.nemotron(["nano3", "eval", "--batch", "cluster", "-d"], {
        env: { PWD: w.cwd },
      });
      assert.equal(pwd.code, 0, pwd.stderr);
      assert.match(
        pwd.stderr,
        new RegExp(
          `warning: execution\\.output_dir ${w.cwd}/output/nano3/eval is in this machine's working directory`,
        ),
      );
      // The launcher's own ssh gets no port or key: a profile port that ~/.ssh/config does not give
      // for the host is a warning; an identity ~/.ssh/config names too is not.
      w.envToml(profile(w, 'port = 2260\nidentity = "~/.ssh/id_ed25519"'));
      const port = await w.nemotron(["nano3", "eval", "--batch", "cluster", "-d", ...OVERRIDES]);
      assert.equal(port.code, 0, port.stderr);
      assert.match(
        port.stderr,
        /warning: nemo-evaluator-launcher logs in with `ssh root@cluster`, which does not use the profile's port 2260: add `Port 2260` under `Host cluster`/,
      );
      assert.doesNotMatch(port.stderr, /profile's identity/);
      // A tunnel profile without remote_job_dir: exit 2 naming the key, before connecting.
      w.envToml(profile(w).replace(/remote_job_dir = .*\n/, ""));
      const noRjd = await w.nemotron(["nano3", "eval", "--batch", "cluster", ...OVERRIDES]);
      assert.equal(noRjd.code, 2, noRjd.stdout + noRjd.stderr);
      assert.match(noRjd.stderr, /remote_job_dir is required with tunnel = "ssh"/);
      assert.deepEqual(jobDirs(w), []);
    } finally {
      await w.close();
    }
  },
);

sshTest(
  "ssh eval: images are the cluster's .sqsh (reused, or enroot-imported there); secrets in no argv or file",
  async () => {
    const w = await makeSshWorld({ laptop: LAPTOP });
    try {
      installLauncher(w);
      // The cluster side: enroot (stand-in) on its PATH only, set by the sshd's ForceCommand.
      const clusterBin = path.join(w.base, "cluster-bin");
      Deno.mkdirSync(clusterBin);
      const enrootLog = path.join(w.base, "enroot-calls.log");
      Deno.writeTextFileSync(path.join(clusterBin, "enroot"), enrootStandIn(enrootLog), {
        mode: 0o755,
      });
      const sshd: Sshd = await w.startSshd(2252, {
        extraConfig: `ForceCommand export PATH=${clusterBin}:/usr/local/bin:/usr/bin:/bin; ` +
          `exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"`,
      });
      w.sshConfig(directConfig(2252), sshd.knownHostsLine + "\n");
      // The laptop's W&B key, as `wandb login` leaves it.
      const netrc = path.join(w.home, ".netrc");
      Deno.writeTextFileSync(
        netrc,
        `machine api.wandb.ai\n  login user\n  password ${WANDB_SECRET}\n`,
        {
          mode: 0o600,
        },
      );
      await run("chown", [LAPTOP, netrc]);
      const laptopEnroot = await run("runuser", [
        "-u",
        LAPTOP,
        "--",
        "/usr/bin/env",
        "-i",
        `PATH=${w.binDir}`,
        "sh",
        "-c",
        "! command -v enroot && ! command -v salloc && command -v nemo-evaluator-launcher",
      ]);
      assert.equal(
        laptopEnroot.code,
        0,
        "no enroot/salloc on the laptop, the launcher stand-in is",
      );

      const evalArgs = (...extra: string[]) => [
        "nano3",
        "eval",
        "--batch",
        "cluster",
        ...OVERRIDES,
        ...extra,
        "-t",
        "adlr_mmlu",
      ];
      const vllmSqsh = path.join(w.remoteJobDir, VLLM_SQSH);
      const haproxySqsh = path.join(w.remoteJobDir, HAPROXY_SQSH);

      // 1. No .sqsh on the cluster and squash not "enroot": exit 2 saying how to squash it there;
      //    nothing written, the launcher not run.
      w.envToml(profile(w));
      let r = await w.nemotron(evalArgs());
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `vllm/vllm-openai:v0\\.11\\.0 has no squashed \\.sqsh on root@cluster \\(looked for ${vllmSqsh}\\)`,
        ),
      );
      assert.match(r.stderr, /nemotron squash vllm\/vllm-openai:v0\.11\.0 -o /);
      assert.match(r.stderr, /set deployment\.image to a \.sqsh path on the cluster/);
      assert.deepEqual(jobDirs(w), []);
      assert.deepEqual(launcherCalls(w), []);
      // --force-squash without enroot: no way to squash there, exit 2.
      r = await w.nemotron(evalArgs("--force-squash"));
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        /--force-squash: nemotron squashes images on root@cluster only with enroot/,
      );
      assert.deepEqual(jobDirs(w), []);

      // 2. An existing .sqsh on the cluster is used; a .sqsh path is kept as is. Secrets reach
      //    the launcher through its environment only.
      Deno.writeTextFileSync(vllmSqsh, "squashfs stand-in\n");
      const watch = watchArgv([SECRET, WANDB_SECRET]);
      r = await w.nemotron(evalArgs("+execution.proxy.image=/lustre/img/haproxy.sqsh"));
      const argvHits = await watch.stop();
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.ok(watch.seen() > 3, "the argv scan ran during the eval");
      assert.deepEqual(argvHits, [], "a secret was in a process argv");
      assert.match(
        r.stderr,
        new RegExp(`✓ Using existing squashed image on root@cluster: ${vllmSqsh}`),
      );
      let calls = launcherCalls(w);
      assert.equal(calls.length, 1);
      const [jobDir] = jobDirs(w);
      assert.deepEqual(Deno.readTextFileSync(path.join(calls[0], "argv")).trim().split("\n"), [
        "run",
        "--config",
        path.join(jobDir, "eval.yaml"),
        "-t",
        "adlr_mmlu",
      ]);
      let ev = evalYaml(calls[0]);
      assert.equal(ev.deployment.image, vllmSqsh);
      assert.equal(ev.execution.proxy.image, "/lustre/img/haproxy.sqsh");
      assert.equal(ev.execution.hostname, "cluster");
      assert.equal(ev.execution.username, "root");
      // W&B: the launcher forwards variables by name; the values come from its environment.
      assert.equal(ev.evaluation.env_vars.WANDB_API_KEY, "WANDB_API_KEY");
      assert.equal(ev.execution.env_vars.export.WANDB_API_KEY, "WANDB_API_KEY");
      assert.equal(
        Deno.readTextFileSync(path.join(calls[0], "token-sha")).trim(),
        await sha16(SECRET),
      );
      assert.equal(
        Deno.readTextFileSync(path.join(calls[0], "wandb-sha")).trim(),
        await sha16(WANDB_SECRET),
      );
      assert.ok(!exists(enrootLog), "enroot did not run");

      // 3. squash = "enroot": a missing image is imported on the cluster (salloc/srun there).
      w.envToml(profile(w, 'squash = "enroot"'));
      //    But bad input stops the command before: an unknown artifact (the recipe's
      //    `${art:model,path}`, no registry here) is exit 2, nothing imported or written.
      r = await w.nemotron([
        "nano3",
        "eval",
        "--batch",
        "cluster",
        ...OVERRIDES.filter((o) => !o.startsWith("deployment.checkpoint_path=")),
        "+execution.proxy.image=haproxy:2.9",
      ]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /artifact 'nano3-rl-model' not found/);
      assert.ok(!exists(enrootLog), "enroot did not run");
      assert.equal(jobDirs(w).length, 1);
      r = await w.nemotron(evalArgs("+execution.proxy.image=haproxy:2.9"));
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`✓ Using existing squashed image on root@cluster: ${vllmSqsh}`),
      );
      assert.match(r.stderr, /stand-in enroot imported docker:\/\/haproxy:2\.9/);
      let enroot = Deno.readTextFileSync(enrootLog).trim().split("\n").map((l) => l.split("\t"));
      assert.equal(enroot.length, 1);
      assert.equal(enroot[0][0], "0", "ran as the cluster account (root), not the laptop user");
      assert.match(enroot[0][1], /^\d+$/, "ran inside a Slurm allocation");
      assert.deepEqual(enroot[0].slice(2), [haproxySqsh, "docker://haproxy:2.9"]);
      const listing = await run("unsquashfs", ["-l", haproxySqsh]);
      assert.equal(listing.code, 0, listing.stderr);
      calls = launcherCalls(w);
      ev = evalYaml(calls[1]);
      assert.equal(ev.deployment.image, vllmSqsh);
      assert.equal(ev.execution.proxy.image, haproxySqsh);

      // 4. --force-squash: both imported again (the stand-in refuses an existing output, so the
      //    old ones were removed first, on the cluster).
      r = await w.nemotron(evalArgs("+execution.proxy.image=haproxy:2.9", "--force-squash"));
      assert.equal(r.code, 0, r.stdout + r.stderr);
      enroot = Deno.readTextFileSync(enrootLog).trim().split("\n").map((l) => l.split("\t"));
      assert.deepEqual(enroot.slice(1).map((e) => e[2]), [vllmSqsh, haproxySqsh]);
      assert.equal(launcherCalls(w).length, 3);

      // No secret value in any file the runs left, on either side (env.toml and ~/.netrc hold
      // them by design).
      for (const [secret, label] of [[SECRET, "profile secret"], [WANDB_SECRET, "W&B key"]]) {
        const hits = filesContaining(
          w.base,
          secret,
          (p) =>
            p === path.join(w.cwd, "env.toml") || p === netrc || p.endsWith("/.deno") ||
            p.includes("/sshd-"),
        );
        assert.deepEqual(hits, [], `${label} found in files`);
      }
      const jobYaml = Deno.readTextFileSync(path.join(jobDir, "job.yaml"));
      assert.ok(jobYaml.includes("MY_API_TOKEN"), "job.yaml records the variable's name");

      // 5. `~` in remote_job_dir is the cluster account's home (root's here), expanded there: an
      //    existing .sqsh under it is found, for eval and for a recipe (planTunnelJob).
      const tildeName = `nm-ssh-eval-${crypto.randomUUID().slice(0, 8)}`;
      const tildeDir = path.join("/root", tildeName);
      try {
        Deno.mkdirSync(tildeDir, { mode: 0o700 });
        Deno.writeTextFileSync(path.join(tildeDir, VLLM_SQSH), "squashfs stand-in\n");
        Deno.writeTextFileSync(path.join(tildeDir, "nvcr_io_nvidia_pytorch_25_01_py3.sqsh"), "x\n");
        const tildeProfile = profile(w).replace(
          `remote_job_dir = "${w.remoteJobDir}"`,
          `remote_job_dir = "~/${tildeName}"`,
        );
        w.envToml(tildeProfile);
        r = await w.nemotron(evalArgs());
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`✓ Using existing squashed image on root@cluster: ${tildeDir}/${VLLM_SQSH}`),
        );
        calls = launcherCalls(w);
        assert.equal(
          evalYaml(calls[calls.length - 1]).deployment.image,
          `${tildeDir}/${VLLM_SQSH}`,
        );
        w.envToml(
          tildeProfile.replace(
            "[cluster]\n",
            '[cluster]\ncontainer_image = "nvcr.io/nvidia/pytorch:25.01-py3"\ntime = "00:05:00"\n',
          ),
        );
        r = await w.nemotron(["demo", "data", "-c", "tiny", "--batch", "cluster", "--json"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          new RegExp(
            `✓ Using existing squashed image on root@cluster: ${tildeDir}/nvcr_io_nvidia_pytorch_25_01_py3\\.sqsh`,
          ),
        );
        for (const j of JSON.parse(r.stdout).jobs) await run("scancel", [j.slurm_job_id]);
      } finally {
        Deno.removeSync(tildeDir, { recursive: true });
      }

      // 6. The cluster cannot be checked: nothing written, the launcher not run. An unknown host
      //    key (a second sshd whose key is not in known_hosts): exit 1.
      w.envToml(profile(w, 'squash = "enroot"'));
      const before = jobDirs(w).length;
      const callsBefore = launcherCalls(w).length;
      const stranger = await w.startSshd(2253, {
        extraConfig: `ForceCommand export PATH=${clusterBin}:/usr/local/bin:/usr/bin:/bin; ` +
          `exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"`,
      });
      w.sshConfig(directConfig(stranger.port), sshd.knownHostsLine + "\n");
      r = await w.nemotron(evalArgs("+execution.proxy.image=haproxy:2.9"));
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /host key is unknown/);
      assert.equal(jobDirs(w).length, before);
      assert.equal(launcherCalls(w).length, callsBefore);
      // Unreachable (nothing listens on 2254): exit 1.
      w.sshConfig(directConfig(2254), sshd.knownHostsLine + "\n");
      r = await w.nemotron(evalArgs("+execution.proxy.image=haproxy:2.9"));
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /cannot reach the cluster/);
      assert.equal(jobDirs(w).length, before);
      assert.equal(launcherCalls(w).length, callsBefore);
    } finally {
      await w.close();
    }
  },
);

/** A tunnel whose `exec` runs the script here with `sh -c` and records it (for the unit test). */
function recordingTunnel(path_: string) {
  const scripts: string[] = [];
  return {
    scripts,
    tunnel: {
      spec: { host: "cluster", user: "me" },
      async exec(script: string, _stdin?: Uint8Array, args: readonly string[] = []) {
        scripts.push(script);
        const o = await new Deno.Command("sh", {
          args: ["-c", script, "nemotron", ...args],
          env: { PATH: path_ },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        return { code: o.code, stdout: o.stdout, stderr: new TextDecoder().decode(o.stderr) };
      },
    },
  };
}

Deno.test("ensureClusterSqsh: reuse, enroot import (force removes first), refusals with the fix", async () => {
  const { clusterFileExists, ensureClusterSqsh } = await import("../lib/exec/ssh_squash.ts");
  const { UsageError, RuntimeFailure } = await import("../lib/errors.ts");
  const dir = Deno.makeTempDirSync({ prefix: "ssh-squash-" });
  try {
    // salloc stand-in (test only): runs its command after the options, like salloc + srun here.
    const bin = path.join(dir, "bin");
    Deno.mkdirSync(bin);
    Deno.writeTextFileSync(
      path.join(bin, "salloc"),
      `#!/bin/sh\n# Stand-in for salloc … srun --export=ALL CMD… (test only)\n` +
        `while [ "$1" != srun ]; do shift; done; shift 2; exec "$@"\n`,
      { mode: 0o755 },
    );
    Deno.writeTextFileSync(
      path.join(bin, "enroot"),
      `#!/bin/sh\n# Stand-in for enroot import (test only)\n[ -e "$3" ] && exit 1\necho "$4" > "$3"\n`,
      { mode: 0o755 },
    );
    const { tunnel, scripts } = recordingTunnel(`${bin}:/usr/bin:/bin`);
    const rjd = path.join(dir, "rjd");
    const target = path.join(rjd, "nvcr_io_nvidia_pytorch_25_01_py3.sqsh");
    const image = "nvcr.io/nvidia/pytorch:25.01-py3";
    const req = { image, remoteJobDir: rjd, force: false, exists: false };
    // Missing, native: exit 2 naming where it looked and how to squash it there; nothing run.
    await assert.rejects(
      ensureClusterSqsh(tunnel, { ...req, profile: {} }),
      (e: Error) =>
        e instanceof UsageError &&
        e.message ===
          `container image ${image} has no squashed .sqsh on me@cluster (looked for ${target})` &&
        (e.hint ?? "").includes(`\`nemotron squash ${image} -o ${target}\` there`) &&
        (e.hint ?? "").includes("set container_image to a .sqsh path on the cluster"),
    );
    await assert.rejects(
      ensureClusterSqsh(tunnel, { ...req, profile: {}, force: true }),
      (e: Error) => e instanceof UsageError && /only with enroot/.test(e.message),
    );
    assert.deepEqual(scripts, []);
    // enroot: imported (the output dir created first), then found by a test on the "cluster".
    const enroot = { ...req, profile: { squash: "enroot", remote_job_dir: rjd } };
    assert.equal(await ensureClusterSqsh(tunnel, enroot), target);
    assert.equal(Deno.readTextFileSync(target).trim(), `docker://${image}`);
    assert.equal(await clusterFileExists(tunnel, target), true);
    assert.equal(await clusterFileExists(tunnel, target + ".x"), false);
    const n = scripts.length;
    assert.equal(
      await ensureClusterSqsh(tunnel, {
        ...enroot,
        exists: () => clusterFileExists(tunnel, target),
      }),
      target,
    );
    assert.equal(scripts.length, n + 1, "only the existence test ran");
    // force: removed first (the stand-in refuses an existing output), imported again.
    Deno.writeTextFileSync(target, "old");
    assert.equal(await ensureClusterSqsh(tunnel, { ...enroot, exists: true, force: true }), target);
    assert.equal(Deno.readTextFileSync(target).trim(), `docker://${image}`);
    // A failing import: exit 1 with the command.
    Deno.writeTextFileSync(path.join(bin, "enroot"), "#!/bin/sh\nexit 3\n", { mode: 0o755 });
    await assert.rejects(
      ensureClusterSqsh(tunnel, { ...enroot, force: true }),
      (e: Error) =>
        e instanceof RuntimeFailure &&
        /Failed to squash container image on me@cluster/.test(e.message),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
