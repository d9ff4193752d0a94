/** TOML parsing with errors that point at the user's file (file:line:col). */
import { parse, TomlError } from "smol-toml";
import { UsageError } from "./errors.ts";

/** Maps a line/column of the parsed text back to the file it came from. */
export type PositionMap = (line: number, col: number) => { line: number; col: number };

const identity: PositionMap = (line, col) => ({ line, col });

/**
 * Parse `text` as TOML. A syntax error becomes a `UsageError` located in `file`; `mapPosition`
 * translates positions when `text` was extracted from a larger file (e.g. a PEP 723 block).
 */
export function parseToml(
  text: string,
  file: string,
  mapPosition: PositionMap = identity,
): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
      const pos = mapPosition(err.line, err.column);
      throw new UsageError(`invalid TOML: ${reason}`, {
        location: { file, line: pos.line, col: pos.col },
        hint: "fix the TOML syntax at that position (https://toml.io)",
      });
    }
    throw err;
  }
}

/** True for a plain TOML table (not an array, date or scalar). */
export function isTable(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    !(value instanceof Date);
}

/**
 * Find the 1-based line of `key` inside table `[table]` of a TOML text (best effort, for error
 * locations: dotted keys and inline tables are matched by their first segment).
 */
export function locateKey(
  lines: readonly string[],
  table: string,
  key: string,
): number | undefined {
  let current = "";
  const want = key.split(".");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    const header = /^\[\[?\s*([^\]]+?)\s*\]\]?/.exec(line);
    if (header) {
      current = header[1].replace(/\s*\.\s*/g, ".").replace(/"/g, "");
      continue;
    }
    const m = /^([A-Za-z0-9_."' -]+?)\s*=/.exec(line);
    if (!m) continue;
    const full = [current, m[1].replace(/\s*\.\s*/g, ".").replace(/["']/g, "")].filter(Boolean)
      .join(".");
    const target = [table, ...want].filter(Boolean).join(".");
    if (full === target || target.startsWith(full + ".")) return i + 1;
  }
  return undefined;
}
