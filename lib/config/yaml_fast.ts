/**
 * A fast reader for the block-style YAML subset that config files use: block mappings and
 * sequences (compact `- key: v` and `- - x` forms included), single-line plain / single-quoted /
 * double-quoted scalars, comments, and single-line flow `[…]` / `{…}` of scalars. It builds the
 * same tree, with the same positions, as the `yaml`-package path in yaml.ts.
 *
 * It never reports errors: whenever the input leaves that subset (anchors, aliases, tags, block
 * scalars, multi-line scalars, complex keys, `<<` merges, directives, document markers, tabs,
 * CR, control characters, duplicate keys, invalid interpolations, `=` …) it returns `undefined`
 * and the caller parses the whole file with the `yaml` package, which owns every error message.
 * Scalar typing is delegated to the caller (yaml.ts), so the OmegaConf typing rules live in one
 * place.
 */
import {
  type ConfigMap,
  type ConfigNode,
  type Position,
  type Scalar,
  setPosition,
} from "./tree.ts";

/** How the caller types scalars; returning `undefined` means "let the yaml package decide". */
export interface ScalarTyper {
  /** Type a plain scalar (OmegaConf YAML 1.1 rules, interpolation syntax checked). */
  plain(text: string): Scalar | undefined;
  /** Check a quoted scalar (interpolation syntax). */
  quoted(text: string): string | undefined;
}

/** Thrown internally to abandon the fast path. */
const BAIL: unique symbol = Symbol("yaml-fast-bail");

/** Characters outside the subset anywhere in the file: tabs, CR, C0/C1 controls, BOM, LS/PS. */
// deno-lint-ignore no-control-regex
const UNSUPPORTED_CHARS = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]/;

const SP = 0x20;
const HASH = 0x23; // #
const DASH = 0x2d; // -
const COLON = 0x3a; // :
const QUESTION = 0x3f; // ?
const DQUOTE = 0x22; // "
const SQUOTE = 0x27; // '
const LBRACKET = 0x5b; // [
const RBRACKET = 0x5d; // ]
const LBRACE = 0x7b; // {
const RBRACE = 0x7d; // }
const COMMA = 0x2c; // ,
const BACKSLASH = 0x5c; // \

/** Characters that may not start a plain scalar here (besides `-?:` + space, handled apart). */
function badPlainStart(c: number): boolean {
  switch (c) {
    case COMMA:
    case LBRACKET:
    case RBRACKET:
    case LBRACE:
    case RBRACE:
    case HASH:
    case 0x26: // &
    case 0x2a: // *
    case 0x21: // !
    case 0x7c: // |
    case 0x3e: // >
    case 0x25: // %
    case 0x40: // @
    case 0x60: // `
    case DQUOTE:
    case SQUOTE:
      return true;
  }
  return false;
}

const ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  e: "\x1b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  N: "\u0085",
  _: "\u00a0",
  L: "\u2028",
  P: "\u2029",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
};

const HEX_RE = /^[0-9a-fA-F]+$/;

class FastReader {
  readonly lines: string[];
  /** Index of the current line. */
  li = 0;
  /** Index just past the last quoted scalar, flow collection or flow plain scalar read. */
  end = 0;
  depth = 0;

  constructor(text: string, readonly file: string, readonly typer: ScalarTyper) {
    this.lines = text.split("\n");
  }

  pos(li: number, col: number): Position {
    return { file: this.file, line: li + 1, col: col + 1 };
  }

  /** Indent of line `li` when it has content, or -1 when it is blank or a comment. */
  indentOf(li: number): number {
    const line = this.lines[li];
    let i = 0;
    while (i < line.length && line.charCodeAt(i) === SP) i++;
    if (i === line.length || line.charCodeAt(i) === HASH) return -1;
    return i;
  }

  /** Move to the next line with content; its indent, or -1 at the end of the text. */
  skipToContent(): number {
    while (this.li < this.lines.length) {
      const ind = this.indentOf(this.li);
      if (ind >= 0) {
        if (ind === 0) {
          const line = this.lines[this.li];
          // Document markers and directives are for the yaml package.
          if (line.startsWith("---") || line.startsWith("...") || line.charCodeAt(0) === 0x25) {
            throw BAIL;
          }
        }
        return ind;
      }
      this.li++;
    }
    return -1;
  }

