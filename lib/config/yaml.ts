/**
 * YAML → config tree with OmegaConf's typing: PyYAML's YAML 1.1 implicit types (`yes`/`on` →
 * true, `010` → 8, `0x10` → 16, `1:30` → 90, `~` → null), OmegaConf's extra float rule (`1e3` →
 * 1000.0), no timestamps (dates stay strings), merge keys `<<`, duplicate keys rejected. The `yaml`
 * package only tokenizes (failsafe schema); every scalar is typed here, so the rules are ours.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Document, Node as YamlNode, Pair, Scalar as YamlScalar } from "yaml";
import { UsageError } from "../errors.ts";
import { GrammarError, parseConfigValue } from "./grammar.ts";
import { type ConfigMap, type ConfigNode, Float, type Scalar, setPosition } from "./tree.ts";
import { parseBlockYaml, type ScalarTyper } from "./yaml_fast.ts";

const BOOL_RE = /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/;
const TRUE_WORDS = new Set(["yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"]);
const PY_FLOAT_RE = new RegExp(
  "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?" +
    "|\\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?" +
    "|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*" +
    "|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN))$",
);
const INT_RE = new RegExp(
  "^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+" +
    "|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
);
const NULL_RE = /^(?:~|null|Null|NULL|)$/;
const OC_FLOAT_RE = new RegExp(
  "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?" +
    "|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)" +
    "|\\.[0-9_]+(?:[eE][-+][0-9]+)?" +
    "|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*" +
    "|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN))$",
);

const FIRST_BOOL = "yYnNtTfFoO";
const FIRST_NUM = "-+0123456789";

/** Sentinel for the `=` scalar, which PyYAML tags as `value` and cannot construct. */
const VALUE_TAG = Symbol("yaml-value-tag");
/** Sentinel for a `<<` merge key. */
const MERGE_TAG = Symbol("yaml-merge-tag");

type Resolved = Scalar | typeof VALUE_TAG | typeof MERGE_TAG;

/** Type one plain (unquoted) scalar the way OmegaConf's YAML loader does. */
function resolvePlain(s: string): Resolved {
  const c = s.length === 0 ? "" : s[0];
  if (FIRST_BOOL.includes(c) && c !== "" && BOOL_RE.test(s)) return TRUE_WORDS.has(s);
  if ((FIRST_NUM.includes(c) || c === ".") && c !== "" && PY_FLOAT_RE.test(s)) {
    return constructFloat(s);
  }
  if (FIRST_NUM.includes(c) && c !== "" && INT_RE.test(s)) return constructInt(s);
  if (s === "<<") return MERGE_TAG;
  if ((c === "" || c === "~" || c === "n" || c === "N") && NULL_RE.test(s)) return null;
  if (s === "=") return VALUE_TAG;
  if ((FIRST_NUM.includes(c) || c === ".") && c !== "" && OC_FLOAT_RE.test(s)) {
    return constructFloat(s);
  }
  return s;
}

/** True when `s` written as a plain (unquoted) YAML scalar reads back as the same string. */
export function plainKeepsString(s: string): boolean {
  return resolvePlain(s) === s;
}

/** Type a plain scalar (exported for tests and for dotlist values). */
export function typePlainScalar(s: string): Scalar {
  const v = resolvePlain(s);
  return typeof v === "symbol" ? s : v;
}

function constructFloat(text: string): Float {
  let v = text.replaceAll("_", "").toLowerCase();
  let sign = 1;
  if (v[0] === "-") sign = -1;
  if (v[0] === "-" || v[0] === "+") v = v.slice(1);
  if (v === ".inf") return new Float(sign * Infinity);
  if (v === ".nan") return new Float(NaN);
  if (v.includes(":")) {
    let total = 0;
    let base = 1;
    for (const part of v.split(":").reverse()) {
      total += Number(part) * base;
      base *= 60;
    }
    return new Float(sign * total);
  }
  const n = Number(v);
  if (Number.isNaN(n)) throw new Error(`invalid float '${text}'`);
  return new Float(sign * n);
}

