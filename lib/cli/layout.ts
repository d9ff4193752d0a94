/**
 * Help layout: how wide a help screen may be and how its text wraps. One wrapping rule for every
 * help screen — words are never broken, continuation lines hang under the description column — and
 * one styling rule: bold section titles and coloured placeholders only on a terminal, never with
 * NO_COLOR or when piped.
 */

/** Width to lay help out for: the terminal's (40–100 columns), else `$COLUMNS`, else 80. */
export function helpWidth(): number {
  try {
    if (Deno.stdout.isTerminal()) {
      return Math.max(40, Math.min(100, Deno.consoleSize().columns));
    }
  } catch {
    // not a terminal, or no console size: fall through
  }
  const cols = Number(Deno.env.get("COLUMNS"));
  if (Number.isInteger(cols) && cols >= 40) return Math.min(100, cols);
  return 80;
}

/** True when help on stdout may use bold and colour. */
export function helpColor(): boolean {
  if (Deno.env.get("NO_COLOR") !== undefined) return false;
  try {
    return Deno.stdout.isTerminal();
  } catch {
    return false;
  }
}

/** Split `text` into lines of at most `width` columns at word boundaries (a longer word stands alone). */
export function wrapWords(
  text: string,
  width: number,
  opts: { readonly capitalise?: boolean } = {},
): string[] {
  if (opts.capitalise !== false) text = capitalise(text);
  const lines: string[] = [];
  for (const para of text.split("\n")) {
    let cur = "";
    for (const w of para.split(/\s+/).filter(Boolean)) {
      if (cur && cur.length + 1 + w.length > width) {
        lines.push(cur);
        cur = w;
      } else cur = cur ? `${cur} ${w}` : w;
    }
    lines.push(cur);
  }
  return lines;
}

/**
 * Two-column rows (`  KEY  description`), descriptions wrapped with a hanging indent. A key wider
 * than `keyMax` gets the description on the next lines.
 */
export function helpRows(
  items: readonly (readonly [string, string])[],
  width: number,
  keyMax = 28,
  opts: { readonly capitalise?: boolean } = {},
): string[] {
  if (items.length === 0) return [];
  // The key column takes at most half the width, so descriptions keep room to wrap in.
  const keyWidth = Math.min(
    keyMax,
    Math.max(8, Math.floor(width / 2) - 4),
    Math.max(...items.map(([k]) => k.length)),
  );
  const indent = 2 + keyWidth + 2;
  const out: string[] = [];
  for (const [k, v] of items) {
    const text = opts.capitalise === false ? v : capitalise(v);
    const body = wrapWords(text, Math.max(20, width - indent), opts);
    if (k.length > keyWidth) {
      out.push(`  ${k}`);
      for (const l of body) out.push(" ".repeat(indent) + l);
    } else {
      out.push(`  ${k.padEnd(keyWidth)}  ${body[0]}`.trimEnd());
      for (const l of body.slice(1)) out.push(" ".repeat(indent) + l);
    }
  }
  return out;
}

/** One style for every description: it starts with a capital letter. */
function capitalise(text: string): string {
  return /^[a-z]/.test(text) ? text[0].toUpperCase() + text.slice(1) : text;
}

/** Bold section title (`Options:`) and cyan placeholders (`<path>`, `PROFILE`) on a terminal. */
export function styleHelp(text: string, on: boolean): string {
  if (!on) return text;
  return text
    .replace(/^([A-Z][A-Za-z .]*:)(?=$| )/gm, "\x1b[1m$1\x1b[0m")
    .replace(/(<[a-z][\w./-]*(?:\.\.\.)?>|\[[a-z][\w./-]*(?:\.\.\.)?\])/g, "\x1b[36m$1\x1b[0m");
}
