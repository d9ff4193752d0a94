/**
 * Cold start: `nemotron --help` from the bundle against `deno run` of an empty script, both from a
 * fresh process each time, in turns (median of 21 runs each). Target: ratio ≤ 1.5.
 */
import * as path from "node:path";
import { median, ms, timeInTurns } from "./timing.ts";
import { buildBundle } from "../../tools/build.ts";

export async function bench(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nemotron-bench-" });
  const bundle = path.join(dir, "nemotron.js");
  if ((await buildBundle(bundle, true)) !== 0) throw new Error("deno bundle failed");
  const empty = path.join(dir, "empty.js");
  await Deno.writeTextFile(empty, "\n");
  const runs = 21;
  const flags = ["run", "-A", "--no-config", "--no-lock"];
  const [base, help] = await timeInTurns(
    [
      { cmd: Deno.execPath(), args: [...flags, empty] },
      { cmd: Deno.execPath(), args: [...flags, bundle, "--help"] },
    ],
    runs,
    { cwd: dir },
  );
  const b = median(base);
  const h = median(help);
  console.log(`deno run empty.js         median ${ms(b)} (n=${runs})`);
  console.log(`nemotron --help (bundle)  median ${ms(h)} (n=${runs})`);
  console.log(`ratio ${(h / b).toFixed(2)} (target ≤ 1.5)`);
}
