/**
 * Dotlist overrides (`a.b.c=value`), typed like OmegaConf.from_dotlist: the value is parsed as a
 * YAML document (`a=b=c` keeps `b=c`, `x=` is null, `x=[1,2]` a list), missing keys are created,
 * and the result is merged on top of the config (maps merged, lists replaced) — the way
 * nemotron's original applies `OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))`.
 * Malformed keys are usage errors; Hydra's `+key`/`~key` prefixes are not supported.
 */
import { UsageError } from "../errors.ts";
import { mergeConfigs } from "./merge.ts";
import { type ConfigMap, type ConfigNode, setPosition, splitKey } from "./tree.ts";
import { parseYaml } from "./yaml.ts";

/** One parsed override. */
export interface DotlistOverride {
  readonly key: string;
  readonly path: readonly string[];
  readonly value: ConfigNode;
}

const SEGMENT_RE = /^[^\s=${}]+$/;

/** Parse one `key=value` override; throws `UsageError` with a hint when it is malformed. */
export function parseOverride(item: string): DotlistOverride {
  const eq = item.indexOf("=");
  const key = eq < 0 ? item : item.slice(0, eq);
  const where = { file: "<command line>" };
  if (key.startsWith("~")) {
    throw new UsageError(`override '${item}': removing keys with '~key' is not supported`, {
      location: where,
      hint: `Hydra's ~key syntax is not available; set the value instead, e.g. ${
        key.slice(1) || "key"
      }=null`,
    });
  }
  if (key.startsWith("+")) {
    throw new UsageError(`override '${item}': Hydra's '+key' syntax is not supported`, {
      location: where,
      hint: `write ${key.replace(/^\++/, "")}=${
        eq < 0 ? "VALUE" : item.slice(eq + 1)
      } (new keys are added by a plain key=value)`,
    });
  }
  if (eq < 0) {
    throw new UsageError(`override '${item}' has no '='`, {
      location: where,
      hint: "write key.path=value",
    });
  }
  const path = key === "" ? [""] : splitKey(key);
  if (key.startsWith(".") || path.some((s) => s === "" || !SEGMENT_RE.test(s))) {
    throw new UsageError(`override '${item}' has a malformed key '${key}'`, {
      location: where,
      hint: "keys are dot-separated names like train.train_iters=5 (list items: a.b.0=x)",
    });
  }
  let value: ConfigNode;
  try {
    value = parseYaml(item.slice(eq + 1), `<override ${key}>`);
  } catch (e) {
    throw new UsageError(`override '${item}': the value is not valid YAML`, {
      location: where,
      hint: `quote it, e.g. ${key}='"…"' (${(e as Error).message})`,
    });
  }
  return { key, path, value };
}

/**
 * Build the mapping OmegaConf.from_dotlist would build from `dotlist` (later overrides win,
 * a mapping value is merged into an existing mapping, a scalar on the way is replaced by a map).
 */
export function dotlistToTree(dotlist: readonly string[]): ConfigMap {
  const root: ConfigMap = new Map();
  for (const item of dotlist) {
    const { path, value } = parseOverride(item);
    let cur: ConfigMap = root;
    for (const seg of path.slice(0, -1)) {
      let next = cur.get(seg);
      if (!(next instanceof Map)) {
        next = new Map();
        cur.set(seg, next);
      }
      cur = next;
    }
    const last = path[path.length - 1];
    const existing = cur.get(last);
    if (existing instanceof Map && value instanceof Map) {
      cur.set(last, mergeConfigs(existing, value));
    } else cur.set(last, value);
    setPosition(cur, last, { file: `override '${item}'`, line: 1, col: item.indexOf("=") + 2 });
  }
  return root;
}

/** Apply dotlist overrides to a copy of `tree` (OmegaConf.merge semantics). */
export function applyDotlist(tree: ConfigMap, dotlist: readonly string[]): ConfigMap {
  if (dotlist.length === 0) return tree;
  return mergeConfigs(tree, dotlistToTree(dotlist));
}
