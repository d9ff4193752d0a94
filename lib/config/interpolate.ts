/**
 * Interpolation engine with OmegaConf 2.2 semantics: node interpolations (absolute, relative,
 * list indices, nested keys), string interpolation, escapes, resolvers (`oc.*` built in, custom
 * ones through one registry), and `to_container(resolve=True)`-style resolution of a whole tree.
 *
 * Errors are `InterpolationError`s (a `UsageError`): they name the full key, the interpolation
 * text and the file:line:col where it was written; cycles print the chain; unknown resolvers are
 * named with the available ones.
 */
import { closestMatch, UsageError } from "../errors.ts";
import {
  type Element,
  GrammarError,
  type Inter,
  parseConfigValue,
  parseSingleElement,
  type Piece,
} from "./grammar.ts";
import {
  type ConfigList,
  type ConfigMap,
  type ConfigNode,
  type Container,
  Float,
  isInterpolation,
  MISSING,
  type Position,
  positionOf,
  pyStr,
  splitKey,
} from "./tree.ts";
import { parseYaml } from "./yaml.ts";

/** What a resolver receives besides its arguments. */
export interface ResolverContext {
  /** The container holding the value being resolved (OmegaConf's `_parent_`). */
  readonly parent: Container;
  /** The root of the config (OmegaConf's `_root_`). */
  readonly root: ConfigMap;
  /** Full dotted key of the value being resolved, e.g. `recipe.path`. */
  readonly fullKey: string;
  /** Environment lookup in effect. */
  readonly env: (name: string) => string | undefined;
  /** Resolve a key relative to the root (or to `parent` when it starts with `.`); undefined when absent. */
  select(key: string): ConfigNode | undefined;
}

/**
 * A resolver: typed arguments in, a value out. Returned containers are final values (like a
 * Python dict returned by a resolver) unless the resolver is listed in `configResolvers`.
 */
export type ResolverFn = (args: readonly ConfigNode[], ctx: ResolverContext) => ConfigNode;

/** Name → resolver. Names are dotted (`oc.env`, `art`). */
export type ResolverRegistry = Readonly<Record<string, ResolverFn>>;

/** Options of `resolveTree` / `resolveValue`. */
export interface ResolveOptions {
  /** Custom resolvers (e.g. `art`, `auto_mount`, `manifest`) on top of the built-in `oc.*`. */
  readonly resolvers?: ResolverRegistry;
  /** Environment for `oc.env` (default: the process environment). */
  readonly env?: (name: string) => string | undefined;
  /** A `???` value anywhere in the result is an error (default false: kept as "???"). */
  readonly throwOnMissing?: boolean;
  /**
   * Resolvers whose calls are kept as text (`${art:data,path}`) for the script side to resolve
   * (recipes/nemotron_artifacts.py resolves `art` and `oc.env` where the job runs). Their
   * arguments are resolved first.
   */
  readonly defer?: readonly string[];
  /** Calls of resolvers nobody registered here are kept as text too (the script may know them). */
  readonly deferUnknownResolvers?: boolean;
  /** A node interpolation to a missing key for which this is true is kept as text (`${run.x}`). */
  readonly keepMissing?: (key: string) => boolean;
}

/**
 * Longest string an interpolation may produce (`"${a}${a}…"` fan-outs grow exponentially): 16 MiB,
 * far above any real config value.
 */
export const MAX_RESOLVED_STRING = 16 * 1024 * 1024;

/**
 * Largest resolved config, in units of one value or 64 characters of a string: node
 * interpolations are shared while resolving, but a list of ten `${a}`s of a list of ten … is
 * written out in full, so the size is counted as written.
 */
export const MAX_RESOLVED_UNITS = 1 << 22;

/** An interpolation that cannot be resolved. Exit code 2 like every bad-input error. */
export class InterpolationError extends UsageError {
  /** OmegaConf's error class for the same failure (used by the differential tests). */
  readonly kind: string;
  constructor(kind: string, message: string, location?: Position, hint?: string) {
    super(message, { location, hint });
    this.kind = kind;
  }
}

