/**
 * Benchmark: load + resolve a synthetic config (≥ 5,000 keys, ≥ 2,000 interpolations: chains,
 * string interpolation, relative keys, oc.env) — ours (parseYaml + resolveTree) against
 * `OmegaConf.to_container(OmegaConf.load(f), resolve=True)` on the same file, each in its own
 * process, timed in-process (median of repeated runs, interpreter start-up excluded), plus peak
 * memory (VmHWM) of each process. Also one cold run in a fresh process (time and peak RSS) and
 * the peak RSS of a process that loads the modules but parses nothing (the runtime's floor).
 * Target: ≥ 20× faster.
 *
 * Run alone: deno run -A tests/bench/config.ts
 */
import { resolveTree } from "../../lib/config/interpolate.ts";
import { parseYamlMapping } from "../../lib/config/yaml.ts";

/** The synthetic config: 100 sections × 50 keys, 25 of them interpolations. */
export function syntheticConfig(sections = 100): string {
  const out: string[] = ["base:", "  root: /data", "  name: exp", "  seed: 7", "  lr: 1.0e-4"];
  for (let s = 0; s < sections; s++) {
    out.push(`s${s}:`);
    for (let k = 0; k < 25; k++) {
      const v = [`${k}`, `${k}.5`, `name_${k}`, "yes", `0x${k.toString(16)}`][k % 5];
      out.push(`  v${k}: ${v}`);
    }
    out.push(`  i0: \${base.root}`);
    for (let k = 1; k < 10; k++) out.push(`  i${k}: \${.i${k - 1}}`); // chains
    for (let k = 10; k < 18; k++) out.push(`  i${k}: run_\${base.name}_\${.v${k}}_\${base.seed}`);
    for (let k = 18; k < 22; k++) out.push(`  i${k}: \${oc.env:BENCH_HOME,/tmp}/s${s}/\${.v${k}}`);
    out.push(`  i22: \${s${Math.max(0, s - 1)}.i9}/x`);
    out.push(`  i23: \${base.lr}`);
    out.push(`  i24: \${oc.select:base.missing,\${.v1}}`);
  }
  return out.join("\n") + "\n";
}

async function readHwmKb(): Promise<number> {
  const status = await Deno.readTextFile("/proc/self/status");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

async function child(file: string, runs: number): Promise<void> {
  const text = await Deno.readTextFile(file);
  const times: number[] = [];
  const loads: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const tree = parseYamlMapping(text, file);
    const t1 = performance.now();
    resolveTree(tree);
    times.push(performance.now() - t0);
    loads.push(t1 - t0);
  }
  const med = (xs: number[]) => xs.length ? xs.sort((a, b) => a - b)[xs.length >> 1] : 0;
  const ms = med(times);
  const load = med(loads);
  console.log(JSON.stringify({ ms, load, hwmKb: await readHwmKb() }));
}

const PY = `
import sys, time, json
from omegaconf import OmegaConf
f, runs = sys.argv[1], int(sys.argv[2])
ts, ls = [], []
for _ in range(runs):
    t0 = time.perf_counter()
    cfg = OmegaConf.load(f)
    t1 = time.perf_counter()
    OmegaConf.to_container(cfg, resolve=True)
    ts.append((time.perf_counter() - t0) * 1000)
    ls.append((t1 - t0) * 1000)
ts.sort(); ls.sort()
hwm = int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])
print(json.dumps({"ms": ts[runs // 2], "load": ls[runs // 2], "hwmKb": hwm}))
`;

async function runJson(
  cmd: string,
  args: string[],
): Promise<{ ms: number; load: number; hwmKb: number }> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "inherit",
    env: { BENCH_HOME: "/home/bench" },
  }).output();
  if (!out.success) throw new Error(`${cmd} failed`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

export async function bench(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "nemotron-bench-config-" });
  const file = `${dir}/big.yaml`;
  const text = syntheticConfig();
  await Deno.writeTextFile(file, text);
  const keys = (text.match(/^\s*[\w]+:/gm) ?? []).length;
  const inters = (text.match(/\$\{/g) ?? []).length;
  const self = new URL(import.meta.url).pathname;
  const ours = await runJson(Deno.execPath(), ["run", "-A", self, "--child", file, "9"]);
  const single = await runJson(Deno.execPath(), ["run", "-A", self, "--child", file, "1"]);
  const idle = await runJson(Deno.execPath(), ["run", "-A", self, "--child", file, "0"]);
  const theirs = await runJson("/usr/bin/python3", ["-c", PY, file, "5"]);
  const theirsSingle = await runJson("/usr/bin/python3", ["-c", PY, file, "1"]);
  const mib = (kb: number) => `${(kb / 1024).toFixed(0)} MiB`;
  console.log(
    `config: ${keys} keys, ${inters} interpolations (${(text.length / 1024).toFixed(0)} KiB)`,
  );
  console.log(
    `  ours      load+resolve ${ours.ms.toFixed(1)} ms   peak RSS ${
      (ours.hwmKb / 1024).toFixed(0)
    } MiB`,
  );
  console.log(
    `  OmegaConf load+resolve ${theirs.ms.toFixed(1)} ms   peak RSS ${
      (theirs.hwmKb / 1024).toFixed(0)
    } MiB`,
  );
  console.log(`  speed-up ×${(theirs.ms / ours.ms).toFixed(1)} load+resolve (target ≥ 20×)`);
  console.log(
    `  single cold run (fresh process): ours ${single.ms.toFixed(1)} ms, peak RSS ${
      mib(single.hwmKb)
    } (runtime floor, modules loaded, nothing parsed: ${mib(idle.hwmKb)}); OmegaConf ${
      theirsSingle.ms.toFixed(1)
    } ms, peak RSS ${mib(theirsSingle.hwmKb)}; speed-up ×${
      (theirsSingle.ms / single.ms).toFixed(1)
    }`,
  );
  console.log(
    `  split: YAML load ${ours.load.toFixed(1)} vs ${theirs.load.toFixed(1)} ms (×${
      (theirs.load / ours.load).toFixed(1)
    }), resolve ${(ours.ms - ours.load).toFixed(1)} vs ${
      (theirs.ms - theirs.load).toFixed(1)
    } ms (×${((theirs.ms - theirs.load) / (ours.ms - ours.load)).toFixed(1)})`,
  );
  await Deno.remove(dir, { recursive: true });
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") await child(Deno.args[1], Number(Deno.args[2] ?? 5));
  else await bench();
}
