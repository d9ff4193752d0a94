/**
 * ssh tunnel benchmark (`deno task bench ssh`; needs root, sshd and the local Slurm cluster —
 * skipped with the reason otherwise): a real sshd on 127.0.0.1:2250 in front of the local cluster
 * (tests/ssh_world.ts), the laptop user runs tests/bench/ssh_inner.ts (bundled), and in one run
 * and over one multiplexed connection compares nemotron's submit through the tunnel with doing it
 * by hand (`rsync` of the job dir + `ssh HOST sbatch --parsable script`). Target: ≤ 1.5× the
 * hand-made submit (the copy is part of both).
 */
import * as path from "node:path";
import { BUNDLE_FLAGS } from "../../tools/build.ts";
import { makeSshWorld, sshSkipReason } from "../ssh_world.ts";
import { median } from "./timing.ts";

const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

export async function bench(): Promise<void> {
  const reason = await sshSkipReason();
  if (reason) {
    console.log(`skipped: ${reason}`);
    return;
  }
  const w = await makeSshWorld();
  try {
    const sshd = await w.startSshd(2250);
    w.sshConfig(
      `Host cluster\n  HostName 127.0.0.1\n  Port 2250\n  User root\n  IdentityFile ~/.ssh/id_ed25519\n`,
      sshd.knownHostsLine + "\n",
    );
    const inner = path.join(w.base, "ssh_inner.js");
    const b = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        ...BUNDLE_FLAGS,
        "--output",
        inner,
        new URL("./ssh_inner.ts", import.meta.url).pathname,
      ],
      stdout: "null",
      stderr: "inherit",
    }).output();
    if (b.code !== 0) throw new Error("deno bundle of ssh_inner.ts failed");
    Deno.chmodSync(inner, 0o644);
    const runs = 10;
    const r = await w.denoRun(inner, ["cluster", w.remoteJobDir, String(runs)]);
    if (r.code !== 0) throw new Error(`ssh_inner failed: ${r.stderr}`);
    const { ours, hand, copy, handshake } = JSON.parse(r.stdout.trim().split("\n").pop()!);
    const m = median(ours), h = median(hand), c = median(copy);
    console.log(`handshake (once per command): ${fmt(handshake)}`);
    console.log(
      `submit over the tunnel: nemotron ${fmt(m)} vs by hand (rsync + ssh sbatch) ${fmt(h)} ` +
        `(median of ${runs}, same multiplexed connection); ratio ${
          (m / h).toFixed(2)
        }x (target ≤ 1.5x)`,
    );
    console.log(`  of which the copy by hand: ${fmt(c)}; ssh sbatch by hand: ${fmt(h - c)}`);
  } finally {
    await w.close();
  }
}