/** Internal failure raised deep in evaluation; located and wrapped by the session. */
class EvalFailure extends Error {
  constructor(readonly kind: string, message: string, readonly hint?: string) {
    super(message);
  }
}

interface ParentLink {
  readonly parent: Container;
  readonly key: string | number;
}

const IN_PROGRESS = Symbol("in-progress");

/** One resolution of one tree: parent links, memoized values, the cycle stack. */
class Session {
  readonly parents = new WeakMap<Container, ParentLink>();
  /** Containers returned by plain resolvers: values, not configs (never resolved inside). */
  readonly raw = new WeakSet<Container>();
  readonly memo = new Map<Container, Map<string | number, ConfigNode | typeof IN_PROGRESS>>();
  readonly resolvedContainers = new Map<Container, ConfigNode>();
  /** Size (see MAX_RESOLVED_UNITS) of each resolved container, as it would be written. */
  readonly sizes = new WeakMap<Container, number>();
  readonly stack: string[] = [];
  readonly resolvers: ResolverRegistry;
  readonly env: (name: string) => string | undefined;

  constructor(readonly root: ConfigMap, readonly opts: ResolveOptions) {
    this.link(root);
    this.resolvers = { ...builtinResolvers(this), ...(opts.resolvers ?? {}) };
    this.env = opts.env ?? ((n) => Deno.env.get(n));
  }

  /** Record parent links below `c` (and of `c` itself when `parent` is given). */
  link(c: Container, parent?: Container, key?: string | number): void {
    if (parent) this.parents.set(c, { parent, key: key! });
    if (c instanceof Map) {
      for (const [k, v] of c) if (v instanceof Map || Array.isArray(v)) this.link(v, c, k);
    } else {
      c.forEach((v, i) => {
        if (v instanceof Map || Array.isArray(v)) this.link(v, c, i);
      });
    }
  }

  fullKey(c: Container, key?: string | number): string {
    const parts: string[] = key === undefined ? [] : [String(key)];
    let cur: Container | undefined = c;
    while (cur) {
      const link = this.parents.get(cur);
      if (!link) break;
      parts.unshift(String(link.key));
      cur = link.parent;
    }
    return parts.join(".");
  }

  /** The value at `c[key]` with its interpolation (if any) evaluated. Memoized. */
  deref(c: Container, key: string | number): ConfigNode {
    const raw = c instanceof Map ? c.get(key as string) : c[key as number];
    if (raw === undefined || !isInterpolation(raw)) return raw ?? null;
    let m = this.memo.get(c);
    if (!m) this.memo.set(c, m = new Map());
    const hit = m.get(key);
    const name = this.fullKey(c, key);
    if (hit === IN_PROGRESS) {
      const chain = [...this.stack.slice(this.stack.indexOf(name)), name];
      throw new InterpolationError(
        "InterpolationResolutionError",
        `Recursive interpolation detected: ${chain.join(" -> ")}`,
        positionOf(c, key),
        "break the cycle: one of these keys must hold a value, not an interpolation",
      );
    }
    if (hit !== undefined) return hit;
    m.set(key, IN_PROGRESS);
    this.stack.push(name);
    try {
      const v = this.evalString(raw, c, key);
      m.set(key, v);
      return v;
    } catch (e) {
      m.delete(key);
      if (e instanceof InterpolationError) throw e;
      if (e instanceof EvalFailure || e instanceof GrammarError) {
        const kind = e instanceof EvalFailure ? e.kind : "GrammarParseError";
        throw new InterpolationError(
          kind,
          `cannot resolve '${name}: ${raw}': ${e.message}`,
          positionOf(c, key),
          e instanceof EvalFailure ? e.hint : "check the ${…} syntax (OmegaConf 2 grammar)",
        );
      }
      throw e;
    } finally {
      this.stack.pop();
    }
  }

