/**
 * `deno task bench [AREA...]`: run the benchmarks in tests/bench/<area>.ts (each exports
 * `bench(): Promise<void>` and prints its figures as ratios against a baseline measured in the same
 * run). With no argument every area runs, foundation first.
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const dir = path.dirname(fileURLToPath(import.meta.url));
const all = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  .filter((n) => n.endsWith(".ts") && n !== "run.ts" && n !== "timing.ts")
  .map((n) => n.slice(0, -3))
  .sort((a, b) => (a === "foundation" ? -1 : b === "foundation" ? 1 : a.localeCompare(b)));
const wanted = Deno.args.length > 0 ? Deno.args : all;
for (const area of wanted) {
  if (!all.includes(area)) {
    console.error(`unknown bench area '${area}'; known: ${all.join(", ")}`);
    Deno.exit(2);
  }
  console.log(`\n== bench: ${area} ==`);
  const mod = await import(path.join(dir, `${area}.ts`));
  await mod.bench();
}
