/**
 * The one shell-quoting function. Every value that enters a generated shell script (sbatch scripts,
 * enroot/salloc commands, startup lines, printed commands) goes through `shellQuote`.
 */

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quote `value` for POSIX sh/bash so that it is read back as exactly one word equal to `value`.
 * Safe words are left bare for readability; everything else is single-quoted, with embedded single
 * quotes written as `'"'"'`. Newlines, `$`, backticks and backslashes are literal inside single quotes.
 */
export function shellQuote(value: string): string {
  if (value === "") return "''";
  if (SAFE.test(value)) return value;
  return "'" + value.replaceAll("'", `'"'"'`) + "'";
}

/** Quote each word and join with spaces: an argv as one shell command line. */
export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}