function intFromBig(b: bigint): number | bigint {
  const n = Number(b);
  return Number.isSafeInteger(n) ? (n === 0 ? 0 : n) : b;
}

function constructInt(text: string): number | bigint {
  let v = text.replaceAll("_", "");
  let neg = false;
  if (v[0] === "-") neg = true;
  if (v[0] === "-" || v[0] === "+") v = v.slice(1);
  let b: bigint;
  if (v === "0") b = 0n;
  else if (v.startsWith("0b")) b = BigInt("0b" + v.slice(2));
  else if (v.startsWith("0x")) b = BigInt("0x" + v.slice(2));
  else if (v[0] === "0") b = BigInt("0o" + v.slice(1));
  else if (v.includes(":")) {
    b = 0n;
    let base = 1n;
    for (const part of v.split(":").reverse()) {
      b += BigInt(part) * base;
      base *= 60n;
    }
  } else b = BigInt(v);
  return intFromBig(neg ? -b : b);
}

/** Type a scalar carrying an explicit `!!tag`, as PyYAML's SafeConstructor would. */
function constructTagged(tag: string, text: string): Scalar {
  switch (tag) {
    case "tag:yaml.org,2002:str":
      return text;
    case "tag:yaml.org,2002:null":
      return null;
    case "tag:yaml.org,2002:bool": {
      const low = text.toLowerCase();
      if (["yes", "true", "on"].includes(low)) return true;
      if (["no", "false", "off"].includes(low)) return false;
      throw new Error(`invalid bool '${text}'`);
    }
    case "tag:yaml.org,2002:int":
      if (!/^[-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|[0-9_]+(?::[0-9_]+)*)$/.test(text)) {
        throw new Error(`invalid int '${text}'`);
      }
      return constructInt(text);
    case "tag:yaml.org,2002:float":
      return constructFloat(text);
    default:
      throw new Error(`unsupported YAML tag '${tag}'`);
  }
}

/** OmegaConf checks interpolation syntax when a value is created; so do we (fail fast). */
function checked<T>(v: T): T {
  if (typeof v === "string" && v.includes("${")) {
    try {
      parseConfigValue(v);
    } catch (e) {
      if (e instanceof GrammarError) throw new Error(`invalid interpolation: ${e.message}`);
      throw e;
    }
  }
  return v;
}

/**
 * Most nodes a document may build through aliases and `<<` merges (an "alias bomb" of a few
 * hundred bytes expands to billions): 100 000, far above what a config repeats by aliases.
 */
export const MAX_ALIAS_EXPANSION = 100_000;

class Builder {
  /** Nodes built inside alias expansions and pairs copied by merges so far. */
  expanded = 0;
  /** > 0 while building the target of an alias. */
  inAlias = 0;
  /** The outermost alias being expanded (where an error points). */
  outerAlias: unknown = undefined;

  constructor(
    readonly doc: Document,
    readonly lc: LineCounter,
    readonly file: string,
  ) {}

  pos(node: YamlNode | null | undefined): { file: string; line: number; col: number } {
    const off = node?.range?.[0] ?? 0;
    const { line, col } = this.lc.linePos(off);
    return { file: this.file, line, col };
  }

  fail(msg: string, node: YamlNode | null | undefined): never {
    throw new UsageError(msg, { location: this.pos(node) });
  }

  /** Count `n` expanded nodes; past MAX_ALIAS_EXPANSION the document is refused. */
  expand(n: number, node: unknown): void {
    this.expanded += n;
    if (this.expanded > MAX_ALIAS_EXPANSION) {
      this.fail(
        `YAML aliases expand to more than ${MAX_ALIAS_EXPANSION} nodes (an alias bomb?)`,
        (this.outerAlias ?? node) as YamlNode,
      );
    }
  }

