/**
 * `nemotron nano3 pretrain -c tiny --dry-run` from the bundle against `nemotron --help` from the
 * same bundle, in turns in the same run (median of 11 cold starts each), plus the dry run's peak RSS.
 * Targets: ≤ 2× the `--help` time; ≤ 120 MB.
 */
import * as path from "../../lib/path.ts";
import { buildBundle } from "../../tools/build.ts";
import { median, ms, peakRssKiB, timeInTurns } from "./timing.ts";

export async function bench(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nemotron-bench-" });
  const bundle = path.join(dir, "nemotron.js");
  if ((await buildBundle(bundle, true)) !== 0) throw new Error("deno bundle failed");
  const runs = 11;
  const flags = ["run", "-A", "--no-config", "--no-lock"];
  const env = { ...Deno.env.toObject(), NEMOTRON_HOME: path.join(dir, "home"), NO_COLOR: "1" };
  const opts = { cwd: dir, env };
  const dryArgs = [...flags, bundle, "nano3", "pretrain", "-c", "tiny", "--dry-run"];
  const [help, dry] = await timeInTurns(
    [
      { cmd: Deno.execPath(), args: [...flags, bundle, "--help"] },
      { cmd: Deno.execPath(), args: dryArgs },
    ],
    runs,
    opts,
  );
  const h = median(help);
  const d = median(dry);
  console.log(`nemotron --help                        median ${ms(h)} (n=${runs})`);
  console.log(`nemotron nano3 pretrain -c tiny -d     median ${ms(d)} (n=${runs})`);
  console.log(`ratio ${(d / h).toFixed(2)} (target ≤ 2)`);
  const rss = await peakRssKiB(Deno.execPath(), dryArgs, opts);
  console.log(
    rss === undefined
      ? "peak RSS: /usr/bin/time not available"
      : `dry run peak RSS ${(rss / 1024).toFixed(1)} MiB (target ≤ 120 MB)`,
  );
}
