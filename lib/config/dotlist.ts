/**
 * Command-line overrides with Hydra's rule (https://hydra.cc/docs/advanced/override_grammar/basic/,
 * and Hydra's `ConfigLoaderImpl._apply_overrides_to_config`, which runs on a struct-mode config):
 *
 * - `a.b=v` overrides a key that exists; a key that does not exist is an error (`did you mean`);
 * - `+a.b=v` adds a key; an error when it already holds a non-null value (a mapping or list value
 *   is merged into it instead, as Hydra does);
 * - `++a.b=v` adds or overrides;
 * - `~a.b` deletes a key, `~a.b=v` only when its value is `v`; deleting a key that does not exist
 *   (or holds null, as Hydra sees it) is an error.
 *
 * Values are typed like `OmegaConf.from_dotlist` (the text after the first `=` is a YAML document:
 * `x=` is null, `x=[1,2]` a list, `a=b=c` keeps `b=c`). A mapping value is merged into an existing
 * mapping (with `a.b=…` its keys must exist too), anything else replaces.
 *
 * Exempt from "must exist": `run.env.*` and `run.wandb.*`, the execution settings nemotron fills
 * from the env.toml profile and `[wandb]` when the job config is built (`run.env.nodes=2` works
 * with a config that has no `run.env`). Every other `run.*` key (artifact references such as
 * `run.data`) follows the rule: recipes declare them in their YAML.
 */
import { closestMatch, UsageError } from "../errors.ts";
import { resolveValue } from "./interpolate.ts";
import { mergeConfigs } from "./merge.ts";
import {
  cloneTree,
  type ConfigMap,
  type ConfigNode,
  type Container,
  Float,
  isInterpolation,
  MISSING,
  pyStr,
  setPosition,
  splitKey,
} from "./tree.ts";
import { parseYaml } from "./yaml.ts";

/** What an override does: `key=v`, `+key=v`, `++key=v`, `~key[=v]`. */
export type OverrideOp = "set" | "add" | "force" | "delete";

/** One parsed override. */
export interface DotlistOverride {
  readonly op: OverrideOp;
  /** The key as written, without the `+`/`++`/`~` prefix. */
  readonly key: string;
  readonly path: readonly string[];
  /** The value; `undefined` only for `~key` without `=`. */
  readonly value: ConfigNode | undefined;
  /** The override as typed. */
  readonly text: string;
}

const SEGMENT_RE = /^[^\s=${}]+$/;

/** Where an override error points: the override itself, shown with a caret under `col`. */
function at(item: string, col = 1) {
  return { file: "<command line>", col, source: item };
}

/** Parse one override; throws `UsageError` with a hint when it is malformed. */
export function parseOverride(item: string): DotlistOverride {
  const prefix = /^(\+\+|\+|~)/.exec(item)?.[1] ?? "";
  const op: OverrideOp = prefix === "++"
    ? "force"
    : prefix === "+"
    ? "add"
    : prefix === "~"
    ? "delete"
    : "set";
  const body = item.slice(prefix.length);
  const eq = body.indexOf("=");
  const key = eq < 0 ? body : body.slice(0, eq);
  if (eq < 0 && op !== "delete") {
    throw new UsageError(`override '${item}' has no '='`, {
      location: at(item, item.length + 1),
      hint: "write key.path=value (+key=value adds a key, ~key deletes one)",
    });
  }
  const path = key === "" ? [""] : splitKey(key);
  if (
    /^[+~]/.test(key) || key.startsWith(".") || path.some((s) => s === "" || !SEGMENT_RE.test(s))
  ) {
    throw new UsageError(`override '${item}' has a malformed key '${key}'`, {
      location: at(item, prefix.length + 1),
      hint: "keys are dot-separated names like train.steps=5 (list items: a.b.0=x); " +
        "prefixes: +key=v adds, ++key=v adds or overrides, ~key deletes",
    });
  }
  if (eq < 0) return { op, key, path, value: undefined, text: item };
  let value: ConfigNode;
  try {
    value = parseYaml(body.slice(eq + 1), `<override ${key}>`);
  } catch (e) {
    throw new UsageError(`override '${item}': the value is not valid YAML`, {
      location: at(item, prefix.length + eq + 2),
      hint: `quote it, e.g. ${prefix}${key}='"…"' (${(e as Error).message})`,
    });
  }
  return { op, key, path, value, text: item };
}

