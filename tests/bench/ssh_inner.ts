/**
 * The laptop side of `deno task bench ssh` (built into a one-file bundle and run as the laptop
 * user by tests/bench/ssh.ts): in one process, over one multiplexed connection, time
 * - nemotron's submit through the tunnel: remote checks and `sbatch --test-only` (one ssh call),
 *   the staged job dir, the copy (rsync, hard-linking what an earlier job dir has), secrets from
 *   stdin + sbatch, job.json and the store row;
 * - the same by hand: `rsync` of a job dir of the same files, then `ssh HOST sbatch --parsable`;
 * - the copy alone.
 * Prints one JSON object of millisecond lists.
 */
import * as path from "../../lib/path.ts";
import { buildSlurmJob, renderSbatch } from "../../lib/exec/slurm.ts";
import { prepareJobDir } from "../../lib/exec/job_dir.ts";
import { registerTunnelJob, SshTunnel, tunnelDir } from "../../lib/exec/ssh.ts";
import {
  checkRemoteJobDirOverSsh,
  probeRemote,
  submitTunnelJob,
} from "../../lib/exec/ssh_submit.ts";
import { JobStore } from "../../lib/jobs/store.ts";
import { preflightArgs, readPreflight } from "../../lib/exec/slurm_preflight.ts";

const [host, rjd, runsText] = Deno.args;
const runs = Number(runsText);
const tunnel = await SshTunnel.open({ host });
const store = await JobStore.open();
const code = Array.from({ length: 20 }, (_, i) => ({
  name: `mod${i}.py`,
  text: `# module ${i}\n` + "x = 1\n".repeat(600),
}));
const ours: number[] = [], hand: number[] = [], copy: number[] = [];
const rsh = ["ssh", ...tunnel.sshOptions(), "-o", "ControlMaster=no"].join(" ");
for (let i = 0; i <= runs; i++) {
  // ---- nemotron ----
  const t0 = performance.now();
  // As planTunnelJob: the cluster checks and Slurm's preflight in one round trip.
  const bare = buildSlurmJob({
    name: `bench ${i}`,
    mode: "batch",
    launch: "direct",
    profile: { remote_job_dir: rjd, time: "5" },
    command: ["true"],
  });
  const probe = await probeRemote(tunnel, rjd, "", { testOnly: preflightArgs(bare.directives) });
  checkRemoteJobDirOverSsh(probe, host);
  if (!readPreflight(probe.preflight!).ok) throw new Error("preflight refused");
  const job = buildSlurmJob({
    name: `bench ${i}`,
    mode: "batch",
    launch: "direct",
    profile: { remote_job_dir: probe.remoteJobDir, time: "5" },
    command: ["true"],
    env: { BENCH_TOKEN: "t" },
    uid: probe.uid,
  });
  const script = await renderSbatch(job);
  registerTunnelJob(job, {
    tunnel,
    stageDir: path.join(tunnelDir(), "stage", job.key),
    linkDest: probe.recentJobDirs,
  });
  const prepared = prepareJobDir(job, script);
  for (const f of code) Deno.writeTextFileSync(path.join(prepared.codeDir, f.name), f.text);
  await submitTunnelJob(job, { store });
  const t1 = performance.now();
  // ---- by hand: the same files, rsync, then ssh HOST sbatch --parsable ----
  const stage = Deno.makeTempDirSync({ dir: tunnelDir() });
  Deno.mkdirSync(path.join(stage, "code"));
  for (const f of code) Deno.writeTextFileSync(path.join(stage, "code", f.name), f.text);
  const remote = path.join(probe.remoteJobDir, "by-hand", `run-${i}-${crypto.randomUUID()}`);
  Deno.writeTextFileSync(
    path.join(stage, "sbatch.sh"),
    `#!/bin/bash\n#SBATCH --job-name=bench-hand\n#SBATCH --output=${remote}/out_%j.txt\n#SBATCH --time=5\nsrun true\n`,
  );
  const t2 = performance.now();
  const r = await new Deno.Command("rsync", {
    args: ["-rlp", "-e", rsh, "--mkpath", `${stage}/`, `${host}:${remote}/`],
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (r.code !== 0) throw new Error("rsync failed");
  const t3 = performance.now();
  const out = await tunnel.runner("sbatch", ["--parsable", `${remote}/sbatch.sh`]);
  if (out.code !== 0) throw new Error(`sbatch failed: ${out.stderr}`);
  const t4 = performance.now();
  Deno.removeSync(stage, { recursive: true });
  if (i === 0) continue; // warm-up (template engine, first copy)
  ours.push(t1 - t0);
  hand.push(t4 - t2);
  copy.push(t3 - t2);
}
store.close();
console.log(JSON.stringify({ ours, hand, copy, handshake: tunnel.handshakeMs }));