  build(node: unknown, depth = 0): ConfigNode {
    if (depth > 500) this.fail("YAML nesting too deep (alias loop?)", node as YamlNode);
    if (node === null || node === undefined) return null;
    if (this.inAlias > 0) this.expand(1, node);
    if (isAlias(node)) {
      if (this.inAlias === 0) this.outerAlias = node;
      this.inAlias++;
      try {
        return this.build(node.resolve(this.doc), depth + 1);
      } finally {
        this.inAlias--;
      }
    }
    if (isScalar(node)) return this.scalar(node);
    if (isSeq(node)) {
      if (node.tag && node.tag !== "tag:yaml.org,2002:seq") {
        this.fail(`unsupported YAML tag '${node.tag}'`, node);
      }
      const out: ConfigNode[] = [];
      node.items.forEach((item, i) => {
        out.push(this.build(item, depth + 1));
        setPosition(out, i, this.pos(item as YamlNode));
      });
      return out;
    }
    if (isMap(node)) {
      if (node.tag && node.tag !== "tag:yaml.org,2002:map") {
        this.fail(`unsupported YAML tag '${node.tag}'`, node);
      }
      return this.mapping(node.items as Pair[], depth);
    }
    return this.fail("unsupported YAML node", node as YamlNode);
  }

  /** The key/value pairs of a mapping with `<<` merges flattened, PyYAML's order. */
  flatten(items: Pair[], depth: number): Array<[unknown, unknown]> {
    const merged: Array<[unknown, unknown]> = [];
    const own: Array<[unknown, unknown]> = [];
    for (const pair of items) {
      const k = pair.key;
      if (isScalar(k) && k.type === "PLAIN" && !k.tag && k.source === "<<") {
        let v: unknown = pair.value;
        if (isAlias(v)) v = v.resolve(this.doc);
        if (depth > 500) this.fail("YAML merges nested too deep", v as YamlNode);
        if (isMap(v)) {
          const pairs = this.flatten(v.items as Pair[], depth + 1);
          this.expand(pairs.length, v);
          merged.push(...pairs);
        } else if (isSeq(v)) {
          const subs: Array<Array<[unknown, unknown]>> = [];
          for (let sub of v.items) {
            if (isAlias(sub)) sub = sub.resolve(this.doc);
            if (!isMap(sub)) this.fail("expected a mapping for merging", sub as YamlNode);
            const pairs = this.flatten(sub.items as Pair[], depth + 1);
            this.expand(pairs.length, sub);
            subs.push(pairs);
          }
          for (const s of subs.reverse()) merged.push(...s);
        } else {
          this.fail("expected a mapping or list of mappings for merging", v as YamlNode);
        }
      } else own.push([k, pair.value]);
    }
    return [...merged, ...own];
  }

  mapping(items: Pair[], depth: number): ConfigMap {
    const out: ConfigMap = new Map();
    for (const [k, v] of this.flatten(items, depth)) {
      const kn = isAlias(k) ? k.resolve(this.doc) : k;
      if (!isScalar(kn)) this.fail("only scalar mapping keys are supported", kn as YamlNode);
      const key = String(kn.source ?? kn.value ?? "");
      out.set(key, this.build(v, depth + 1));
      setPosition(out, key, this.pos((v ?? kn) as YamlNode));
    }
    return out;
  }

  scalar(node: YamlScalar): Scalar {
    const text = String(node.source ?? node.value ?? "");
    try {
      if (node.tag && node.tag !== "!") return checked(constructTagged(node.tag, text));
      if (node.type !== "PLAIN" || node.tag === "!") return checked(text);
      const v = checked(resolvePlain(text));
      if (v === VALUE_TAG) {
        throw new Error("'=' is a reserved YAML value; quote it: '='");
      }
      if (v === MERGE_TAG) return text;
      return v;
    } catch (e) {
      if (e instanceof UsageError) throw e;
      return this.fail((e as Error).message, node);
    }
  }
}