/** True for keys nemotron fills from env.toml when it builds the job config (see module doc). */
export function isExemptOverrideKey(path: readonly string[]): boolean {
  return path.length >= 2 && path[0] === "run" && (path[1] === "env" || path[1] === "wandb");
}

/** How `applyDotlist` treats the overrides. */
export interface ApplyDotlistOptions {
  /**
   * Apply overrides that were already checked on this config's base (the job config is the config
   * plus `run` provenance, and the dotlist is applied again so the command line beats env.toml):
   * `key=v` and `+key=v` then act as `++key=v`, and `~key` deletes only when the key is there.
   */
  readonly reapply?: boolean;
}

/**
 * Apply overrides to a copy of `tree` with Hydra's rule (module doc). Throws `UsageError` (exit 2)
 * for an unknown key (with `did you mean`), an existing key given with `+`, a missing key given
 * with `~`, and a path through a non-container.
 */
export function applyDotlist(
  tree: ConfigMap,
  dotlist: readonly string[],
  opts: ApplyDotlistOptions = {},
): ConfigMap {
  if (dotlist.length === 0) return tree;
  const root = cloneTree(tree);
  for (const item of dotlist) applyOverride(root, parseOverride(item), opts.reapply === true);
  return root;
}

/**
 * `OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))`: missing keys are created, mappings
 * merged, everything else replaced. Plain `key=value` items only. This is what nemotron's Python
 * original does (reference §1.2); the CLI uses Hydra's stricter `applyDotlist`. Kept for the
 * differential tests against OmegaConf and for callers that build new trees from key=value pairs.
 */
export function mergeDotlist(tree: ConfigMap, dotlist: readonly string[]): ConfigMap {
  if (dotlist.length === 0) return tree;
  const src: ConfigMap = new Map();
  for (const item of dotlist) {
    const o = parseOverride(item);
    if (o.op !== "set") {
      throw new UsageError(`override '${item}': +, ++ and ~ prefixes are not allowed here`);
    }
    let cur: ConfigMap = src;
    for (const seg of o.path.slice(0, -1)) {
      let next = cur.get(seg);
      if (!(next instanceof Map)) cur.set(seg, next = new Map());
      cur = next;
    }
    const last = o.path[o.path.length - 1];
    const existing = cur.get(last);
    if (existing instanceof Map && o.value instanceof Map) {
      cur.set(last, mergeConfigs(existing, o.value));
    } else cur.set(last, o.value!);
    setPosition(cur, last, {
      file: "<command line>",
      line: 1,
      col: item.indexOf("=") + 2,
      source: item,
    });
  }
  return mergeConfigs(tree, src);
}

/** The result of walking an override's path. */
interface Located {
  /** Container holding the last segment, when every segment before it exists. */
  readonly parent?: Container;
  /** The value at the path (undefined when absent). */
  readonly value?: ConfigNode;
  /** Index of the first segment that does not exist (or -1). */
  readonly missingAt: number;
  /** Index of a segment whose value is not a container but has segments after it (or -1). */
  readonly scalarAt: number;
}

function childOf(c: Container, seg: string): { has: boolean; value?: ConfigNode } {
  if (c instanceof Map) return c.has(seg) ? { has: true, value: c.get(seg) } : { has: false };
  if (!/^\d+$/.test(seg) || Number(seg) >= c.length) return { has: false };
  return { has: true, value: c[Number(seg)] };
}

function locate(root: ConfigMap, path: readonly string[]): Located {
  let cur: Container = root;
  for (let i = 0; i < path.length; i++) {
    const child = childOf(cur, path[i]);
    if (!child.has) {
      return { missingAt: i, scalarAt: -1, parent: i === path.length - 1 ? cur : undefined };
    }
    if (i === path.length - 1) {
      return { parent: cur, value: child.value, missingAt: -1, scalarAt: -1 };
    }
    const v = child.value!;
    if (!(v instanceof Map || Array.isArray(v))) return { missingAt: -1, scalarAt: i };
    cur = v;
  }
  return { parent: undefined, value: root, missingAt: -1, scalarAt: -1 };
}

function keysOf(c: ConfigNode | undefined): string[] {
  if (c instanceof Map) return [...c.keys()];
  if (Array.isArray(c)) return c.map((_, i) => String(i));
  return [];
}