  /** The whole document: a block mapping, a block sequence or nothing. */
  document(): ConfigNode {
    const ind = this.skipToContent();
    if (ind < 0) return null;
    const node = this.blockNode(ind);
    if (this.skipToContent() >= 0) throw BAIL;
    return node;
  }

  /** A block collection whose first entry starts at column `col` of the current line. */
  blockNode(col: number): ConfigNode {
    if (++this.depth > 400) throw BAIL;
    const line = this.lines[this.li];
    let node: ConfigNode;
    if (isSeqIndicator(line, col)) node = this.sequence(col);
    else if (this.keyEnd(line, col) >= 0) node = this.mapping(col);
    else throw BAIL; // a multi-line scalar or something stranger
    this.depth--;
    return node;
  }

  /**
   * When a mapping key starts at `col`, the index of its `:`, else -1. Plain keys only cover
   * the unambiguous cases; quoted keys must be followed by `:`.
   */
  keyEnd(line: string, col: number): number {
    const c = line.charCodeAt(col);
    let i: number;
    if (c === DQUOTE || c === SQUOTE) {
      if (c === DQUOTE) this.doubleQuoted(line, col);
      else this.singleQuoted(line, col);
      i = this.end;
      while (line.charCodeAt(i) === SP) i++;
      if (line.charCodeAt(i) !== COLON) return -1;
      const n = line.charCodeAt(i + 1);
      return i + 1 === line.length || n === SP ? i : -1;
    }
    if (c === DASH || c === QUESTION || c === COLON || badPlainStart(c)) return -1;
    for (i = col + 1; i < line.length; i++) {
      const ch = line.charCodeAt(i);
      if (ch === COLON) {
        if (i + 1 === line.length || line.charCodeAt(i + 1) === SP) return i;
      } else if (ch === HASH && line.charCodeAt(i - 1) === SP) return -1;
    }
    return -1;
  }

  /** A block mapping at indent `ind`; its first key is at column `ind` of the current line. */
  mapping(ind: number): ConfigMap {
    const out: ConfigMap = new Map();
    let first = true;
    for (;;) {
      if (!first) {
        const next = this.skipToContent();
        if (next < ind) return out;
        if (next > ind) throw BAIL;
      }
      first = false;
      const li = this.li;
      const line = this.lines[li];
      const colon = this.keyEnd(line, ind);
      if (colon < 0) {
        // A `- ` line at the mapping's indent ends it (the parent decides), anything else bails.
        if (isSeqIndicator(line, ind)) return out;
        throw BAIL;
      }
      let key: string;
      const c = line.charCodeAt(ind);
      if (c === DQUOTE) key = this.doubleQuoted(line, ind);
      else if (c === SQUOTE) key = this.singleQuoted(line, ind);
      else {
        let e = colon;
        while (line.charCodeAt(e - 1) === SP) e--;
        key = line.slice(ind, e);
        if (key === "<<" || key.length > 1000) throw BAIL;
      }
      if (out.has(key)) throw BAIL; // the yaml package reports duplicates
      let p = colon + 1;
      while (line.charCodeAt(p) === SP) p++;
      if (p === line.length || line.charCodeAt(p) === HASH) {
        // The value is on the following lines, or empty.
        this.li++;
        const next = this.skipToContent();
        if (next > ind || (next === ind && isSeqIndicator(this.lines[this.li], ind))) {
          const vli = this.li;
          out.set(key, this.blockNode(next));
          setPosition(out, key, this.pos(vli, next));
        } else {
          out.set(key, null);
          setPosition(out, key, this.pos(li, p));
        }
      } else {
        out.set(key, this.inlineValue(line, p));
        setPosition(out, key, this.pos(li, p));
        this.li++;
      }
    }
  }

  /** A block sequence at indent `ind`; its first `-` is at column `ind` of the current line. */
  sequence(ind: number): ConfigNode[] {
    const out: ConfigNode[] = [];
    let first = true;
    for (;;) {
      if (!first) {
        const next = this.skipToContent();
        if (next < ind) return out;
        if (next > ind) throw BAIL;
        if (!isSeqIndicator(this.lines[this.li], ind)) return out;
      }
      first = false;
      const li = this.li;
      const line = this.lines[li];
      let p = ind + 1;
      while (line.charCodeAt(p) === SP) p++;
      const i = out.length;
      if (p === line.length || line.charCodeAt(p) === HASH) {
        this.li++;
        const next = this.skipToContent();
        if (next > ind) {
          const vli = this.li;
          out.push(this.blockNode(next));
          setPosition(out, i, this.pos(vli, next));
        } else {
          out.push(null);
          setPosition(out, i, this.pos(li, p));
        }
      } else if (isSeqIndicator(line, p) || this.keyEnd(line, p) >= 0) {
        out.push(this.blockNode(p)); // compact `- - x` or `- key: value`
        setPosition(out, i, this.pos(li, p));
      } else {
        out.push(this.inlineValue(line, p));
        setPosition(out, i, this.pos(li, p));
        this.li++;
      }
    }
  }

