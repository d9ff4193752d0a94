/**
 * Terminal colour: only when the stream is a terminal and `NO_COLOR` is not set (any value,
 * https://no-color.org). Used for the `error:` / `warning:` / `hint:` labels.
 */

/** True when output to stderr may be coloured. */
export function stderrColor(): boolean {
  if (Deno.env.get("NO_COLOR") !== undefined) return false;
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** Colour the `error:`, `warning:` and `hint:` labels of a message (no-op when `on` is false). */
export function colorLabels(text: string, on: boolean): string {
  if (!on) return text;
  return text
    .replace(/(^|: )error:/m, "$1\x1b[1;31merror:\x1b[0m")
    .replace(/(^|: )warning:/m, "$1\x1b[1;33mwarning:\x1b[0m")
    .replace(/^(\s*)hint:/m, "$1\x1b[36mhint:\x1b[0m");
}
