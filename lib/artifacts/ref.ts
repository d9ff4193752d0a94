/**
 * Artifact names, version selectors, references (`name[:selector]`) and `art://` URIs.
 *
 * A selector picks one version of an artifact: `latest` (the highest complete version), a number
 * (`v3` or `3`) or an alias (any other word, e.g. `production`). The Python helper
 * (recipes/nemotron_artifacts.py) implements the same grammar; keep them in step.
 */
import { UsageError } from "../errors.ts";

/** Which version of an artifact a reference means. */
export type VersionSelector =
  | { readonly kind: "latest" }
  | { readonly kind: "number"; readonly version: number }
  | { readonly kind: "alias"; readonly alias: string };

/** `name[:selector]`, parsed. */
export interface ArtifactRef {
  readonly name: string;
  readonly selector: VersionSelector;
}

/** `art://name[:selector][/file/path]`, parsed. `file` is "" when the URI names the artifact itself. */
export interface ArtifactUri extends ArtifactRef {
  readonly file: string;
}

/** Local artifact names: a letter or digit first, then letters, digits, `_`, `.`, `-`. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Alias names follow the same rule; `latest` and version-like words are reserved. */
const VERSION_WORD = /^v?(\d+)$/;

export const LATEST: VersionSelector = Object.freeze({ kind: "latest" });

/** Throw a UsageError unless `name` is a valid local artifact name. */
export function checkArtifactName(name: string): string {
  if (!NAME.test(name)) {
    throw new UsageError(`invalid artifact name '${name}'`, {
      hint:
        "artifact names start with a letter or digit and use only letters, digits, '_', '.', '-'",
    });
  }
  return name;
}

/** Throw a UsageError unless `alias` can name a version (not `latest`, not `vN`/`N`). */
export function checkAliasName(alias: string): string {
  if (!NAME.test(alias) || alias === "latest" || VERSION_WORD.test(alias)) {
    throw new UsageError(`invalid alias '${alias}'`, {
      hint: "aliases use letters, digits, '_', '.', '-' and may not be 'latest', 'vN' or a number",
    });
  }
  return alias;
}

/**
 * The selector for a version word: `latest` (or empty), `vN`, `N`, else an alias.
 * `v0`/`0` are rejected: versions count from 1.
 */
export function parseSelector(word: string): VersionSelector {
  if (word === "" || word === "latest") return LATEST;
  const m = VERSION_WORD.exec(word);
  if (m) {
    const version = Number(m[1]);
    if (!Number.isSafeInteger(version) || version < 1) {
      throw new UsageError(`invalid version '${word}': versions count from 1`);
    }
    return { kind: "number", version };
  }
  return { kind: "alias", alias: checkAliasName(word) };
}

/** `latest`, `vN` or the alias: how a selector is written back in a reference. */
export function formatSelector(sel: VersionSelector): string {
  switch (sel.kind) {
    case "latest":
      return "latest";
    case "number":
      return `v${sel.version}`;
    case "alias":
      return sel.alias;
  }
}

/** Parse `name`, `name:latest`, `name:v3`, `name:3` or `name:alias`. */
export function parseArtifactRef(ref: string): ArtifactRef {
  const colon = ref.lastIndexOf(":");
  const name = colon < 0 ? ref : ref.slice(0, colon);
  const word = colon < 0 ? "" : ref.slice(colon + 1);
  if (colon >= 0 && word === "") {
    throw new UsageError(`artifact reference '${ref}' has an empty version`, {
      hint: "write NAME, NAME:latest, NAME:vN, NAME:N or NAME:ALIAS",
    });
  }
  return { name: checkArtifactName(name), selector: parseSelector(word) };
}

/** `name:selector`. */
export function formatArtifactRef(ref: ArtifactRef): string {
  return `${ref.name}:${formatSelector(ref.selector)}`;
}

/**
 * Parse an `art://` URI (the `art://` prefix is optional). The first path segment holding a `:`
 * carries the selector; the segments before it and its name part form the artifact name; the
 * segments after it form the file path. Without any `:` the whole string is the name (latest).
 *
 * Names with `/` (W&B style `entity/project/name`) parse but are not local names; the caller decides
 * what to do with them. Unlike the Python original, a non-version word after `:` is an alias, not
 * part of the name.
 */
export function parseArtifactUri(uri: string): ArtifactUri {
  const body = uri.startsWith("art://") ? uri.slice("art://".length) : uri;
  if (body === "") throw new UsageError(`empty artifact URI '${uri}'`);
  const segments = body.split("/");
  const at = segments.findIndex((s) => s.includes(":"));
  if (at < 0) {
    return { name: segments.join("/"), selector: LATEST, file: "" };
  }
  const seg = segments[at];
  const colon = seg.indexOf(":");
  const namePart = seg.slice(0, colon);
  const word = seg.slice(colon + 1);
  const name = [...segments.slice(0, at), namePart].join("/");
  if (namePart === "" || name.split("/").some((s) => s === "")) {
    throw new UsageError(`artifact URI '${uri}' has an empty name`, {
      hint: "write art://NAME[:VERSION][/FILE]",
    });
  }
  if (word.includes(":")) {
    throw new UsageError(`artifact URI '${uri}' has more than one ':' in '${seg}'`);
  }
  return { name, selector: parseSelector(word), file: segments.slice(at + 1).join("/") };
}

/**
 * Whether a config value under `run` looks like an artifact reference (§1.6 of the reference):
 * a string without `/`, `nvcr`, `docker`; containing `Artifact`, or `name:version` where the
 * version is `latest`, `vN` or digits and the name has no `.`.
 */
export function isArtifactReference(value: unknown): value is string {
  if (typeof value !== "string") return false;
  const lower = value.toLowerCase();
  if (value.includes("/") || lower.includes("nvcr") || lower.includes("docker")) return false;
  if (value.includes("Artifact")) return true;
  const colon = value.lastIndexOf(":");
  if (colon < 0) return false;
  const name = value.slice(0, colon);
  const word = value.slice(colon + 1);
  const versionLike = word === "latest" || word.startsWith("v") || /^\d+$/.test(word);
  return versionLike && name !== "" && !name.includes(".");
}
