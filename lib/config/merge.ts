/**
 * OmegaConf.merge for untyped configs: mappings merge key by key (existing keys keep their place,
 * new keys are appended), everything else — lists included — is replaced by the source. A `???`
 * in the source never overwrites an existing value. A destination that is a node interpolation
 * (`a: ${b}`) to a mapping is expanded to a copy of that mapping before a mapping is merged in.
 */
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
  for (const src of sources) out = mergeInto(out, src, out);
  return out;
}

/** Merge `src` into `dest` in place (dest must be a fresh copy); returns `dest`. */
function mergeInto(dest: ConfigMap, src: ConfigMap, root: ConfigMap): ConfigMap {
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
    if (sv instanceof Map) {
      let base: ConfigNode | undefined = dv;
      if (isInterpolation(dv)) base = derefNodeInterpolation(dv, root);
      if (base instanceof Map) {
        dest.set(key, mergeInto(base === dv ? base : cloneTree(base), sv, root));
        continue;
      }
    }
    dest.set(key, cloneTree(sv));
    if (srcPos) setPosition(dest, key, srcPos);
    else clearPosition(dest, key);
  }
  return dest;
}

/** For `${a.b}` (absolute, no resolver, no nesting) return the mapping it names, if any. */
function derefNodeInterpolation(s: string, root: ConfigMap): ConfigNode | undefined {
  const m = /^\$\{\s*([A-Za-z_][\w\-]*(?:\.[\w\-]+|\[\w+\])*)\s*\}$/.exec(s);
  if (!m) return undefined;
  let cur: ConfigNode | undefined = root;
  for (const seg of splitKey(m[1])) {
    if (cur instanceof Map) cur = cur.get(seg);
    else if (Array.isArray(cur) && /^\d+$/.test(seg)) cur = cur[Number(seg)];
    else return undefined;
  }
  if (isInterpolation(cur)) return derefNodeInterpolation(cur, root);
  return cur;
}