/** `did you mean a.c?` for the first missing segment of `path`. */
function suggestion(root: ConfigMap, path: readonly string[], missingAt: number): string {
  let cur: ConfigNode = root;
  for (let i = 0; i < missingAt; i++) cur = childOf(cur as Container, path[i]).value!;
  const near = closestMatch(path[missingAt], keysOf(cur));
  if (near === undefined) return "";
  return ` Did you mean ${
    [...path.slice(0, missingAt), near, ...path.slice(missingAt + 1)].join(".")
  }?`;
}

/** Column (1-based) of segment `i` of the override's key, for the caret. */
function segmentCol(o: DotlistOverride, i: number): number {
  const prefix = o.text.length - o.text.replace(/^(\+\+|\+|~)/, "").length;
  const before = o.path.slice(0, i).join(".");
  const col = prefix + (i > 0 ? before.length + 1 : 0) + 1;
  return o.text.slice(prefix).startsWith(before) ? col : prefix + 1;
}

function describe(v: ConfigNode): string {
  if (v instanceof Map) return "a mapping";
  if (Array.isArray(v)) return "a list";
  return `the value ${pyStr(v)}`;
}

/** Set `path` to `value`, creating mappings on the way (Hydra's `force_add`). */
function forceSet(root: ConfigMap, o: DotlistOverride, value: ConfigNode): void {
  let cur: Container = root;
  for (let i = 0; i < o.path.length - 1; i++) {
    const seg = o.path[i];
    const child = childOf(cur, seg);
    if (child.has && (child.value instanceof Map || Array.isArray(child.value))) {
      cur = child.value;
      continue;
    }
    // A scalar on the way is replaced by a mapping (OmegaConf.update with force_add does so).
    const next: ConfigMap = new Map();
    if (Array.isArray(cur)) {
      if (!child.has) throw listIndexError(o, i);
      cur[Number(seg)] = next;
    } else cur.set(seg, next);
    cur = next;
  }
  const last = o.path[o.path.length - 1];
  const pos = {
    file: "<command line>",
    line: 1,
    col: o.text.indexOf("=") + 2,
    source: o.text,
  };
  if (Array.isArray(cur)) {
    if (!childOf(cur, last).has) throw listIndexError(o, o.path.length - 1);
    cur[Number(last)] = mergedValue(o, cur[Number(last)], value);
    setPosition(cur, Number(last), pos);
    return;
  }
  cur.set(last, mergedValue(o, cur.get(last), value));
  setPosition(cur, last, pos);
}

function listIndexError(o: DotlistOverride, i: number): UsageError {
  const list = o.path.slice(0, i).join(".");
  return new UsageError(
    `override '${o.text}': '${o.path[i]}' is not an index of the list '${list}'`,
    {
      location: at(o.text),
      hint:
        `list items are addressed by index (${list}.0 …); to change its length give the whole ` +
        `list: ${list}=[…]`,
    },
  );
}

/**
 * OmegaConf.update(merge=True): a mapping merges into a mapping, a list and a mapping cannot be
 * merged, anything else replaces.
 */
function mergedValue(
  o: DotlistOverride,
  existing: ConfigNode | undefined,
  value: ConfigNode,
): ConfigNode {
  if (existing instanceof Map && value instanceof Map) return mergeConfigs(existing, value);
  if (
    (existing instanceof Map && Array.isArray(value)) ||
    (Array.isArray(existing) && value instanceof Map)
  ) {
    const [what, into] = value instanceof Map ? ["a mapping", "list"] : ["a list", "mapping"];
    throw new UsageError(
      `override '${o.text}': cannot merge ${what} into the ${into} '${o.key}'`,
      {
        location: at(o.text),
        hint: `delete it first (~${o.key}) and add the new value (+${o.key}=…)`,
      },
    );
  }
  return cloneTree(value);
}

/** With `a.b={…}` (struct mode) every key of the mapping must exist in the mapping it merges into. */
function checkKeysExist(
  o: DotlistOverride,
  existing: ConfigNode | undefined,
  value: ConfigNode,
  path: readonly string[],
): void {
  if (!(existing instanceof Map && value instanceof Map) || isExemptOverrideKey(path)) return;
  for (const [k, v] of value) {
    const sub = [...path, k];
    if (isExemptOverrideKey(sub)) continue;
    if (!existing.has(k)) {
      const near = closestMatch(k, [...existing.keys()]);
      throw new UsageError(
        `override '${o.text}': key '${sub.join(".")}' is not in the config.${
          near ? ` Did you mean ${[...path, near].join(".")}?` : ""
        }`,
        {
          location: at(o.text),
          hint: `to add keys write +${o.text} (Hydra's rule; ++ adds or overrides)`,
        },
      );
    }
    checkKeysExist(o, existing.get(k), v, sub);
  }
}

