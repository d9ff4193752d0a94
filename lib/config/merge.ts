/**
 * OmegaConf.merge for untyped configs: mappings merge key by key (existing keys keep their place,
 * new keys are appended), everything else — lists included — is replaced by the source. A `???`
 * in the source never overwrites an existing value. A destination that is a node interpolation
 * (`a: ${b}`) to a mapping is expanded to a copy of that mapping before a mapping is merged in.
 */
import { UsageError } from "../errors.ts";
import { resolveValue } from "./interpolate.ts";
import {
  clearPosition,
  cloneTree,
  type ConfigMap,
  type ConfigNode,
  isInterpolation,
  MISSING,
  positionOf,
  setPosition,
  splitKey,
} from "./tree.ts";

/** Merge `src` into a copy of `dest`; neither input is modified. */
export function mergeConfigs(dest: ConfigMap, ...sources: ConfigMap[]): ConfigMap {
  let out = cloneTree(dest);
  for (const src of sources) out = mergeInto(out, src, out, "");
  return out;
}

/** Merge `src` into `dest` in place (dest must be a fresh copy); returns `dest`. */
function mergeInto(dest: ConfigMap, src: ConfigMap, root: ConfigMap, at: string): ConfigMap {
  for (const [key, sv] of src) {
    const had = dest.has(key);
    const dv = dest.get(key);
    const srcPos = positionOf(src, key);
    if (!had) {
      dest.set(key, cloneTree(sv));
      if (srcPos) setPosition(dest, key, srcPos);
      continue;
    }
    if (sv === MISSING) continue;
    let base: ConfigNode | undefined = dv;
    if (sv instanceof Map) {
      if (isInterpolation(dv)) {
        base = derefNodeInterpolation(dv, root) ??
          (/^\$\{\s*oc\.(create|select)\s*:/.test(dv) ? derefAny(root, `${at}${key}`) : undefined);
      }
      if (base instanceof Map) {
        dest.set(key, mergeInto(base === dv ? base : cloneTree(base), sv, root, `${at}${key}.`));
        continue;
      }
    }
    if ((sv instanceof Map && Array.isArray(base)) || (Array.isArray(sv) && dv instanceof Map)) {
      const [from, to] = sv instanceof Map ? ["a mapping", "a list"] : ["a list", "a mapping"];
      throw new UsageError(`cannot merge ${from} into ${to} at '${at}${key}'`, {
        location: srcPos,
        hint: "OmegaConf cannot merge these either; give the whole value " +
          (Array.isArray(dv) ? "as a list, e.g. key=[1,2]" : "as a mapping"),
      });
    }
    dest.set(key, cloneTree(sv));
    if (srcPos) setPosition(dest, key, srcPos);
    else clearPosition(dest, key);
  }
  return dest;
}

/**
 * `${oc.create:…}` / `${oc.select:…}` (the resolvers whose results are configs, not plain values):
 * the resolved value, if it resolves.
 */
function derefAny(root: ConfigMap, path: string): ConfigNode | undefined {
  try {
    const v = resolveValue(root, path);
    return v instanceof Map ? v : undefined;
  } catch {
    return undefined;
  }
}

/** For `${a.b}` (absolute, no resolver, no nesting) return the mapping it names, if any. */
function derefNodeInterpolation(s: string, root: ConfigMap, depth = 0): ConfigNode | undefined {
  if (depth > 50) return undefined; // a cycle; resolution reports it properly later
  const m = /^\$\{\s*([A-Za-z_][\w\-]*(?:\.[\w\-]+|\[\w+\])*)\s*\}$/.exec(s);
  if (!m) return undefined;
  let cur: ConfigNode | undefined = root;
  for (const seg of splitKey(m[1])) {
    if (cur instanceof Map) cur = cur.get(seg);
    else if (Array.isArray(cur) && /^\d+$/.test(seg)) cur = cur[Number(seg)];
    else return undefined;
  }
  if (isInterpolation(cur)) return derefNodeInterpolation(cur, root, depth + 1);
  return cur;
}