  evalString(s: string, parent: Container, key: string | number): ConfigNode {
    const pieces = parseConfigValue(s);
    if (pieces.length === 1 && pieces[0].t !== "tok") return this.evalInter(pieces[0], parent, key);
    return this.concat(pieces, parent, key, false);
  }

  /** OmegaConf's `_unescape`: concatenate pieces, unescaping where the grammar says so. */
  concat(pieces: readonly Piece[], parent: Container, key: string | number, quoted: boolean) {
    let out = "";
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i];
      if (p.t !== "tok") {
        out += this.str(this.evalInter(p, parent, key));
        if (out.length > MAX_RESOLVED_STRING) throw tooLong();
        continue;
      }
      const next = pieces[i + 1];
      const nextIsInter = next !== undefined && next.t !== "tok";
      if (p.type === "ESC_INTER") out += p.text.slice(-(Math.floor(p.text.length / 2) + 1));
      else if (
        p.type === "ESC" || (p.type === "TOP_ESC" && nextIsInter) ||
        (p.type === "QUOTED_ESC" && (next === undefined || nextIsInter))
      ) out += unescapeOdd(p.text);
      else out += p.text;
    }
    void quoted;
    return out;
  }

  /** Python `str()` of an evaluated value (containers print unresolved, as OmegaConf does). */
  str(v: ConfigNode): string {
    return pyStr(v);
  }

  evalInter(p: Inter, parent: Container, key: string | number): ConfigNode {
    if (p.t === "node") {
      let k = "";
      for (const piece of p.pieces) {
        if (typeof piece === "string") k += piece;
        else {
          const v = this.evalInter(piece, parent, key);
          if (typeof v !== "string") {
            throw new EvalFailure(
              "InterpolationResolutionError",
              `the interpolation ${piece.src} is used as a config key and should give a string, but gave ${
                this.str(v)
              }`,
            );
          }
          k += v;
        }
      }
      const keep = this.opts.keepMissing;
      if (keep && keep(k) && this.select(k, parent, false) === undefined) return `\${${k}}`;
      return this.selectForInterpolation(k, parent);
    }
    let name = "";
    p.name.forEach((piece, i) => {
      let part: string;
      if (typeof piece === "string") part = piece;
      else {
        const v = this.evalInter(piece, parent, key);
        if (typeof v !== "string") {
          throw new EvalFailure(
            "InterpolationResolutionError",
            `the name of a resolver must be a string, but ${piece.src} gave ${this.str(v)}`,
          );
        }
        part = v;
      }
      name += (i ? "." : "") + part;
    });
    const deferred = this.opts.defer?.includes(name) ||
      (this.opts.deferUnknownResolvers === true && !this.resolvers[name]);
    if (deferred) {
      // Literal arguments: the call as written. Arguments with interpolations: resolved here,
      // then written back (plain text only, which the script side can parse).
      if (!p.args.some(hasInterpolation)) return p.src;
      const args = p.args.map((a) => deferredArg(this.evalElement(a, parent, key), name));
      return `\${${name}:${args.join(",")}}`;
    }
    const fn = this.resolvers[name];
    if (!fn) {
      const known = Object.keys(this.resolvers).sort();
      const near = closestMatch(name, known);
      throw new EvalFailure(
        "UnsupportedInterpolationType",
        `Unsupported interpolation type ${name}`,
        `${near ? `did you mean '${near}'? ` : ""}known resolvers: ${known.join(", ")}`,
      );
    }
    const args = p.args.map((a) => this.evalElement(a, parent, key));
    const ctx: ResolverContext = {
      parent,
      root: this.root,
      fullKey: this.fullKey(parent, key),
      env: this.env,
      select: (k) => this.selectValue(k, parent),
    };
    let out: ConfigNode;
    try {
      out = fn(args, ctx);
    } catch (e) {
      if (e instanceof EvalFailure || e instanceof InterpolationError) throw e;
      throw new EvalFailure(
        e instanceof UsageError ? "ResolverError" : (e as Error).name || "Error",
        `${name}: ${(e as Error).message}`,
        e instanceof UsageError ? e.hint : undefined,
      );
    }
    if ((out instanceof Map || Array.isArray(out)) && !this.parents.has(out)) this.raw.add(out);
    return out;
  }

  evalElement(el: Element, parent: Container, key: string | number): ConfigNode {
    switch (el.t) {
      case "empty":
        return "";
      case "quoted":
        if (el.items.length === 1 && el.items[0].t !== "tok") {
          return this.str(this.evalInter(el.items[0], parent, key));
        }
        return this.concat(el.items, parent, key, true);
      case "list":
        return el.items.map((x) => this.evalElement(x, parent, key));
      case "dict": {
        const out: ConfigMap = new Map();
        for (const [k, v] of el.pairs) {
          out.set(this.str(this.primitive(k, parent, key)), this.evalElement(v, parent, key));
        }
        return out;
      }
      case "prim":
        return this.primitive(el.items, parent, key);
    }
  }

  /** OmegaConf's `_createPrimitive`: one token is typed, several are concatenated. */
  primitive(items: readonly Piece[], parent: Container, key: string | number): ConfigNode {
    if (items.length === 1) {
      const p = items[0];
      if (p.t !== "tok") return this.evalInter(p, parent, key);
      switch (p.type) {
        case "NULL":
          return null;
        case "INT": {
          const b = BigInt(p.text.replaceAll("_", ""));
          const n = Number(b);
          return Number.isSafeInteger(n) ? (n === 0 ? 0 : n) : b;
        }
        case "FLOAT":
          return new Float(pyFloat(p.text));
        case "BOOL":
          return p.text.toLowerCase() === "true";
        case "ESC":
          return unescapeOdd(p.text);
        default:
          return p.text;
      }
    }
    return this.concat(items, parent, key, false);
  }

  /** Resolve `key` for a node interpolation written in `self`; errors like OmegaConf's. */
  selectForInterpolation(key: string, self: Container): ConfigNode {
    const found = this.select(key, self, true);
    if (found === undefined) {
      throw new EvalFailure(
        "InterpolationKeyError",
        `Interpolation key '${key}' not found`,
        "check the key path (relative keys start with '.', list items are a.0 or a[0])",
      );
    }
    if (found instanceof Map || Array.isArray(found)) {
      for (let cur: Container | undefined = self; cur; cur = this.parents.get(cur)?.parent) {
        if (cur === found) {
          throw new EvalFailure(
            "InterpolationResolutionError",
            "Interpolation to parent node detected",
            "an interpolation cannot point at a mapping that contains it",
          );
        }
      }
    }
    return found;
  }

  /**
   * Walk `key` from the root (or from `self` for relative keys) dereferencing interpolations on
   * the way. Returns undefined when a key is absent. `strict` raises on `???` and on stepping
   * into a non-container (node interpolations); otherwise those give undefined (`oc.select`).
   */
  select(key: string, self: Container, strict: boolean): ConfigNode | undefined {
    let base: Container = this.root;
    let rest = key;
    if (key.startsWith(".")) {
      base = self;
      rest = key.slice(1);
      while (rest.startsWith(".")) {
        const up = this.parents.get(base)?.parent;
        if (!up) throw new EvalFailure("InterpolationKeyError", `Error resolving key '${key}'`);
        base = up;
        rest = rest.slice(1);
      }
    }
    if (rest === "") return base;
    const segs = splitKey(rest);
    let cur: Container = base;
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i];
      let idx: string | number = seg;
      if (Array.isArray(cur)) {
        if (!/^[-+]?\d+$/.test(seg.trim())) {
          throw new EvalFailure(
            "InterpolationResolutionError",
            `Index '${seg}' (str) is not an int`,
          );
        }
        idx = Number(seg);
        if (idx < 0 || idx >= cur.length) return undefined;
      } else if (!cur.has(seg)) return undefined;
      const raw = cur instanceof Map ? cur.get(seg)! : cur[idx as number];
      if (raw === MISSING) {
        if (!strict) return i === segs.length - 1 ? MISSING : undefined;
        throw new EvalFailure(
          "InterpolationToMissingValueError",
          `MissingMandatoryValue while resolving interpolation: Missing mandatory value: ${
            this.fullKey(cur, idx)
          }`,
          "set it in the config or with a key=value override",
        );
      }
      const v = this.deref(cur, idx);
      if (i === segs.length - 1) return v;
      if (!(v instanceof Map || Array.isArray(v)) || this.raw.has(v)) {
        if (!strict) return undefined;
        throw new EvalFailure(
          "ConfigTypeError",
          `Error trying to access ${rest}: node \`${
            segs.slice(0, i + 1).join(".")
          }\` is not a container and thus cannot contain \`${segs[i + 1]}\``,
        );
      }
      cur = v;
    }
    return cur;
  }

  /** `oc.select` semantics: absent or `???` → undefined. */
  selectValue(key: string, self: Container): ConfigNode | undefined {
    const v = this.select(key, self, false);
    return v === MISSING ? undefined : v;
  }

  /** `to_container(resolve=True)` of one container. Memoized per container. */
  resolveContainer(c: Container): ConfigNode {
    const hit = this.resolvedContainers.get(c);
    if (hit !== undefined) return hit;
    if (this.raw.has(c)) return c;
    let out: ConfigMap | ConfigList;
    if (c instanceof Map) {
      const m: ConfigMap = new Map();
      for (const k of c.keys()) m.set(k, this.resolveChild(c, k));
      out = m;
    } else {
      out = c.map((_, i) => this.resolveChild(c, i));
    }
    let size = 1;
    for (const v of out instanceof Map ? out.values() : out) {
      size += v instanceof Map || Array.isArray(v)
        ? (this.sizes.get(v) ?? 1)
        : typeof v === "string"
        ? 1 + (v.length >> 6)
        : 1;
    }
    if (size > MAX_RESOLVED_UNITS) {
      throw new InterpolationError(
        "ResourceLimit",
        `the resolved config${this.fullKey(c) ? ` at '${this.fullKey(c)}'` : ""} is too large ` +
          `(more than ${MAX_RESOLVED_UNITS} values): interpolations repeat each other`,
        undefined,
        "a config this large is a mistake or a hostile config: check its ${…} references",
      );
    }
    this.sizes.set(out, size);
    this.resolvedContainers.set(c, out);
    return out;
  }

  resolveChild(c: Container, k: string | number): ConfigNode {
    const raw = c instanceof Map ? c.get(k as string)! : c[k as number];
    if (raw === MISSING) {
      if (this.opts.throwOnMissing) {
        throw new InterpolationError(
          "MissingMandatoryValue",
          `missing mandatory value: ${this.fullKey(c, k)} is '???'`,
          positionOf(c, k),
          `set it with ${this.fullKey(c, k)}=VALUE or in the config`,
        );
      }
      return MISSING;
    }
    const v = this.deref(c, k);
    if (v instanceof Map || Array.isArray(v)) return this.resolveContainer(v);
    return v;
  }

  /** Register a container a config-creating resolver made (`oc.create`, `oc.dict.*`). */
  adopt<T extends Container>(c: T, parent: Container): T {
    this.link(c);
    this.parents.set(c, { parent, key: "<created>" });
    return c;
  }
}

