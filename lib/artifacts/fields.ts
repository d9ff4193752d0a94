/**
 * `${art:NAME,FIELD}` lookups (reference §1.6). The config engine's `art` resolver receives one of
 * the lookup functions made here; this module owns what a field means.
 *
 * FIELD (default `path`):
 * - `metadata.X`: key X of the version's metadata.json;
 * - an info field: `path`, `version` (the string `vN`), `name`, `type`, `qualified_name`, `created_at`, `storage`,
 *   `iteration` (the latter only when the metadata has one);
 * - else a top-level key of metadata.json, else a key of a nested `metadata` map in it.
 * Values keep their JSON type.
 */
import { didYouMean, UsageError } from "../errors.ts";
import { isArtifactReference } from "./ref.ts";
import { type ArtifactRegistry, type Manifest, qualifiedName } from "./registry.ts";

/** What the config engine calls for `${art:KEY,FIELD}`. */
export type ArtFieldLookup = (ref: string, field: string) => unknown;

/** The value of `field` for one resolved version. */
export function artifactField(
  registry: ArtifactRegistry,
  manifest: Manifest,
  field: string,
): unknown {
  const metadata = registry.metadata(manifest);
  const nested = isRecord(metadata.metadata) ? metadata.metadata : {};
  const info: Record<string, unknown> = {
    path: manifest.path,
    // "v5", as the original gives it (W&B's artifact.version), so `ckpt_${art:data,version}` is
    // `ckpt_v5`; the manifest keeps the number.
    version: `v${manifest.version}`,
    name: manifest.name,
    type: manifest.type,
    qualified_name: qualifiedName(manifest),
    created_at: manifest.created_at,
    storage: manifest.storage,
  };
  if ("iteration" in metadata) info.iteration = metadata.iteration;
  const f = field === "" ? "path" : field;
  if (f.startsWith("metadata.")) {
    const key = f.slice("metadata.".length);
    if (key in metadata) return metadata[key];
    throw new UsageError(
      `artifact ${qualifiedName(manifest)} has no metadata field '${key}'.${
        didYouMean(key, Object.keys(metadata))
      }`,
      { hint: `metadata fields: ${Object.keys(metadata).join(", ") || "(none)"}` },
    );
  }
  if (f in info) return info[f];
  if (f in metadata) return metadata[f];
  if (f in nested) return nested[f];
  const available = [...Object.keys(info), ...Object.keys(metadata), ...Object.keys(nested)];
  throw new UsageError(
    `unknown field '${f}' for artifact ${qualifiedName(manifest)}.${didYouMean(f, available)}`,
    { hint: `available fields: ${[...new Set(available)].join(", ")}` },
  );
}

/**
 * A lookup where `ref` is an artifact reference (`name[:selector]`). Each reference is resolved
 * once per lookup function, so `latest` means the same version for every field of one config.
 */
export function artLookupByRef(registry: ArtifactRegistry): ArtFieldLookup {
  const cache = new Map<string, Manifest>();
  return (ref, field) => {
    let m = cache.get(ref);
    if (m === undefined) {
      m = registry.resolve(ref);
      cache.set(ref, m);
    }
    return artifactField(registry, m, field);
  };
}

/**
 * A lookup where `ref` is a key of the config's `run` section (`${art:data,path}` with
 * `run.data: demo-data:latest`), as recipe configs write it.
 */
export function artLookupByRunKey(
  registry: ArtifactRegistry,
  run: Readonly<Record<string, unknown>>,
): ArtFieldLookup {
  const byRef = artLookupByRef(registry);
  return (key, field) => {
    const ref = run[key];
    if (!isArtifactReference(ref)) {
      const keys = Object.keys(run).filter((k) => isArtifactReference(run[k]));
      throw new UsageError(
        ref === undefined
          ? `\${art:${key}} names no artifact: run.${key} is not set.${didYouMean(key, keys)}`
          : `\${art:${key}} names no artifact: run.${key} = ${
            JSON.stringify(ref)
          } is not a NAME:VERSION reference`,
        {
          hint: keys.length > 0
            ? `artifact references under run: ${keys.map((k) => `run.${k}`).join(", ")}`
            : `set run.${key}=NAME:latest (a dotlist override works)`,
        },
      );
    }
    return byRef(ref, field);
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
