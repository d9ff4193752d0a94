/**
 * IMAGE references: enroot's URI forms, plain docker references, and the `.sqsh` naming rule.
 *
 * Accepted forms:
 * - `docker://[USER@][REGISTRY#]IMAGE[:TAG|@DIGEST]` (enroot). Without `#`, a first path component
 *   that looks like a host (has `.` or `:`, or is `localhost`) is taken as the registry, the way
 *   docker does (enroot would look it up in its credentials file; this is the useful reading).
 * - `[REGISTRY/]NAME[:TAG][@DIGEST]` (docker). `ubuntu:24.04` → Docker Hub `library/ubuntu`.
 * - `docker-archive://PATH` (`docker save` tar), `oci-archive://PATH` (OCI layout in a tar).
 * - `dockerd://IMAGE`, `podman://IMAGE`: need a local daemon; only valid with `--enroot`.
 */
import { UsageError } from "../errors.ts";

/** Schemes enroot knows. Anything else is a docker reference (`docker://` is implied). */
export const IMAGE_SCHEMES = [
  "docker://",
  "dockerd://",
  "podman://",
  "docker-archive://",
  "oci-archive://",
] as const;

export const DOCKER_HUB = "registry-1.docker.io";

/** A parsed reference to an image in a registry. */
export interface RegistryImageRef {
  readonly kind: "registry";
  /** `host[:port]`, Docker Hub as `registry-1.docker.io`. */
  readonly registry: string;
  /** Repository path, e.g. `library/ubuntu`, `nvidia/nemo`. */
  readonly repository: string;
  /** Tag, or undefined when `digest` is given (then the digest is used). */
  readonly tag?: string;
  readonly digest?: string;
  /** `USER@` from the enroot form: which login to use from the credentials file. */
  readonly user?: string;
  /** The input as typed. */
  readonly source: string;
}

/** A local archive. */
export interface ArchiveImageRef {
  readonly kind: "docker-archive" | "oci-archive";
  readonly path: string;
  readonly source: string;
}

/** Only for `--enroot`: handed to `enroot import` unchanged. */
export interface DaemonImageRef {
  readonly kind: "dockerd" | "podman";
  readonly image: string;
  readonly source: string;
}

export type ImageRef = RegistryImageRef | ArchiveImageRef | DaemonImageRef;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const USER = /^[A-Za-z0-9_.!~*'()%;:&=+$,-]+$/;

function bad(image: string, why: string): UsageError {
  return new UsageError(`invalid image reference '${image}': ${why}`, {
    hint: "use NAME[:TAG], REGISTRY/NAME[:TAG|@sha256:…], docker://[USER@][REGISTRY#]NAME[:TAG], " +
      "docker-archive://PATH or oci-archive://PATH",
  });
}

/**
 * `host[:port]` of a registry, checked strictly: a DNS name or IPv4 address of letters, digits,
 * `-` and `.`, or a bracketed IPv6 address, then an optional port 1-65535. Nothing else (no `@`,
 * no userinfo, no path): the host credentials are looked up for must be the host connected to.
 */
export function splitRegistry(registry: string): { host: string; port?: number } | undefined {
  const m =
    /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::(\d{1,5}))?$/
      .exec(registry);
  if (!m) return undefined;
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  return { host: m[1].toLowerCase(), port };
}

function checkRegistry(image: string, registry: string): void {
  if (splitRegistry(registry) === undefined) {
    throw bad(
      image,
      `'${registry}' is not a registry host: expected HOST[:PORT] (letters, digits, '-', '.'; no '@')`,
    );
  }
}

function looksLikeHost(component: string): boolean {
  return component.includes(".") || component.includes(":") || component === "localhost";
}

function normalizeRegistry(host: string): string {
  const h = host.toLowerCase();
  return h === "docker.io" || h === "index.docker.io" ? DOCKER_HUB : host;
}

/** Split `NAME[:TAG][@DIGEST]` (NAME may contain a registry with a port). */
function splitNameTagDigest(
  image: string,
  rest: string,
): { name: string; tag?: string; digest?: string } {
  let name = rest;
  let digest: string | undefined;
  let tag: string | undefined;
  const at = name.indexOf("@");
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(image, `bad digest '${digest}'`);
  }
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG.test(tag)) throw bad(image, `bad tag '${tag}'`);
  }
  return { name, tag, digest };
}

