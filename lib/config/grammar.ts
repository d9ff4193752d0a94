/**
 * The OmegaConf 2.2 interpolation grammar (`${a.b}`, `${.x}`, `${a[0]}`, `${res:arg,…}`, quoted
 * strings, lists, dicts, escapes), as a small mode-based lexer with ANTLR's longest-match rule
 * and a recursive-descent parser. Only the syntax lives here; evaluation is in interpolate.ts.
 */

/** A syntax error in an interpolation (OmegaConf's GrammarParseError). */
export class GrammarError extends Error {}

type Mode = "DEFAULT" | "VALUE" | "INTER" | "QS" | "QD";
type Action = "push-inter" | "push-value" | "push-qs" | "push-qd" | "pop" | "to-value" | null;
type Tok =
  | "INTER_OPEN"
  | "ANY_STR"
  | "ESC_INTER"
  | "TOP_ESC"
  | "QUOTED_ESC"
  | "ESC"
  | "BRACE_OPEN"
  | "BRACE_CLOSE"
  | "QUOTE_OPEN_SINGLE"
  | "QUOTE_OPEN_DOUBLE"
  | "MATCHING_QUOTE_CLOSE"
  | "COMMA"
  | "BRACKET_OPEN"
  | "BRACKET_CLOSE"
  | "COLON"
  | "FLOAT"
  | "INT"
  | "BOOL"
  | "NULL"
  | "UNQUOTED_CHAR"
  | "ID"
  | "WS"
  | "INTER_CLOSE"
  | "DOT"
  | "INTER_KEY"
  | "EOF";

interface Token {
  readonly type: Tok;
  readonly text: string;
}

type Rule = readonly [RegExp, Tok, Action];

const D = "[0-9]";
const IU = `(?:0|[1-9](?:_?${D})*)`;
const PF = `(?:${IU}?\\.${D}(?:_?${D})*|${IU}\\.)`;
const FLOAT_SRC =
  `[+-]?(?:(?:${PF}|${IU})[eE][+-]?${D}(?:_?${D})*|${PF}|[Ii][Nn][Ff]|[Nn][Aa][Nn])`;
const ID_SRC = "[a-zA-Z_][a-zA-Z0-9_\\-]*";

function r(src: string, type: Tok, action: Action = null): Rule {
  return [new RegExp(src, "y"), type, action];
}

