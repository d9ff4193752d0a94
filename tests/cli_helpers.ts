/** Shared test helpers: run the CLI as a subprocess and make temporary directories. */
import assert from "node:assert/strict";
import * as path from "node:path";
import { UsageError } from "../lib/errors.ts";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const MAIN = path.join(ROOT, "main.ts");

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Run `deno run -A main.ts ...args` (or `script` instead of main.ts) in `cwd` with extra `env`.
 * HOME and XDG_CONFIG_HOME point into a fresh temp dir unless given, so user files never leak in.
 */
export async function runCli(
  args: readonly string[],
  opts: { cwd?: string; env?: Record<string, string>; script?: string; stdin?: string } = {},
): Promise<CliResult> {
  const home = opts.env?.HOME ?? await Deno.makeTempDir({ prefix: "nemotron-home-" });
  const env: Record<string, string> = {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    NEMOTRON_HOME: path.join(home, ".nemotron"),
    NO_COLOR: "1",
    ...opts.env,
  };
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", opts.script ?? MAIN, ...args],
    cwd: opts.cwd ?? home,
    env,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A new temporary directory, under the test run's TMPDIR (`deno task test` removes it when green). */
export function tempDir(prefix = "nemotron-test-"): Promise<string> {
  return Deno.makeTempDir({ prefix });
}

/** Whether `p` exists (without following a final symlink). */
export function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The text of `file`, or "" while it does not exist (yet). */
export function readOrEmpty(file: string): string {
  try {
    return Deno.readTextFileSync(file);
  } catch {
    return "";
  }
}

/** Write `files` (relative path → content) under `dir`, creating parent directories. */
export async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    await Deno.mkdir(path.dirname(p), { recursive: true });
    await Deno.writeTextFile(p, content);
  }
}

/** Run `fn`, expecting a `UsageError`; returns it (fails the test otherwise). */
export function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    return err;
  }
  assert.fail("expected an error");
}