  /** A value that starts at `p` and must end on this line (a comment may follow). */
  inlineValue(line: string, p: number): ConfigNode {
    const c = line.charCodeAt(p);
    let v: ConfigNode;
    if (c === DQUOTE) v = this.quoted(this.doubleQuoted(line, p));
    else if (c === SQUOTE) v = this.quoted(this.singleQuoted(line, p));
    else if (c === LBRACKET || c === LBRACE) v = this.flow(line, p);
    else {
      const n = line.charCodeAt(p + 1);
      if ((c === DASH || c === QUESTION || c === COLON) && (p + 1 === line.length || n === SP)) {
        throw BAIL;
      }
      if (badPlainStart(c)) throw BAIL;
      let i = p + 1;
      let e = line.length;
      for (; i < line.length; i++) {
        const ch = line.charCodeAt(i);
        if (ch === COLON) {
          // `a: b: c` is an error (`- b: c` was read as a mapping).
          if (i + 1 === line.length || line.charCodeAt(i + 1) === SP) throw BAIL;
        } else if (ch === HASH && line.charCodeAt(i - 1) === SP) {
          e = i;
          break;
        }
      }
      while (line.charCodeAt(e - 1) === SP) e--;
      const v = this.typer.plain(line.slice(p, e));
      if (v === undefined) throw BAIL;
      return v;
    }
    this.lineEnd(line, this.end);
    return v;
  }

  quoted(s: string): string {
    const v = this.typer.quoted(s);
    if (v === undefined) throw BAIL;
    return v;
  }

  /** After a value: only spaces and a space-separated comment may follow. */
  lineEnd(line: string, i: number): void {
    const start = i;
    while (line.charCodeAt(i) === SP) i++;
    if (i === line.length) return;
    if (line.charCodeAt(i) === HASH && i > start) return;
    throw BAIL;
  }

  /** A double-quoted scalar starting at `p` and closing on this line; sets `end`. */
  doubleQuoted(line: string, p: number): string {
    let out = "";
    let run = p + 1;
    for (let i = p + 1; i < line.length; i++) {
      const ch = line.charCodeAt(i);
      if (ch === DQUOTE) {
        this.end = i + 1;
        return out + line.slice(run, i);
      }
      if (ch === BACKSLASH) {
        out += line.slice(run, i);
        const e = line[i + 1];
        if (e === undefined) throw BAIL; // escaped line break
        const simple = ESCAPES[e];
        if (simple !== undefined) {
          out += simple;
          i += 1;
        } else if (e === "x" || e === "u" || e === "U") {
          const len = e === "x" ? 2 : e === "u" ? 4 : 8;
          const hex = line.substr(i + 2, len);
          if (hex.length !== len || !HEX_RE.test(hex)) throw BAIL;
          const code = parseInt(hex, 16);
          if (code > 0x10ffff) throw BAIL;
          out += String.fromCodePoint(code);
          i += 1 + len;
        } else throw BAIL;
        run = i + 1;
      }
    }
    throw BAIL; // continues on the next line
  }

  /** A single-quoted scalar starting at `p` and closing on this line; sets `end`. */
  singleQuoted(line: string, p: number): string {
    let out = "";
    let run = p + 1;
    for (let i = p + 1; i < line.length; i++) {
      if (line.charCodeAt(i) !== SQUOTE) continue;
      if (line.charCodeAt(i + 1) === SQUOTE) {
        out += line.slice(run, i + 1);
        i++;
        run = i + 1;
        continue;
      }
      this.end = i + 1;
      return out + line.slice(run, i);
    }
    throw BAIL;
  }