function hasInterpolation(el: Element): boolean {
  switch (el.t) {
    case "empty":
      return false;
    case "prim":
    case "quoted":
      return el.items.some((p) => p.t !== "tok");
    case "list":
      return el.items.some(hasInterpolation);
    case "dict":
      return el.pairs.some(([k, v]) => k.some((p) => p.t !== "tok") || hasInterpolation(v));
  }
}

function tooLong(): EvalFailure {
  return new EvalFailure(
    "ResourceLimit",
    `the resolved value is longer than ${MAX_RESOLVED_STRING / 1024 / 1024} MiB ` +
      "(interpolations that repeat each other grow exponentially)",
    "a config value this large is a mistake or a hostile config: check the interpolations it uses",
  );
}

/** An argument of a deferred resolver call, written back as text the script side can parse. */
function deferredArg(v: ConfigNode, name: string): string {
  const text = v === null ? "null" : pyStr(v);
  if (/[,{}'"\\]|\$\{/.test(text) || text !== text.trim()) {
    throw new EvalFailure(
      "InterpolationResolutionError",
      `the argument ${JSON.stringify(text)} of ${name} cannot be passed on to the script`,
      `${name} is resolved where the job runs; give it plain arguments (no , { } quotes or \\)`,
    );
  }
  return text;
}

function unescapeOdd(s: string): string {
  let out = "";
  for (let i = 1; i < s.length; i += 2) out += s[i];
  return out;
}

/** Python `float()` of a grammar FLOAT token. */
function pyFloat(text: string): number {
  const t = text.replaceAll("_", "").toLowerCase();
  if (/^[+-]?inf$/.test(t)) return t.startsWith("-") ? -Infinity : Infinity;
  if (/^[+-]?nan$/.test(t)) return NaN;
  return Number(t);
}

function deepCopyPlain(v: ConfigNode): ConfigNode {
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, deepCopyPlain(x)]));
  if (Array.isArray(v)) return v.map(deepCopyPlain);
  return v;
}