function checkRepository(image: string, repository: string): void {
  if (repository === "") throw bad(image, "empty image name");
  for (const c of repository.split("/")) {
    if (!COMPONENT.test(c)) {
      throw bad(image, `'${c}' is not a valid name component (lower-case letters, digits, . _ -)`);
    }
  }
}

/** Parse any accepted IMAGE form. Bad input → UsageError. */
export function parseImageRef(image: string): ImageRef {
  const source = image;
  if (image.trim() === "") throw bad(image, "empty");
  for (const kind of ["docker-archive", "oci-archive"] as const) {
    if (image.startsWith(`${kind}://`)) {
      const path = image.slice(kind.length + 3);
      if (path === "") throw bad(image, "missing archive path");
      return { kind, path, source };
    }
  }
  for (const kind of ["dockerd", "podman"] as const) {
    if (image.startsWith(`${kind}://`)) {
      const rest = image.slice(kind.length + 3);
      if (!/^[A-Za-z0-9/._:@-]+$/.test(rest)) throw bad(image, "bad image name");
      return { kind, image: rest, source };
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(image) && !image.startsWith("docker://")) {
    throw bad(image, `unknown scheme '${image.slice(0, image.indexOf("://") + 3)}'`);
  }
  let user: string | undefined;
  let registry: string | undefined;
  let rest = image;
  if (image.startsWith("docker://")) {
    rest = image.slice("docker://".length);
    // USER@ comes first; an '@' followed by nothing but a digest is the digest instead.
    const at = rest.indexOf("@");
    if (at >= 0 && !DIGEST.test(rest.slice(at + 1))) {
      const u = rest.slice(0, at);
      if (!USER.test(u)) throw bad(image, `bad user '${u}'`);
      user = u;
      rest = rest.slice(at + 1);
    }
    const h = rest.indexOf("#");
    if (h >= 0) {
      registry = rest.slice(0, h);
      rest = rest.slice(h + 1);
      checkRegistry(image, registry);
    }
  }
  const { name, tag, digest } = splitNameTagDigest(image, rest);
  let repository = name;
  if (registry === undefined) {
    const slash = name.indexOf("/");
    if (slash > 0 && looksLikeHost(name.slice(0, slash))) {
      registry = name.slice(0, slash);
      repository = name.slice(slash + 1);
    } else {
      registry = DOCKER_HUB;
    }
  }
  checkRegistry(image, registry);
  registry = normalizeRegistry(registry);
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;
  checkRepository(image, repository);
  return {
    kind: "registry",
    registry,
    repository,
    tag: tag ?? (digest ? undefined : "latest"),
    digest,
    user,
    source,
  };
}

/** `image` with `docker://` added when it has no known scheme (what `enroot import` is given). */
export function normalizeContainerSource(image: string): string {
  return IMAGE_SCHEMES.some((s) => image.startsWith(s)) ? image : `docker://${image}`;
}

/**
 * The `.sqsh` file name for an image (reference naming rule): drop the scheme; for archives keep
 * only the base name; every character outside `[A-Za-z0-9_]` becomes `_`; runs of `_` collapse;
 * leading and trailing `_` go; append `.sqsh`.
 */
export function sqshName(image: string): string {
  const src = normalizeContainerSource(image);
  const scheme = IMAGE_SCHEMES.find((s) => src.startsWith(s))!;
  let rest = src.slice(scheme.length);
  if (scheme === "docker-archive://" || scheme === "oci-archive://") {
    rest = rest.slice(rest.lastIndexOf("/") + 1);
  }
  const name = rest.replace(/[^A-Za-z0-9_]/g, "_").replace(/_+/g, "_").replace(/^_+|_+$/g, "");
  if (name === "") throw bad(image, "no usable characters for a file name");
  return `${name}.sqsh`;
}

/** `registry/repository:tag` or `@digest`, for messages. */
export function displayRef(ref: RegistryImageRef): string {
  return `${ref.registry}/${ref.repository}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`;
}