const RULES: Record<Mode, readonly Rule[]> = {
  DEFAULT: [
    r("\\$\\{[ \\t]*", "INTER_OPEN", "push-inter"),
    r("[^$]*[^\\\\$]", "ANY_STR"),
    r("(?:\\\\\\\\)*\\\\\\$\\{", "ESC_INTER"),
    r("(?:\\\\\\\\)+", "TOP_ESC"),
    r("\\\\+", "ANY_STR"),
    r("\\$", "ANY_STR"),
  ],
  VALUE: [
    r("\\$\\{[ \\t]*", "INTER_OPEN", "push-inter"),
    r("\\{[ \\t]*", "BRACE_OPEN", "push-value"),
    r("[ \\t]*\\}", "BRACE_CLOSE", "pop"),
    r("'", "QUOTE_OPEN_SINGLE", "push-qs"),
    r('"', "QUOTE_OPEN_DOUBLE", "push-qd"),
    r("[ \\t]*,[ \\t]*", "COMMA"),
    r("\\[[ \\t]*", "BRACKET_OPEN"),
    r("[ \\t]*\\]", "BRACKET_CLOSE"),
    r("[ \\t]*:[ \\t]*", "COLON"),
    r(FLOAT_SRC, "FLOAT"),
    r(`[+-]?${IU}`, "INT"),
    r("(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])", "BOOL"),
    r("[Nn][Uu][Ll][Ll]", "NULL"),
    r("[/\\-\\\\+.$%*@?|]", "UNQUOTED_CHAR"),
    r(ID_SRC, "ID"),
    r("(?:\\\\\\\\|\\\\[()\\[\\]{}:=, \\t])+", "ESC"),
    r("[ \\t]+", "WS"),
  ],
  INTER: [
    r("\\$\\{[ \\t]*", "INTER_OPEN", "push-inter"),
    r("[ \\t]*:[ \\t]*", "COLON", "to-value"),
    r("[ \\t]*\\}", "INTER_CLOSE", "pop"),
    r("\\.", "DOT"),
    r("\\[", "BRACKET_OPEN"),
    r("\\]", "BRACKET_CLOSE"),
    r(ID_SRC, "ID"),
    r("[^\\\\{}()\\[\\]:. \\t'\"]+", "INTER_KEY"),
  ],
  QS: [
    r("\\$\\{[ \\t]*", "INTER_OPEN", "push-inter"),
    r("'", "MATCHING_QUOTE_CLOSE", "pop"),
    r("[^'$]*[^'\\\\$]", "ANY_STR"),
    r("(?:\\\\\\\\)*\\\\\\$\\{", "ESC_INTER"),
    r("(?:\\\\\\\\)*\\\\'", "ESC"),
    r("(?:\\\\\\\\)+", "QUOTED_ESC"),
    r("\\\\+", "ANY_STR"),
    r("\\$", "ANY_STR"),
  ],
  QD: [
    r("\\$\\{[ \\t]*", "INTER_OPEN", "push-inter"),
    r('"', "MATCHING_QUOTE_CLOSE", "pop"),
    r('[^"$]*[^"\\\\$]', "ANY_STR"),
    r("(?:\\\\\\\\)*\\\\\\$\\{", "ESC_INTER"),
    r('(?:\\\\\\\\)*\\\\"', "ESC"),
    r("(?:\\\\\\\\)+", "QUOTED_ESC"),
    r("\\\\+", "ANY_STR"),
    r("\\$", "ANY_STR"),
  ],
};

/** Tokenize like OmegaConf's ANTLR lexer: longest match, earliest rule on ties. */
function lex(input: string, start: Mode): Token[] {
  const stack: Mode[] = [start];
  const out: Token[] = [];
  let pos = 0;
  while (pos < input.length) {
    const mode = stack[stack.length - 1];
    let best: Rule | undefined;
    let bestLen = 0;
    for (const rule of RULES[mode]) {
      rule[0].lastIndex = pos;
      const m = rule[0].exec(input);
      if (m && m[0].length > bestLen) {
        best = rule;
        bestLen = m[0].length;
      }
    }
    if (!best) {
      throw new GrammarError(`token recognition error at: '${input.slice(pos, pos + 2)}'`);
    }
    out.push({ type: best[1], text: input.slice(pos, pos + bestLen) });
    pos += bestLen;
    switch (best[2]) {
      case "push-inter":
        stack.push("INTER");
        break;
      case "push-value":
        stack.push("VALUE");
        break;
      case "push-qs":
        stack.push("QS");
        break;
      case "push-qd":
        stack.push("QD");
        break;
      case "to-value":
        stack[stack.length - 1] = "VALUE";
        break;
      case "pop":
        if (stack.length === 1) throw new GrammarError("Empty Stack");
        stack.pop();
        break;
    }
  }
  out.push({ type: "EOF", text: "" });
  return out;
}

// ---- AST ----

/** A literal piece of text with its escape class (decides how it is unescaped). */
export interface TextToken {
  readonly t: "tok";
  readonly type: Tok;
  readonly text: string;
}
/** `${a.b}`, `${.x}`, `${a[0]}`, `${${k}}`: key pieces joined at evaluation time. */
export interface NodeInter {
  readonly t: "node";
  readonly pieces: ReadonlyArray<string | Inter>;
  readonly src: string;
}
/** `${name:arg,…}`. */
export interface ResolverInter {
  readonly t: "res";
  readonly name: ReadonlyArray<string | Inter>;
  readonly args: readonly Element[];
  readonly src: string;
}
export type Inter = NodeInter | ResolverInter;
export type Piece = TextToken | Inter;
/** A resolver argument / container item. */
export type Element =
  | { readonly t: "prim"; readonly items: readonly Piece[] }
  | { readonly t: "quoted"; readonly items: readonly Piece[] }
  | { readonly t: "list"; readonly items: readonly Element[] }
  | { readonly t: "dict"; readonly pairs: ReadonlyArray<readonly [readonly Piece[], Element]> }
  | { readonly t: "empty" };

