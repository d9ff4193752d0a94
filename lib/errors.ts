/**
 * The one error type of nemotron: a message, an optional place in a file and a hint on how to fix it.
 *
 * Everything that is the user's fault (bad arguments, config, profile, runspec) is a `UsageError`
 * (exit 2) and is raised before anything is written or submitted. Failures at run time (a job that
 * failed, a registry that is down) are `RuntimeFailure` (exit 1).
 */

/** Where in a file a problem is. Lines and columns count from 1. */
export interface SourceLocation {
  readonly file: string;
  readonly line?: number;
  readonly col?: number;
  /**
   * The text of the source when it is not a file on disk (a command-line override, an embedded
   * config); `formatError` shows its line `line`. Without it the line is read from `file`.
   */
  readonly source?: string;
}

/** Options shared by both error kinds. */
export interface NemotronErrorOptions {
  readonly location?: SourceLocation;
  readonly hint?: string;
  readonly cause?: unknown;
}

/** Base class: carries message, location, hint and the exit code the CLI uses. */
export class NemotronError extends Error {
  readonly location?: SourceLocation;
  readonly hint?: string;
  readonly exitCode: 1 | 2;

  constructor(message: string, exitCode: 1 | 2, options: NemotronErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = exitCode === 2 ? "UsageError" : "RuntimeFailure";
    this.exitCode = exitCode;
    this.location = options.location;
    this.hint = options.hint;
  }
}

/** Bad usage or bad input: exit code 2, nothing written or submitted. */
export class UsageError extends NemotronError {
  constructor(message: string, options: NemotronErrorOptions = {}) {
    super(message, 2, options);
  }
}

/** A run-time failure (job failed, service unreachable): exit code 1. */
export class RuntimeFailure extends NemotronError {
  constructor(message: string, options: NemotronErrorOptions = {}) {
    super(message, 1, options);
  }
}

/** `file:line:col` (or the parts that are known). */
export function formatLocation(loc: SourceLocation): string {
  let out = loc.file;
  if (loc.line !== undefined) {
    out += `:${loc.line}`;
    if (loc.col !== undefined) out += `:${loc.col}`;
  }
  return out;
}

/** Longest source line shown in full; longer ones are cut around the column. */
const SNIPPET_WIDTH = 120;
/** Files larger than this are not read to show a line. */
const SNIPPET_MAX_FILE = 8 * 1024 * 1024;

function sourceText(loc: SourceLocation): string | undefined {
  if (loc.source !== undefined) return loc.source;
  try {
    const st = Deno.statSync(loc.file);
    if (!st.isFile || st.size > SNIPPET_MAX_FILE) return undefined;
    return Deno.readTextFileSync(loc.file);
  } catch {
    return undefined;
  }
}

/**
 * The offending source line with a caret under the column, as rustc and uv show it:
 * ```
 *    |
 *  3 |   steps: ${train.nope}
 *    |          ^
 * ```
 * Empty when the location has no line or the source cannot be read.
 */
export function sourceSnippet(loc: SourceLocation): string {
  // A one-line source (a command-line override) needs no line number.
  const lineNo = loc.line ??
    (loc.source !== undefined && !loc.source.includes("\n") ? 1 : undefined);
  if (lineNo === undefined) return "";
  const text = sourceText(loc);
  if (text === undefined) return "";
  const lines = text.split(/\r?\n/);
  let line = lines[lineNo - 1];
  if (line === undefined) return "";
  let col = loc.col === undefined ? undefined : Math.max(1, Math.min(loc.col, line.length + 1));
  if (line.length > SNIPPET_WIDTH) {
    const start = col === undefined ? 0 : Math.max(0, col - 1 - SNIPPET_WIDTH / 2);
    line = (start > 0 ? "…" : "") + line.slice(start, start + SNIPPET_WIDTH) + "…";
    if (col !== undefined) col = col - start + (start > 0 ? 1 : 0);
  }
  // deno-lint-ignore no-control-regex
  const shown = line.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "?");
  const num = String(lineNo);
  const pad = " ".repeat(num.length);
  let out = `${pad} |\n${num} | ${shown}`;
  if (col !== undefined) {
    // Keep tabs so the caret lines up under a tab-indented column.
    const lead = shown.slice(0, col - 1).replace(/[^\t]/g, " ");
    out += `\n${pad} | ${lead}^`;
  }
  return out;
}

/**
 * The text the CLI prints for an error: `file:line:col: error: message`, the source line with a
 * caret under the column (when the location has a line), then `hint: …`. Used by main.ts and by
 * commands that report several problems (e.g. `runspec check`).
 */
export function formatError(err: NemotronError): string {
  const where = err.location ? `${formatLocation(err.location)}: ` : "";
  let out = `${where}error: ${err.message}`;
  const snippet = err.location ? sourceSnippet(err.location) : "";
  if (snippet) out += `\n${snippet}`;
  if (err.hint) out += `\n  hint: ${err.hint}`;
  return out;
}

/** Levenshtein distance, for "did you mean" suggestions. */
function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** The closest candidate to `word` (case-insensitive), if it is close enough to be a likely typo. */
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(2, Math.floor(word.length / 3));
  return bestDist <= limit ? best : undefined;
}

/** ` Did you mean 'x'?` or the empty string. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const m = closestMatch(word, candidates);
  return m === undefined ? "" : ` Did you mean '${m}'?`;
}
