/**
 * The in-memory config tree shared by every lib/config module.
 *
 * Representation (chosen so values round-trip through OmegaConf with their Python types):
 * - mapping → `ConfigMap` (a `Map`, so key order is the file's order even for keys like "1");
 * - sequence → `ConfigList` (an array);
 * - int → `number` (or `bigint` beyond 2^53, Python ints are unbounded);
 * - float → `Float`, a small frozen wrapper, so `1.0` stays a float and is written back as `1.0`;
 * - bool, null, string as themselves. Interpolations (`${…}`) and `???` are plain strings, as in
 *   OmegaConf.
 * Keys are strings (a YAML key written `1:` is the string "1"; OmegaConf would make it an int).
 * Where each value was written (file:line:col) is kept in a side table, see `positionOf`.
 */

/** A YAML/OmegaConf float. `value` may be NaN or ±Infinity. */
export class Float {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
    Object.freeze(this);
  }
  /** Python's `repr(float)`, e.g. `1.0`, `1e-07`, `inf`. */
  toString(): string {
    return pyFloatRepr(this.value);
  }
}

export type Scalar = null | boolean | number | bigint | string | Float;
export type ConfigMap = Map<string, ConfigNode>;
export type ConfigList = ConfigNode[];
export type ConfigNode = Scalar | ConfigMap | ConfigList;
export type Container = ConfigMap | ConfigList;

/** Where a value was written. Lines and columns count from 1. */
export interface Position {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** The source text when it is not a file (a command-line override), for error display. */
  readonly source?: string;
}

const positions = new WeakMap<Container, Map<string | number, Position>>();

/** The place where `container[key]` was written, if known. */
export function positionOf(container: Container, key: string | number): Position | undefined {
  return positions.get(container)?.get(key);
}

/** Record where `container[key]` was written. */
export function setPosition(container: Container, key: string | number, pos: Position): void {
  let m = positions.get(container);
  if (!m) positions.set(container, m = new Map());
  m.set(key, pos);
}

/** Forget where `container[key]` was written (its value was replaced by one of unknown origin). */
export function clearPosition(container: Container, key: string | number): void {
  positions.get(container)?.delete(key);
}

/** True for a mapping node. */
export function isMap(v: unknown): v is ConfigMap {
  return v instanceof Map;
}

/** True for a sequence node. */
export function isList(v: unknown): v is ConfigList {
  return Array.isArray(v);
}

/** True for a mapping or sequence node. */
export function isContainer(v: unknown): v is Container {
  return v instanceof Map || Array.isArray(v);
}

/** True when `v` is a string OmegaConf would treat as an interpolation. */
export function isInterpolation(v: unknown): v is string {
  return typeof v === "string" && v.includes("${");
}

/** OmegaConf's mandatory-missing marker. */
export const MISSING = "???";

/** Deep copy of a tree, positions included. */
export function cloneTree<T extends ConfigNode>(node: T): T {
  if (node instanceof Map) {
    const out: ConfigMap = new Map();
    const pos = positions.get(node);
    for (const [k, v] of node as ConfigMap) out.set(k, cloneTree(v));
    if (pos) positions.set(out, new Map(pos));
    return out as T;
  }
  if (Array.isArray(node)) {
    const out = node.map((v) => cloneTree(v));
    const pos = positions.get(node);
    if (pos) positions.set(out, new Map(pos));
    return out as T;
  }
  return node;
}

/**
 * Split a key path like OmegaConf does: `a.b[0].c` → ["a", "b", "0", "c"]; leading dots give
 * empty segments (`.a` → ["", "a"]).
 */