  /** A single-line flow sequence or mapping of scalars starting at `p`; sets `end`. */
  flow(line: string, p: number): ConfigNode {
    const isSeq = line.charCodeAt(p) === LBRACKET;
    const close = isSeq ? RBRACKET : RBRACE;
    const seq: ConfigNode[] = [];
    const map: ConfigMap = new Map();
    let i = skipSpaces(line, p + 1);
    if (line.charCodeAt(i) === close) {
      this.end = i + 1;
      return isSeq ? seq : map;
    }
    for (;;) {
      if (isSeq) {
        const at = i;
        seq.push(this.flowScalar(line, i, close));
        setPosition(seq, seq.length - 1, this.pos(this.li, at));
      } else {
        const c = line.charCodeAt(i);
        let key: string;
        if (c === DQUOTE) key = this.doubleQuoted(line, i);
        else if (c === SQUOTE) key = this.singleQuoted(line, i);
        else {
          const start = i;
          this.flowPlainEnd(line, i, close, true);
          key = line.slice(start, this.end);
          if (key === "<<") throw BAIL;
        }
        if (map.has(key)) throw BAIL;
        i = skipSpaces(line, this.end);
        // After a quoted key the `:` may touch the value (`{"a":1}`); after a plain one, no.
        if (line.charCodeAt(i) !== COLON) throw BAIL;
        if (c !== DQUOTE && c !== SQUOTE && line.charCodeAt(i + 1) !== SP) throw BAIL;
        i = skipSpaces(line, i + 1);
        const at = i;
        map.set(key, this.flowScalar(line, i, close));
        setPosition(map, key, this.pos(this.li, at));
      }
      i = skipSpaces(line, this.end);
      const c = line.charCodeAt(i);
      if (c === close) break;
      if (c !== COMMA) throw BAIL;
      i = skipSpaces(line, i + 1);
      if (line.charCodeAt(i) === close) break; // trailing comma
    }
    this.end = i + 1;
    return isSeq ? seq : map;
  }

  /** A scalar inside a flow collection at `i`; sets `end`. */
  flowScalar(line: string, i: number, close: number): Scalar {
    const c = line.charCodeAt(i);
    if (c === DQUOTE) return this.quoted(this.doubleQuoted(line, i));
    if (c === SQUOTE) return this.quoted(this.singleQuoted(line, i));
    this.flowPlainEnd(line, i, close, false);
    const v = this.typer.plain(line.slice(i, this.end));
    if (v === undefined) throw BAIL;
    return v;
  }

  /** Find the end of a plain scalar in a flow collection (trailing spaces excluded). */
  flowPlainEnd(line: string, i: number, close: number, isKey: boolean): void {
    const c = line.charCodeAt(i);
    if (c === DASH || c === QUESTION || c === COLON || badPlainStart(c) || Number.isNaN(c)) {
      throw BAIL;
    }
    let j = i + 1;
    for (; j < line.length; j++) {
      const ch = line.charCodeAt(j);
      if (ch === COMMA || ch === close || (isKey && ch === COLON)) break;
      if (ch === COLON) {
        // `a:b` stays one scalar; `a:` followed by a space or an indicator makes a pair.
        const n = line.charCodeAt(j + 1);
        if (
          n === SP || n === COMMA || n === LBRACKET || n === RBRACKET || n === LBRACE ||
          n === RBRACE || Number.isNaN(n)
        ) throw BAIL;
      } else if (
        ch === HASH || ch === LBRACKET || ch === RBRACKET || ch === LBRACE || ch === RBRACE
      ) throw BAIL;
    }
    if (j === line.length) throw BAIL; // the collection continues on the next line
    while (line.charCodeAt(j - 1) === SP) j--;
    this.end = j;
  }
}

function skipSpaces(line: string, i: number): number {
  while (line.charCodeAt(i) === SP) i++;
  return i;
}

/** True when a block sequence entry (`-` then space or end of line) starts at `col`. */
function isSeqIndicator(line: string, col: number): boolean {
  if (line.charCodeAt(col) !== DASH) return false;
  return col + 1 === line.length || line.charCodeAt(col + 1) === SP;
}

/**
 * Read `text` with the fast block-YAML reader. Returns the tree, or `undefined` when the text
 * is outside the supported subset (or has any error) and must be parsed by the `yaml` package.
 */
export function parseBlockYaml(
  text: string,
  file: string,
  typer: ScalarTyper,
): ConfigNode | undefined {
  if (UNSUPPORTED_CHARS.test(text)) return undefined;
  try {
    return new FastReader(text, file, typer).document();
  } catch (e) {
    if (e === BAIL) return undefined;
    throw e;
  }
}