/** OmegaConf's built-in `oc.*` resolvers, bound to one session. */
function builtinResolvers(s: Session): Record<string, ResolverFn> {
  const argCount = (name: string, args: readonly ConfigNode[], min: number, max: number) => {
    if (args.length < min || args.length > max) {
      throw new EvalFailure(
        "InterpolationResolutionError",
        `${name} takes ${min === max ? min : `${min} to ${max}`} argument(s), got ${args.length}`,
      );
    }
  };
  const dictInput = (name: string, key: ConfigNode, ctx: ResolverContext): ConfigMap => {
    if (typeof key !== "string") {
      throw new EvalFailure(
        "InterpolationResolutionError",
        `\`${name}\` requires a string as input, but obtained \`${pyStr(key)}\``,
      );
    }
    const v = s.select(key, ctx.parent, false);
    if (v === undefined) throw new EvalFailure("ConfigKeyError", `Key not found: '${key}'`);
    if (v === MISSING) {
      throw new EvalFailure("MissingMandatoryValue", `missing node selected: '${key}'`);
    }
    if (!(v instanceof Map) || s.raw.has(v)) {
      throw new EvalFailure(
        "InterpolationResolutionError",
        `\`${name}\` cannot be applied to objects of type: ${
          Array.isArray(v) ? "ListConfig" : typeof v
        }`,
      );
    }
    return v;
  };
  return {
    "oc.env": (args, ctx) => {
      argCount("oc.env", args, 1, 2);
      const [name, dflt] = args;
      if (typeof name !== "string") {
        throw new EvalFailure(
          "InterpolationResolutionError",
          "oc.env: the variable name must be a string",
        );
      }
      const v = ctx.env(name);
      if (v !== undefined) return v;
      if (args.length === 2) return dflt === null ? null : pyStr(dflt);
      throw new EvalFailure(
        "InterpolationResolutionError",
        `Environment variable '${name}' not found`,
        `export ${name}=… or give a default: \${oc.env:${name},DEFAULT}`,
      );
    },
    "oc.select": (args, ctx) => {
      argCount("oc.select", args, 1, 2);
      const [key, dflt] = args;
      if (typeof key !== "string") {
        throw new EvalFailure(
          "InterpolationResolutionError",
          "oc.select: the key must be a string",
        );
      }
      const v = s.selectValue(key, ctx.parent);
      if (v === undefined) {
        return args.length === 2 ? dflt : (s.select(key, ctx.parent, false) ?? null);
      }
      return v;
    },
    "oc.decode": (args, ctx) => {
      argCount("oc.decode", args, 1, 1);
      const [expr] = args;
      if (expr === null) return null;
      if (typeof expr !== "string") {
        throw new EvalFailure(
          "InterpolationResolutionError",
          `\`oc.decode\` can only take strings or None as input, but \`${
            pyStr(expr)
          }\` is not a string`,
        );
      }
      return s.evalElement(parseSingleElement(expr), ctx.parent, "<decode>");
    },
    "oc.create": (args, ctx) => {
      argCount("oc.create", args, 1, 1);
      let [obj] = args;
      if (typeof obj === "string") obj = parseYaml(obj, "<oc.create>") ?? new Map();
      if (!(obj instanceof Map || Array.isArray(obj))) {
        throw new EvalFailure(
          "InterpolationResolutionError",
          `oc.create: cannot create a config from ${pyStr(obj)}`,
        );
      }
      const copy = deepCopyPlain(obj) as Container;
      return s.adopt(copy, ctx.parent);
    },
    "oc.dict.keys": (args, ctx) => {
      argCount("oc.dict.keys", args, 1, 1);
      const d = dictInput("oc.dict.keys", args[0], ctx);
      return s.adopt([...d.keys()], ctx.parent);
    },
    "oc.dict.values": (args, ctx) => {
      argCount("oc.dict.values", args, 1, 1);
      const d = dictInput("oc.dict.values", args[0], ctx);
      let key = args[0] as string;
      if (key.startsWith(".")) key = `.${key}`;
      return s.adopt([...d.keys()].map((k) => `\${${key}.${k}}`), ctx.parent);
    },
  };
}

