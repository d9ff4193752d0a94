/**
 * Image manifests: Docker v2 schema 2, OCI manifest, Docker manifest list and OCI index (with
 * platform selection), and the image config fields nemotron uses.
 */
import { encodeHex } from "./hex.ts";
import { RuntimeFailure, UsageError } from "../errors.ts";
import {
  checkDigest,
  MANIFEST_ACCEPT,
  MAX_MANIFEST_BYTES,
  readBodyCapped,
  type RegistryClient,
  withRetry,
} from "./registry.ts";

export const MT = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
} as const;

/** A content descriptor. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly urls?: readonly string[];
  readonly platform?: Platform;
}

/** `os/architecture[/variant]`. */
export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

/** The resolved image: which manifest, its config and layers (bottom first). */
export interface ResolvedImage {
  /** Digest of the manifest (or index) the reference named. */
  readonly digest: string;
  /** Digest of the platform-specific image manifest. */
  readonly manifestDigest: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly platform?: Platform;
}

/** The parts of an image config that go into the rootfs (enroot-style). */
export interface ImageConfig {
  readonly architecture?: string;
  readonly os?: string;
  readonly config?: {
    readonly Env?: readonly string[];
    readonly Entrypoint?: readonly string[] | null;
    readonly Cmd?: readonly string[] | null;
    readonly WorkingDir?: string;
    readonly Volumes?: Record<string, unknown> | null;
    readonly Labels?: Record<string, string> | null;
  };
}

/** Platform of this machine in OCI terms. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };
  return { os: "linux", architecture: arch[Deno.build.arch] ?? Deno.build.arch };
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: "amd64",
  aarch64: "arm64",
  "x86-64": "amd64",
};

/** Parse `--platform OS/ARCH[/VARIANT]`. */
export function parsePlatform(text: string): Platform {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new UsageError(`invalid --platform '${text}'`, {
      hint: "use OS/ARCH[/VARIANT], e.g. linux/amd64",
    });
  }
  const architecture = ARCH_ALIASES[parts[1]] ?? parts[1];
  return { os: parts[0], architecture, variant: parts[2] };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** Pick the manifest for `want` from an index / list. */
export function selectPlatform(
  manifests: readonly Descriptor[],
  want: Platform,
): Descriptor | undefined {
  const candidates = manifests.filter((m) =>
    m.platform && m.platform.os === want.os && m.platform.architecture === want.architecture
  );
  if (want.variant) return candidates.find((m) => m.platform?.variant === want.variant);
  // Without a variant: prefer none / the default (arm64 → v8), else the first.
  return candidates.find((m) => !m.platform?.variant) ??
    candidates.find((m) => m.platform?.variant === "v8") ?? candidates[0];
}

/** sha256 hex of bytes. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return encodeHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource)));
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new RuntimeFailure(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Fetch a manifest by tag or digest, verifying the digest. */
export async function fetchManifest(
  client: RegistryClient,
  reference: string,
): Promise<
  { bytes: Uint8Array; mediaType: string; digest: string; json: Record<string, unknown> }
> {
  return await withRetry(`manifest ${client.repository}:${reference}`, client.retry, async () => {
    const res = await client.get(`manifests/${reference}`, { Accept: MANIFEST_ACCEPT });
    const bytes = await readBodyCapped(
      res,
      MAX_MANIFEST_BYTES,
      `manifest ${client.repository}:${reference}`,
    );
    const digest = `sha256:${await sha256Hex(bytes)}`;
    if (reference.startsWith("sha256:") && reference !== digest) {
      throw new RuntimeFailure(`manifest digest mismatch: asked for ${reference}, got ${digest}`);
    }
    const header = res.headers.get("docker-content-digest");
    if (header && header.startsWith("sha256:") && header !== digest) {
      throw new RuntimeFailure(
        `manifest digest mismatch: registry says ${header}, body is ${digest}`,
      );
    }
    const json = parseJson(bytes, `manifest ${reference}`);
    const mediaType = (json.mediaType as string | undefined) ??
      res.headers.get("content-type")?.split(";")[0].trim() ?? "";
    return { bytes, mediaType, digest, json };
  }, client.onRetry);
}

function descriptors(json: Record<string, unknown>, key: string, where: string): Descriptor[] {
  const v = json[key];
  if (!Array.isArray(v)) throw new RuntimeFailure(`${where}: '${key}' missing`);
  for (const d of v) checkDigest(String(d?.digest), where);
  return v as Descriptor[];
}

/** Interpret manifest JSON as an image manifest (config + layers). */
export function imageManifestParts(
  json: Record<string, unknown>,
  mediaType: string,
  where: string,
): { config: Descriptor; layers: Descriptor[] } {
  if (
    json.schemaVersion === 1 ||
    mediaType.startsWith("application/vnd.docker.distribution.manifest.v1")
  ) {
    throw new RuntimeFailure(`${where}: Docker schema 1 manifests are not supported`, {
      hint: "re-push the image with a current docker or skopeo (schema 2 / OCI)",
    });
  }
  const config = json.config as Descriptor | undefined;
  if (!config?.digest) throw new RuntimeFailure(`${where}: manifest has no config`);
  checkDigest(config.digest, where);
  return { config, layers: descriptors(json, "layers", where) };
}

/** Resolve a tag or digest to one platform's config + layers (following an index / list). */
export async function resolveImage(
  client: RegistryClient,
  reference: string,
  platform: Platform,
): Promise<ResolvedImage> {
  const top = await fetchManifest(client, reference);
  const where = `${client.registry}/${client.repository}@${top.digest}`;
  if (
    top.mediaType === MT.ociIndex || top.mediaType === MT.dockerList ||
    Array.isArray(top.json.manifests)
  ) {
    const list = descriptors(top.json, "manifests", where);
    const pick = selectPlatform(list, platform);
    if (!pick) {
      const have = list.filter((m) => m.platform).map((m) => formatPlatform(m.platform!)).join(
        ", ",
      );
      throw new UsageError(`${where} has no image for platform ${formatPlatform(platform)}`, {
        hint: `available: ${have || "none"}; choose one with --platform`,
      });
    }
    const m = await fetchManifest(client, pick.digest);
    const parts = imageManifestParts(m.json, m.mediaType, `${where} → ${pick.digest}`);
    return { digest: top.digest, manifestDigest: m.digest, ...parts, platform: pick.platform };
  }
  const parts = imageManifestParts(top.json, top.mediaType, where);
  return { digest: top.digest, manifestDigest: top.digest, ...parts };
}

/** How a layer blob is compressed, from its media type. `undefined`: not a layer we can apply. */
export function layerCompression(mediaType: string): "gzip" | "zstd" | "none" | undefined {
  if (mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip")) return "gzip";
  if (mediaType.endsWith("+zstd")) return "zstd";
  if (mediaType.endsWith(".tar") || mediaType === "application/vnd.docker.image.rootfs.diff.tar") {
    return "none";
  }
  return undefined;
}