/** Scalar typing for the fast reader: the same rules as `Builder.scalar`, errors left to it. */
const FAST_TYPER: ScalarTyper = {
  plain(text: string): Scalar | undefined {
    try {
      const v = checked(resolvePlain(text));
      if (v === VALUE_TAG) return undefined;
      return v === MERGE_TAG ? text : v;
    } catch {
      return undefined;
    }
  },
  quoted(text: string): string | undefined {
    try {
      return checked(text);
    } catch {
      return undefined;
    }
  },
};

/**
 * Parse one YAML document into a config tree. Errors (syntax, duplicate keys, unsupported tags,
 * several documents) are `UsageError`s located at `file:line:col`. An empty document is `null`.
 * Plain block-style files take a fast reader (yaml_fast.ts); anything else, errors included,
 * goes through the `yaml` package, and both give the same tree.
 */
export function parseYaml(text: string, file: string): ConfigNode {
  const fast = parseBlockYaml(text, file, FAST_TYPER);
  return fast !== undefined ? fast : parseYamlWithPackage(text, file);
}

/** The fast reader alone: the tree, or `undefined` when the text needs the `yaml` package. */
export function parseYamlFast(text: string, file: string): ConfigNode | undefined {
  return parseBlockYaml(text, file, FAST_TYPER);
}

/** The `yaml`-package reader alone (exported for the differential tests). */
export function parseYamlWithPackage(text: string, file: string): ConfigNode {
  const lc = new LineCounter();
  const doc = parseDocument(text, {
    schema: "failsafe",
    version: "1.1",
    lineCounter: lc,
    merge: false,
    prettyErrors: false,
  });
  const err = doc.errors[0];
  if (err) {
    const { line, col } = lc.linePos(err.pos[0]);
    if (err.code === "BLOCK_AS_IMPLICIT_KEY" || err.code === "MULTILINE_IMPLICIT_KEY") {
      const over = overIndentedLine(text, line);
      if (over) {
        throw new UsageError(
          `invalid YAML: this line is indented more than the line above, whose key '${over.key}' ` +
            "already has a value",
          {
            location: { file, line: over.line, col: over.col },
            hint: `indent it like the '${over.key}' line, or, to nest it under ${over.key}, ` +
              `leave ${over.key} without a value ('${over.key}:')`,
          },
        );
      }
    }
    const msg = err.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    throw new UsageError(`invalid YAML: ${msg}`, { location: { file, line, col } });
  }
  return new Builder(doc, lc, file).build(doc.contents);
}

/**
 * The yaml package reports an over-indented line (`  steps: 2` then `    batch: 3`) at the value
 * of the line above, as a multi-line key. Find the line that is really wrong: the first content
 * line after `errLine` indented deeper than it, when `errLine` is a `key: value` line.
 */
function overIndentedLine(
  text: string,
  errLine: number,
): { line: number; col: number; key: string } | undefined {
  const lines = text.split("\n");
  const head = /^( *)(?:- +)?([^\s#:][^:#]*?):[ ]+[^\s#]/.exec(lines[errLine - 1] ?? "");
  if (!head) return undefined;
  const indent = head[1].length;
  for (let i = errLine; i < lines.length; i++) {
    const m = /^( *)(\S)/.exec(lines[i]);
    if (!m || m[2] === "#") continue;
    return m[1].length > indent ? { line: i + 1, col: m[1].length + 1, key: head[2] } : undefined;
  }
  return undefined;
}

/**
 * Parse a YAML file whose top level must be a mapping (a config). An empty file is an empty map.
 */
export function parseYamlMapping(text: string, file: string): ConfigMap {
  const v = parseYaml(text, file);
  if (v === null) return new Map();
  if (!(v instanceof Map)) {
    throw new UsageError("a config file must contain a mapping at the top level", {
      location: { file, line: 1, col: 1 },
      hint: "write `key: value` lines",
    });
  }
  return v;
}