/**
 * Resolve every interpolation of `tree` (OmegaConf.to_container(cfg, resolve=True)): returns a new
 * tree with no `${…}` left (escaped `\${` become literal `${`). `???` values are kept unless
 * `opts.throwOnMissing`. Throws `InterpolationError` (exit 2) on the first failure.
 *
 * env_toml.ts uses this to resolve a profile table:
 * `resolveTree(fromPlain(table), { env: (n) => Deno.env.get(n) })`.
 */
export function resolveTree(tree: ConfigMap, opts: ResolveOptions = {}): ConfigMap {
  const s = new Session(tree, opts);
  return s.resolveContainer(tree) as ConfigMap;
}

/**
 * Resolve the single value at `path` of `tree` (containers are resolved inside). Throws
 * `InterpolationError` when it cannot be resolved, `UsageError` when `path` does not exist.
 */
export function resolveValue(tree: ConfigMap, path: string, opts: ResolveOptions = {}): ConfigNode {
  const s = new Session(tree, opts);
  if (path === "") return s.resolveContainer(tree);
  let v: ConfigNode | undefined;
  try {
    v = s.select(path, tree, true);
  } catch (e) {
    if (e instanceof EvalFailure) {
      throw new InterpolationError(e.kind, `${path}: ${e.message}`, undefined, e.hint);
    }
    throw e;
  }
  if (v === undefined) throw new UsageError(`key '${path}' not found in the config`);
  return v instanceof Map || Array.isArray(v) ? s.resolveContainer(v) : v;
}

/**
 * Resolve one string against a context tree (e.g. a template value), with the same rules as a
 * value written at the top level of `tree`.
 */
export function resolveString(s: string, tree: ConfigMap, opts: ResolveOptions = {}): ConfigNode {
  const probe: ConfigMap = new Map(tree);
  probe.set("\u0000probe", s);
  return resolveValue(probe, "\u0000probe", opts);
}
