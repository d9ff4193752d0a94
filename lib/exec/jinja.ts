/**
 * Jinja rendering for generated shell scripts (sbatch templates), with MiniJinja compiled to WASM.
 *
 * The engine is configured like Python Jinja2 with `trim_blocks`, `lstrip_blocks`,
 * `keep_trailing_newline` and `StrictUndefined`, so a template renders byte-identically in both
 * (tests/slurm_render.test.ts checks this against /usr/bin/python3 + Jinja2). One filter is added:
 * `sh`, which shell-quotes a value with lib/shell.ts `shellQuote` — the only way a value should
 * enter a script. The WASM module is imported lazily: only commands that render pay for it.
 */
import { UsageError } from "../errors.ts";
import { shellQuote } from "../shell.ts";

interface MiniJinjaEnvironment {
  enablePyCompat(): void;
  addFilter(name: string, fn: (...args: unknown[]) => unknown): void;
  renderNamedStr(name: string, source: string, ctx: unknown): string;
  trimBlocks: boolean;
  lstripBlocks: boolean;
  keepTrailingNewline: boolean;
  undefinedBehavior: "strict" | "chainable" | "lenient" | "semi_strct";
}

let envPromise: Promise<MiniJinjaEnvironment> | undefined;

/** The `sh` filter: a value as one shell word. Numbers are written in decimal. */
export function shFilter(value: unknown): string {
  if (typeof value === "string") return shellQuote(value);
  if (typeof value === "number" && Number.isFinite(value)) return shellQuote(String(value));
  throw new Error(`the sh filter takes a string or a number, got ${JSON.stringify(value)}`);
}

async function environment(): Promise<MiniJinjaEnvironment> {
  envPromise ??= (async () => {
    const { loadMinijinja } = await import("./minijinja.ts");
    const Environment = await loadMinijinja();
    const env = new Environment() as unknown as MiniJinjaEnvironment;
    env.enablePyCompat();
    env.trimBlocks = true;
    env.lstripBlocks = true;
    env.keepTrailingNewline = true;
    env.undefinedBehavior = "strict";
    env.addFilter("sh", (v: unknown) => shFilter(v));
    return env;
  })();
  return await envPromise;
}

/** Where a MiniJinja error message says the problem is: `(in NAME:LINE)`. */
function errorLine(message: string, name: string): number | undefined {
  const at = message.lastIndexOf(`(in ${name}:`);
  if (at < 0) return undefined;
  const m = /^:(\d+)\)/.exec(message.slice(at + 4 + name.length));
  return m ? Number(m[1]) : undefined;
}

/**
 * Render `source` (named `name` in error messages, e.g. the template's file path) with `context`.
 * A template error (syntax, undefined variable, bad filter argument) is a UsageError pointing at
 * the template's file and line.
 */
export async function renderJinja(
  name: string,
  source: string,
  context: Readonly<Record<string, unknown>>,
): Promise<string> {
  const env = await environment();
  try {
    return env.renderNamedStr(name, source, context);
  } catch (err) {
    const message = String(err instanceof Error ? err.message : err);
    const first = message.split("\n")[0].replace(/^Error: /, "");
    throw new UsageError(`template ${name}: ${first}`, {
      location: { file: name, line: errorLine(message, name) },
      hint: "fix the template; the variables it can use are listed in the README (## Slurm)",
      cause: err,
    });
  }
}
