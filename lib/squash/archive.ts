/**
 * Local image archives: `docker-archive://PATH` (`docker save` / `skopeo copy docker-archive:`)
 * and `oci-archive://PATH` (an OCI image layout in a tar). The outer tar is indexed by reading only
 * its headers (seeking over contents), and layers are streamed from their byte ranges: nothing is
 * extracted to disk. The outer tar must be uncompressed.
 */
import { RuntimeFailure, UsageError } from "../errors.ts";
import { ByteReader, padding, readTar } from "./tar.ts";
import {
  type Descriptor,
  formatPlatform,
  type ImageConfig,
  MT,
  type Platform,
  selectPlatform,
  sha256Hex,
} from "./manifest.ts";
import { sniffCompression } from "./layers.ts";
import { MAX_MANIFEST_BYTES } from "./registry.ts";

/** Where a member's content is inside the archive file. */
export interface MemberRange {
  readonly start: number;
  readonly length: number;
}

/** Map of member name (normalised, no leading `./`) → byte range. */
export async function indexTarFile(path: string): Promise<Map<string, MemberRange>> {
  const out = new Map<string, MemberRange>();
  using f = await Deno.open(path);
  let pos = 0;
  // Each header is parsed from a fresh read at its offset; contents are seeked over.
  for (;;) {
    await f.seek(pos, Deno.SeekMode.Start);
    // Read up to 64 KiB of header material (PAX / GNU long names precede the real header).
    const buf = new Uint8Array(64 * 1024);
    let n = 0;
    while (n < 1024) {
      const r = await f.read(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    if (n < 512) break;
    const reader = new ByteReader((async function* () {
      yield buf.subarray(0, n);
    })());
    const it = readTar(reader, path);
    let r: IteratorResult<Awaited<ReturnType<typeof it.next>>["value"]>;
    try {
      r = await it.next();
    } catch (e) {
      if (pos === 0) {
        throw new UsageError(
          `${path} is not an uncompressed tar archive: ${(e as Error).message}`,
          {
            hint: "decompress it first (e.g. gunzip)",
          },
        );
      }
      throw e;
    }
    if (r.done) break;
    const h = r.value;
    const start = pos + reader.consumed;
    const name = h.path.replace(/^(\.\/)+/, "").replace(/^\/+/, "");
    if (h.type === "file") out.set(name, { start, length: h.size });
    await it.return(undefined);
    pos = start + h.size + padding(h.size);
  }
  if (out.size === 0) {
    const kind = await sniffCompression(path).catch(() => "none");
    throw new UsageError(
      `${path}: no files found in the archive${
        kind !== "none" ? ` (it is ${kind}-compressed)` : ""
      }`,
      {
        hint: "pass an uncompressed `docker save` or OCI archive tar",
      },
    );
  }
  return out;
}

/** A JSON member (manifest, index, config) read into memory; capped like a registry's. */
async function readMember(path: string, m: MemberRange, name: string): Promise<Uint8Array> {
  if (m.length > MAX_MANIFEST_BYTES) {
    throw new RuntimeFailure(
      `${path}: ${name} is ${m.length} bytes, larger than ${MAX_MANIFEST_BYTES}: refused`,
      { hint: "manifests, indexes and image configs are a few KiB; the archive is malformed" },
    );
  }
  using f = await Deno.open(path);
  await f.seek(m.start, Deno.SeekMode.Start);
  const out = new Uint8Array(m.length);
  let n = 0;
  while (n < m.length) {
    const r = await f.read(out.subarray(n));
    if (r === null) throw new RuntimeFailure(`${path}: archive truncated`);
    n += r;
  }
  return out;
}

function json(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new RuntimeFailure(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** A resolved archive image: config and layer ranges (bottom first). */
export interface ArchiveImage {
  readonly digest: string;
  readonly config: ImageConfig;
  readonly layers: readonly { readonly name: string; readonly range: MemberRange }[];
}

function member(index: Map<string, MemberRange>, name: string, archive: string): MemberRange {
  const m = index.get(name.replace(/^(\.\/)+/, ""));
  if (!m) throw new RuntimeFailure(`${archive}: member '${name}' is missing`);
  return m;
}

/** Read a `docker save` archive. */
export async function openDockerArchive(path: string): Promise<ArchiveImage> {
  await statArchive(path);
  const index = await indexTarFile(path);
  const manifestRange = index.get("manifest.json");
  if (!manifestRange) {
    throw new UsageError(`${path} has no manifest.json: not a docker-archive`, {
      hint: index.has("index.json")
        ? "this looks like an OCI archive: use oci-archive://"
        : undefined,
    });
  }
  const manifest = json(
    await readMember(path, manifestRange, "manifest.json"),
    `${path}:manifest.json`,
  );
  if (!Array.isArray(manifest) || manifest.length === 0) {
    throw new RuntimeFailure(`${path}: manifest.json lists no image`);
  }
  if (manifest.length > 1) {
    throw new UsageError(
      `${path} holds ${manifest.length} images; only single-image archives are supported`,
    );
  }
  const entry = manifest[0] as { Config: string; Layers: string[] };
  const configBytes = await readMember(path, member(index, entry.Config, path), entry.Config);
  return {
    digest: `sha256:${await sha256Hex(configBytes)}`,
    config: json(configBytes, `${path}:${entry.Config}`) as ImageConfig,
    layers: entry.Layers.map((name) => ({ name, range: member(index, name, path) })),
  };
}

/** Read an OCI layout archive, picking `platform` from an index. */
export async function openOciArchive(path: string, platform: Platform): Promise<ArchiveImage> {
  await statArchive(path);
  const index = await indexTarFile(path);
  const idxRange = index.get("index.json");
  if (!idxRange) {
    throw new UsageError(`${path} has no index.json: not an OCI archive`, {
      hint: index.has("manifest.json")
        ? "this looks like a docker save archive: use docker-archive://"
        : undefined,
    });
  }
  const blob = async (d: Descriptor): Promise<Uint8Array> => {
    const [alg, hex] = d.digest.split(":");
    const bytes = await readMember(
      path,
      member(index, `blobs/${alg}/${hex}`, path),
      `blobs/${alg}/${hex}`,
    );
    if (alg === "sha256" && `sha256:${await sha256Hex(bytes)}` !== d.digest) {
      throw new RuntimeFailure(`${path}: blob ${d.digest} failed verification`);
    }
    return bytes;
  };
  let top = json(await readMember(path, idxRange, "index.json"), `${path}:index.json`);
  let digest = "";
  for (let depth = 0; depth < 4; depth++) {
    const list = (top.manifests ?? []) as Descriptor[];
    if (!Array.isArray(top.manifests) || list.length === 0) break;
    const withPlatform = list.filter((m) => m.platform);
    const pick = list.length === 1 ? list[0] : selectPlatform(withPlatform, platform);
    if (!pick) {
      throw new UsageError(`${path} has no image for platform ${formatPlatform(platform)}`, {
        hint: `available: ${
          withPlatform.map((m) => formatPlatform(m.platform!)).join(", ") || "none"
        }`,
      });
    }
    digest ||= pick.digest;
    top = json(await blob(pick), `${path}:${pick.digest}`);
    if (
      top.mediaType !== MT.ociIndex && top.mediaType !== MT.dockerList &&
      !Array.isArray(top.manifests)
    ) break;
  }
  const config = top.config as Descriptor | undefined;
  if (!config || !Array.isArray(top.layers)) {
    throw new RuntimeFailure(`${path}: no image manifest found`);
  }
  const configJson = json(await blob(config), `${path}:config`) as ImageConfig;
  return {
    digest,
    config: configJson,
    layers: (top.layers as Descriptor[]).map((d) => {
      const [alg, hex] = d.digest.split(":");
      const name = `blobs/${alg}/${hex}`;
      return { name, range: member(index, name, path) };
    }),
  };
}

async function statArchive(path: string): Promise<void> {
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) throw new UsageError(`${path} is not a file`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`archive not found: ${path}`);
    }
    throw e;
  }
}