const PRIMITIVE = new Set<Tok>([
  "ID",
  "NULL",
  "INT",
  "FLOAT",
  "BOOL",
  "UNQUOTED_CHAR",
  "COLON",
  "ESC",
  "WS",
  "INTER_OPEN",
]);
const DICT_KEY = new Set<Tok>(["ID", "NULL", "INT", "FLOAT", "BOOL", "UNQUOTED_CHAR", "ESC", "WS"]);
const TEXT = new Set<Tok>(["ANY_STR", "ESC", "ESC_INTER", "TOP_ESC", "QUOTED_ESC"]);

class Parser {
  i = 0;
  constructor(readonly toks: Token[], readonly src: string) {}

  peek(): Token {
    return this.toks[this.i];
  }
  fail(): never {
    const rest = this.toks.slice(this.i).map((t) => t.text).join("");
    throw new GrammarError(
      `no viable alternative at input '${rest || "<EOF>"}' in '${this.src}'`,
    );
  }
  expect(type: Tok): Token {
    const t = this.peek();
    if (t.type !== type) this.fail();
    this.i++;
    return t;
  }

  text(stop: Tok): Piece[] {
    const parts: Piece[] = [];
    for (;;) {
      const t = this.peek();
      if (t.type === "INTER_OPEN") parts.push(this.interpolation());
      else if (TEXT.has(t.type)) {
        parts.push({ t: "tok", type: t.type, text: t.text });
        this.i++;
      } else if (t.type === stop) return parts;
      else this.fail();
    }
  }

  interpolation(): Inter {
    const startTok = this.i;
    this.expect("INTER_OPEN");
    const items: Array<
      { k: "dot" | "open" | "close" | "id" | "key" | "inter"; v: string | Inter }
    > = [];
    for (;;) {
      const t = this.peek();
      if (t.type === "DOT") items.push({ k: "dot", v: "." });
      else if (t.type === "BRACKET_OPEN") items.push({ k: "open", v: "[" });
      else if (t.type === "BRACKET_CLOSE") items.push({ k: "close", v: "]" });
      else if (t.type === "ID") items.push({ k: "id", v: t.text });
      else if (t.type === "INTER_KEY") items.push({ k: "key", v: t.text });
      else if (t.type === "INTER_OPEN") {
        items.push({ k: "inter", v: this.interpolation() });
        continue;
      } else break;
      this.i++;
    }
    const end = this.peek();
    if (end.type === "INTER_CLOSE") {
      this.i++;
      if (!validNodePath(items.map((x) => x.k))) this.fail();
      return { t: "node", pieces: items.map((x) => x.v), src: this.slice(startTok) };
    }
    if (end.type === "COLON") {
      // resolverName: (interpolation | ID) (DOT (interpolation | ID))*
      const ks = items.map((x) => x.k);
      const ok = ks.length > 0 &&
        ks.every((k, j) => j % 2 === 0 ? k === "id" || k === "inter" : k === "dot") &&
        ks.length % 2 === 1;
      if (!ok) this.fail();
      this.i++;
      const args = this.peek().type === "BRACE_CLOSE" ? [] : this.sequence("BRACE_CLOSE");
      this.expect("BRACE_CLOSE");
      return {
        t: "res",
        name: items.filter((x) => x.k !== "dot").map((x) => x.v),
        args,
        src: this.slice(startTok),
      };
    }
    return this.fail();
  }