/** Python `==` for config values (1 == 1.0, mappings by keys and values). */
function sameValue(a: ConfigNode, b: ConfigNode): boolean {
  const num = (x: ConfigNode) =>
    x instanceof Float ? x.value : typeof x === "number" || typeof x === "bigint" ? Number(x) : x;
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !sameValue(v, b.get(k)!)) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((x, i) => sameValue(x, b[i]));
  }
  return num(a) === num(b);
}

/** The value of an existing key as Hydra's `OmegaConf.select` sees it (interpolations resolved). */
function selected(root: ConfigMap, o: DotlistOverride, value: ConfigNode | undefined) {
  if (value === MISSING) return null; // select(throw_on_missing=False) gives None for ???
  if (!isInterpolation(value)) return value;
  try {
    return resolveValue(root, o.key);
  } catch {
    return value; // unresolvable here: it exists, which is all the checks below need
  }
}

function applyOverride(root: ConfigMap, o: DotlistOverride, reapply: boolean): void {
  const op: OverrideOp = reapply && o.op !== "delete" ? "force" : o.op;
  const found = locate(root, o.path);
  const exempt = isExemptOverrideKey(o.path);
  if (found.scalarAt >= 0 && op !== "force" && op !== "add") {
    const bad = o.path.slice(0, found.scalarAt + 1).join(".");
    throw new UsageError(
      `override '${o.text}': '${bad}' is not a mapping (it holds ${
        describe(locate(root, o.path.slice(0, found.scalarAt + 1)).value!)
      }), so '${o.key}' does not exist`,
      { location: at(o.text), hint: `override ${bad} itself` },
    );
  }
  const exists = found.missingAt < 0 && found.scalarAt < 0;
  switch (op) {
    case "set": {
      if (!exists && !exempt) {
        throw new UsageError(
          `override '${o.text}': key '${o.key}' is not in the config.${
            suggestion(root, o.path, found.missingAt)
          }`,
          {
            location: at(o.text, segmentCol(o, found.missingAt)),
            hint: `to add a new key write +${o.text} (Hydra's rule; ++${o.text} adds or overrides)`,
          },
        );
      }
      if (exists) checkKeysExist(o, found.value, o.value!, o.path);
      forceSet(root, o, o.value!);
      return;
    }
    case "add": {
      const current = exists ? selected(root, o, found.value) : undefined;
      const isContainerValue = o.value instanceof Map || Array.isArray(o.value);
      if (current !== undefined && current !== null && !isContainerValue) {
        throw new UsageError(
          `override '${o.text}': '${o.key}' is already in the config (${describe(current)})`,
          {
            location: at(o.text),
            hint: `to override it write ${o.text.slice(1)}, or +${o.text} to add or override`,
          },
        );
      }
      forceSet(root, o, o.value!);
      return;
    }
    case "force":
      forceSet(root, o, o.value!);
      return;
    case "delete": {
      const current = exists ? selected(root, o, found.value) : undefined;
      if (current === undefined || current === null) {
        // run.env.* / run.wandb.* may come from env.toml: deleted from the job config (reapply).
        if (reapply || (exempt && current === undefined)) return;
        throw new UsageError(
          `override '${o.text}': cannot delete '${o.key}': ${
            current === null
              ? "its value is null (Hydra treats that as absent)"
              : "it is not in the config."
          }${
            current === undefined && found.missingAt >= 0
              ? suggestion(root, o.path, found.missingAt)
              : ""
          }`,
          { location: at(o.text), hint: "check the key path (config show prints the config)" },
        );
      }
      // `~key=null` is `~key` for Hydra (no value to compare).
      if (!reapply && o.value !== undefined && o.value !== null && !sameValue(current, o.value)) {
        throw new UsageError(
          `override '${o.text}': cannot delete '${o.key}': its value is ${pyStr(current)}, not ${
            pyStr(o.value)
          }`,
          { location: at(o.text), hint: `write ~${o.key} to delete it whatever its value` },
        );
      }
      const parent = found.parent!;
      const last = o.path[o.path.length - 1];
      if (parent instanceof Map) parent.delete(last);
      else parent.splice(Number(last), 1);
      return;
    }
  }
}
