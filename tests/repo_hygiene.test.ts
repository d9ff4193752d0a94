/** The repository stays formatted, lint-clean and type-checked (also the files no test imports). */
import assert from "node:assert/strict";
import { ROOT } from "./cli_helpers.ts";

async function deno(args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test("repository: deno fmt --check is clean", async () => {
  const r = await deno(["fmt", "--check"]);
  assert.equal(r.code, 0, r.out.split("\n").slice(-30).join("\n"));
});

Deno.test("repository: deno lint is clean", async () => {
  const r = await deno(["lint"]);
  assert.equal(r.code, 0, r.out.split("\n").slice(-30).join("\n"));
});

Deno.test("repository: main.ts, tools/ and the benches type-check", async () => {
  const r = await deno(["check", "main.ts", "tools/", "tests/bench/"]);
  assert.equal(r.code, 0, r.out.split("\n").slice(-30).join("\n"));
});