  slice(from: number): string {
    return this.toks.slice(from, this.i).map((t) => t.text).join("");
  }

  sequence(close: Tok): Element[] {
    const out: Element[] = [];
    let prevComma = true;
    for (;;) {
      const t = this.peek();
      if (t.type === "COMMA") {
        if (prevComma) out.push({ t: "empty" });
        prevComma = true;
        this.i++;
      } else if (t.type === close) break;
      else {
        if (!prevComma) this.fail();
        out.push(this.element());
        prevComma = false;
      }
    }
    if (prevComma) out.push({ t: "empty" });
    return out;
  }

  element(): Element {
    const t = this.peek();
    if (t.type === "QUOTE_OPEN_SINGLE" || t.type === "QUOTE_OPEN_DOUBLE") {
      this.i++;
      const items = this.text("MATCHING_QUOTE_CLOSE");
      this.expect("MATCHING_QUOTE_CLOSE");
      return { t: "quoted", items };
    }
    if (t.type === "BRACKET_OPEN") {
      this.i++;
      const items = this.peek().type === "BRACKET_CLOSE" ? [] : this.sequence("BRACKET_CLOSE");
      this.expect("BRACKET_CLOSE");
      return { t: "list", items };
    }
    if (t.type === "BRACE_OPEN") {
      this.i++;
      const pairs: Array<readonly [Piece[], Element]> = [];
      if (this.peek().type !== "BRACE_CLOSE") {
        for (;;) {
          const key: Piece[] = [];
          while (DICT_KEY.has(this.peek().type)) {
            const k = this.peek();
            key.push({ t: "tok", type: k.type, text: k.text });
            this.i++;
          }
          if (key.length === 0) this.fail();
          this.expect("COLON");
          pairs.push([key, this.element()]);
          if (this.peek().type !== "COMMA") break;
          this.i++;
        }
      }
      this.expect("BRACE_CLOSE");
      return { t: "dict", pairs };
    }
    const items: Piece[] = [];
    while (PRIMITIVE.has(this.peek().type)) {
      const p = this.peek();
      if (p.type === "INTER_OPEN") items.push(this.interpolation());
      else {
        items.push({ t: "tok", type: p.type, text: p.text });
        this.i++;
      }
    }
    if (items.length === 0) this.fail();
    return { t: "prim", items };
  }
}

/** DOT* (key | [key]) (DOT key | [key])* — the shape of a node interpolation. */
function validNodePath(ks: string[]): boolean {
  let j = 0;
  while (ks[j] === "dot") j++;
  const isKey = (k: string | undefined) => k === "id" || k === "key" || k === "inter";
  const step = (first: boolean): boolean => {
    if (ks[j] === "open") {
      if (!isKey(ks[j + 1]) || ks[j + 2] !== "close") return false;
      j += 3;
      return true;
    }
    if (first) {
      if (!isKey(ks[j])) return false;
      j += 1;
      return true;
    }
    if (ks[j] === "dot" && isKey(ks[j + 1])) {
      j += 2;
      return true;
    }
    return false;
  };
  if (!step(true)) return false;
  while (j < ks.length) if (!step(false)) return false;
  return true;
}

const cache = new Map<string, readonly Piece[]>();

/** Parse a config string containing `${` (OmegaConf's `configValue` rule). Cached. */
export function parseConfigValue(s: string): readonly Piece[] {
  let hit = cache.get(s);
  if (hit) return hit;
  const p = new Parser(lex(s, "DEFAULT"), s);
  hit = p.text("EOF");
  p.expect("EOF");
  if (cache.size > 50_000) cache.clear();
  cache.set(s, hit);
  return hit;
}

/** Parse a single element (`oc.decode`'s `singleElement` rule, lexed in value mode). */
export function parseSingleElement(s: string): Element {
  const p = new Parser(lex(s, "VALUE"), s);
  if (p.peek().type === "EOF") p.fail();
  const el = p.element();
  p.expect("EOF");
  return el;
}
