/**
 * Benchmark: code packaging of a synthetic 20,000-file git repository, against the shell baseline
 * `git ls-files -z | tar --null -T - -czf` measured in the same run. Target: ≤ 1.2× the baseline.
 *
 * Run alone: deno run -A tests/bench/packaging.ts [files]
 */

import { join } from "node:path";
import { packageCode } from "../../lib/packaging/code.ts";

const WORDS = (
  "def class return import from self value config model train data batch size layer loss " +
  "optimizer step rank world tensor shape device cuda float int str list dict None True False " +
  "if else for in while with as try except raise print logging args kwargs path open read write"
).split(" ");

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sourceLike(rand: () => number, bytes: number): string {
  const lines: string[] = [];
  let n = 0;
  while (n < bytes) {
    const indent = "    ".repeat(Math.floor(rand() * 3));
    const words = Array.from(
      { length: 3 + Math.floor(rand() * 8) },
      () => WORDS[Math.floor(rand() * WORDS.length)],
    );
    const line = `${indent}${words.join(" ")} = ${Math.floor(rand() * 100000)}`;
    lines.push(line);
    n += line.length + 1;
  }
  return lines.join("\n") + "\n";
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Create a git repository with `count` committed files (sizes 100 B – 12 KB, a few executables). */
export async function makeRepo(dir: string, count: number): Promise<number> {
  const rand = rng(42);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const d = join(dir, `pkg${Math.floor(i / 1000)}`, `mod${Math.floor(i / 50) % 20}`);
    if (i % 50 === 0) Deno.mkdirSync(d, { recursive: true });
    const size = 100 + Math.floor(rand() ** 2 * 12000);
    const text = sourceLike(rand, size);
    total += text.length;
    Deno.writeTextFileSync(join(d, `file_${i}.py`), text, i % 97 === 0 ? { mode: 0o755 } : {});
  }
  const git = ["-c", "user.email=bench@example.com", "-c", "user.name=bench"];
  await run("git", ["init", "-q"], dir);
  await run("git", ["add", "."], dir);
  await run("git", [...git, "commit", "-q", "-m", "synthetic"], dir);
  return total;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Print our packager's median time against the `git ls-files | tar czf` baseline. */
export async function bench(files = 20000, runs = 5): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "nemotron-bench-packaging-" });
  try {
    const repo = join(tmp, "repo");
    const out = join(tmp, "out");
    Deno.mkdirSync(repo);
    Deno.mkdirSync(out);
    const raw = await makeRepo(repo, files);
    const ours: number[] = [];
    const base: number[] = [];
    let oursBytes = 0;
    let baseBytes = 0;
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await run(
        "sh",
        ["-c", `git ls-files -z | tar --null -T - -czf '${out}/baseline.tar.gz'`],
        repo,
      );
      base.push(performance.now() - t);
      baseBytes = Deno.statSync(join(out, "baseline.tar.gz")).size;

      t = performance.now();
      const pkg = await packageCode({
        script: { arcname: "recipe/train.py", text: "print('hi')\n" },
        trainConfig: "a: 1\n",
        jobDir: out,
        cwd: repo,
      });
      ours.push(performance.now() - t);
      oursBytes = pkg.bytes;
    }
    const o = median(ours), b = median(base);
    console.log(
      `packaging: ${files} files, ${(raw / 1e6).toFixed(1)} MB of source, median of ${runs} runs`,
    );
    console.log(
      `  baseline git ls-files | tar czf: ${b.toFixed(0)} ms (${(baseBytes / 1e6).toFixed(2)} MB)`,
    );
    console.log(
      `  nemotron packageCode:            ${o.toFixed(0)} ms (${(oursBytes / 1e6).toFixed(2)} MB)`,
    );
    console.log(`  ratio: ${(o / b).toFixed(2)}x (target <= 1.20x)`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) await bench(Number(Deno.args[0] ?? 20000));