export function splitKey(key: string): string[] {
  const head = /^(\.)*[^.[]*/.exec(key)![0];
  const tokens = head.split(".");
  if (head.length === key.length) return tokens;
  if (key[head.length] === "[" && tokens[tokens.length - 1] === "") tokens.pop();
  const re = /\.([^.[]*)|\[(.*?)\]/g;
  const rest = key.slice(head.length);
  for (const m of rest.matchAll(re)) tokens.push(m[1] !== undefined ? m[1] : m[2]);
  return tokens;
}

/**
 * The value at a dotted path (`a.b.0`, `a.b[0]`), or undefined when any segment is missing.
 * Interpolations are not followed: this reads the tree as written.
 */
export function getPath(tree: ConfigNode, path: string): ConfigNode | undefined {
  let cur: ConfigNode | undefined = tree;
  for (const seg of path === "" ? [] : splitKey(path)) {
    if (cur instanceof Map) cur = cur.get(seg);
    else if (Array.isArray(cur) && /^\d+$/.test(seg)) cur = cur[Number(seg)];
    else return undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** A JSON-compatible value (what `toPlain` returns). */
export type PlainValue =
  | null
  | boolean
  | number
  | string
  | PlainValue[]
  | { [key: string]: PlainValue };

/**
 * The tree as plain JSON-compatible data, for consumers that do not care about int/float:
 * `Float` → number, `bigint` → number when exact else its decimal string, maps → objects.
 * Note that objects reorder integer-like keys; use the tree itself when order matters.
 */
export function toPlain(node: ConfigNode): PlainValue {
  if (node instanceof Map) {
    const out: { [key: string]: PlainValue } = {};
    for (const [k, v] of node) {
      Object.defineProperty(out, k, {
        value: toPlain(v),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  if (Array.isArray(node)) return node.map(toPlain);
  if (node instanceof Float) return node.value;
  if (typeof node === "bigint") {
    return Number.isSafeInteger(Number(node)) ? Number(node) : node.toString();
  }
  return node;
}

/**
 * Build a tree from plain data (JSON, TOML tables, env.toml profiles). Non-integer numbers
 * become `Float`; integers stay ints. Use `Float` explicitly to get a float with an integral value.
 */
export function fromPlain(value: unknown): ConfigNode {
  if (value === null || value === undefined) return null;
  if (value instanceof Float) return value;
  if (value instanceof Map) {
    const out: ConfigMap = new Map();
    for (const [k, v] of value) out.set(String(k), fromPlain(v));
    return out;
  }
  if (Array.isArray(value)) return value.map(fromPlain);
  if (value instanceof Date) return value.toISOString();
  switch (typeof value) {
    case "boolean":
    case "string":
    case "bigint":
      return value;
    case "number":
      return Number.isInteger(value) ? value : new Float(value);
    case "object": {
      const out: ConfigMap = new Map();
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        out.set(k, fromPlain(v));
      }
      return out;
    }
    default:
      return String(value);
  }
}

/** Python's `repr()` of a float: shortest round-trip digits, Python's exponent rules. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expStr] = x.toExponential().split("e");
  const exp = Number(expStr);
  const neg = mant.startsWith("-");
  const digits = mant.replace("-", "").replace(".", "");
  let out: string;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, "0");
    out = `${m}e${exp < 0 ? "-" : "+"}${e}`;
  } else if (exp < 0) {
    out = `0.${"0".repeat(-exp - 1)}${digits}`;
  } else if (digits.length <= exp + 1) {
    out = `${digits}${"0".repeat(exp + 1 - digits.length)}.0`;
  } else {
    out = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  }
  return neg ? `-${out}` : out;
}

/** Python's `repr()` of a str. */
export function pyStrRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === q) out += "\\" + q;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + q;
}

/** Python's `repr()` of a config value (strings quoted, containers as dict/list literals). */
export function pyRepr(v: ConfigNode): string {
  if (typeof v === "string") return pyStrRepr(v);
  if (v instanceof Map) {
    return "{" + [...v].map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`).join(", ") + "}";
  }
  if (Array.isArray(v)) return "[" + v.map(pyRepr).join(", ") + "]";
  return pyStr(v);
}

/** Python's `str()` of a config value: what string interpolation inserts. */
export function pyStr(v: ConfigNode): string {
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") return v;
  if (v instanceof Float) return pyFloatRepr(v.value);
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  return pyRepr(v);
}
