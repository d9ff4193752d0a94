/**
 * nemotron's custom resolvers, registered explicitly by whoever resolves a config:
 * `art` (artifact fields), `auto_mount` (git mounts) and `manifest` (data-prep manifests).
 * Pass them in `ResolveOptions.resolvers`, e.g. `{ art: artResolver(lookup) }`.
 */
import { join } from "../path.ts";
import { UsageError } from "../errors.ts";
import type { ResolverFn } from "./interpolate.ts";
import { type ConfigNode, fromPlain, pyStr } from "./tree.ts";
import { isArtifactReference } from "./run_refs.ts";

/**
 * Looks up one field of an artifact: `artifactRef` is the reference written under `run`
 * (e.g. `nano3-pretrain-data-tiny:latest`), `field` is `path`, `version`, `metadata.X`, … .
 * Implemented by lib/artifacts (the registry); throws when the artifact or field is unknown.
 */
export type ArtifactLookup = (artifactRef: string, field: string) => unknown;

/**
 * `${art:NAME[,FIELD]}`: NAME is a key of the config's `run` section whose value is the artifact
 * reference; FIELD defaults to `path`. Values keep their type (int/float/str).
 */
export function artResolver(lookup: ArtifactLookup): ResolverFn {
  return (args, ctx) => {
    if (args.length < 1 || args.length > 2) {
      throw new UsageError(`art takes NAME[,FIELD], got ${args.length} arguments`);
    }
    const name = pyStr(args[0]);
    const field = args.length === 2 ? pyStr(args[1]) : "path";
    const run = ctx.root.get("run");
    const ref = run instanceof Map ? ctx.select(`run.${name}`) : undefined;
    if (typeof ref !== "string") {
      const available = run instanceof Map
        ? [...run].filter(([, v]) => isArtifactReference(v)).map(([k]) => k)
        : [];
      throw new UsageError(
        `Artifact '${name}' not found. Available: [${available.map((a) => `'${a}'`).join(", ")}]`,
        {
          hint:
            `add run.${name}: <artifact>:latest to the config (or run.${name}=… on the command line)`,
        },
      );
    }
    return fromPlain(lookup(ref, field));
  };
}

/** A git repository to mount, collected by `auto_mount`. */
export interface AutoMount {
  readonly name: string;
  readonly url: string;
  readonly ref: string;
  readonly target?: string;
}

/** Parse `git+URL@REF` (split at the last `@`). Throws `UsageError` with the original's messages. */
export function parseGitMountSpec(spec: string, target?: string): AutoMount {
  if (!spec.startsWith("git+")) {
    throw new UsageError(`Invalid git mount spec: must start with 'git+', got: ${spec}`);
  }
  const body = spec.slice(4);
  const at = body.lastIndexOf("@");
  if (at < 0) {
    throw new UsageError(`Invalid git mount spec: missing @ref in: ${spec}`, {
      hint: "write git+URL@BRANCH_OR_TAG",
    });
  }
  const url = body.slice(0, at);
  const ref = body.slice(at + 1);
  if (!url || !ref) throw new UsageError(`Invalid git mount spec: empty URL or ref in: ${spec}`);
  const name = url.replace(/\/+$/, "").split(/[/:]/).pop()!.replace(/\.git$/, "");
  return { name, url, ref, target };
}

/**
 * `${auto_mount:git+URL@REF[,TARGET]}` → `__auto_mount__:<repo name>`; each mount is reported to
 * `onMount` (same name overwrites) so the executor can clone it and filter the placeholder out.
 */
export function autoMountResolver(onMount: (m: AutoMount) => void = () => {}): ResolverFn {
  return (args) => {
    if (args.length < 1 || args.length > 2) {
      throw new UsageError(`auto_mount takes SPEC[,TARGET], got ${args.length} arguments`);
    }
    const m = parseGitMountSpec(pyStr(args[0]), args.length === 2 ? pyStr(args[1]) : undefined);
    onMount(m);
    return `__auto_mount__:${m.name}`;
  };
}

/** `${manifest:DIR,KEY}` → `str(json(DIR/manifest.json)[KEY])`. */
export function manifestResolver(
  readText: (path: string) => string = (p) => Deno.readTextFileSync(p),
): ResolverFn {
  return (args) => {
    if (args.length !== 2) {
      throw new UsageError(`manifest takes DIR,KEY, got ${args.length} arguments`);
    }
    const file = join(pyStr(args[0]), "manifest.json");
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(readText(file));
    } catch (e) {
      throw new UsageError(`manifest not found or unreadable: ${file} (${(e as Error).message})`, {
        hint: "Run data prep first",
      });
    }
    const key = pyStr(args[1]);
    if (!(key in data)) {
      throw new UsageError(
        `key '${key}' not in ${file}. Available keys: [${
          Object.keys(data).map((k) => `'${k}'`).join(", ")
        }]`,
      );
    }
    return pyStr(fromPlain(data[key]) as ConfigNode);
  };
}
