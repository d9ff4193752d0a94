/**
 * Turning a stored layer (a cache file, or a byte range of a local archive) into a stream of
 * decompressed tar bytes. gzip and zstd go through node:zlib (faster here than
 * DecompressionStream, which has no zstd in Deno 2.9); the format is sniffed from the magic bytes,
 * since media types are sometimes wrong.
 */
import type { Readable } from "node:stream";
import { RuntimeFailure, UsageError } from "../errors.ts";

const CHUNK = 128 * 1024;

/**
 * How far a compressed layer may expand: at most `ratio` × its compressed size, but always at
 * least `floor` bytes (small layers legitimately compress very well). Real layers expand 2-10×;
 * a gzip bomb expands 1000×. `NEMOTRON_SQUASH_MAX_EXPANSION` sets the ratio.
 */
export interface ExpansionLimit {
  readonly ratio: number;
  readonly floor: number;
}

export const DEFAULT_EXPANSION: ExpansionLimit = { ratio: 100, floor: 64 * 1024 * 1024 };

/** The expansion limit from the environment (bad value → UsageError, before anything runs). */
export function expansionLimit(
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
): ExpansionLimit {
  const v = env("NEMOTRON_SQUASH_MAX_EXPANSION");
  if (v === undefined || v === "") return DEFAULT_EXPANSION;
  if (!/^[1-9]\d*$/.test(v)) {
    throw new UsageError(`NEMOTRON_SQUASH_MAX_EXPANSION must be a positive integer, got '${v}'`, {
      hint:
        `it is the largest decompressed/compressed size ratio a layer may have (default ${DEFAULT_EXPANSION.ratio})`,
    });
  }
  return { ...DEFAULT_EXPANSION, ratio: Number(v) };
}

async function magic(path: string, start: number): Promise<Uint8Array> {
  using f = await Deno.open(path);
  await f.seek(start, Deno.SeekMode.Start);
  const b = new Uint8Array(4);
  let n = 0;
  while (n < 4) {
    const r = await f.read(b.subarray(n));
    if (r === null) break;
    n += r;
  }
  return b.subarray(0, n);
}

/** Which compression the bytes at `path[start]` use. */
export async function sniffCompression(path: string, start = 0): Promise<"gzip" | "zstd" | "none"> {
  const m = await magic(path, start);
  if (m[0] === 0x1f && m[1] === 0x8b) return "gzip";
  if (m[0] === 0x28 && m[1] === 0xb5 && m[2] === 0x2f && m[3] === 0xfd) return "zstd";
  return "none";
}

async function* iterate(
  stream: Readable,
  what: string,
  bound?: { compressed: number; max: number; ratio: number },
  onRead?: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  let total = 0;
  try {
    for await (const chunk of stream) {
      total += (chunk as Uint8Array).length;
      onRead?.((chunk as Uint8Array).length);
      if (bound && total > bound.max) {
        throw new RuntimeFailure(
          `${what}: decompresses to more than ${bound.max} bytes from ${bound.compressed} ` +
            `(over ${bound.ratio}× its size): refused as a decompression bomb`,
          {
            hint: "if the image really is like that, raise the ratio with " +
              `NEMOTRON_SQUASH_MAX_EXPANSION=N (default ${DEFAULT_EXPANSION.ratio})`,
          },
        );
      }
      yield chunk as Uint8Array;
    }
  } catch (e) {
    if (e instanceof RuntimeFailure) throw e;
    throw new RuntimeFailure(`${what}: cannot decompress: ${(e as Error).message}`);
  } finally {
    stream.destroy();
  }
}

/**
 * Decompressed bytes of the layer stored at `path` (optionally only bytes [start, start+length)),
 * refusing to expand past `limit`. `onRead` is told the stored (compressed) bytes as they are read.
 */
export async function openLayerFile(
  path: string,
  what: string,
  range?: { start: number; length: number },
  limit: ExpansionLimit = DEFAULT_EXPANSION,
  onRead?: (compressedBytes: number) => void,
): Promise<AsyncIterable<Uint8Array>> {
  const start = range?.start ?? 0;
  const kind = await sniffCompression(path, start);
  // node:fs and node:zlib are loaded here, not at module level: in a bundle a static node:
  // import is hoisted and paid by every command at start-up.
  const [{ createReadStream }, zlib] = await Promise.all([import("node:fs"), import("node:zlib")]);
  const raw = createReadStream(path, {
    highWaterMark: 256 * 1024,
    ...(range ? { start, end: start + range.length - 1 } : {}),
  });
  if (kind === "none") return iterate(raw, what, undefined, onRead);
  const dec = kind === "gzip"
    ? zlib.createGunzip({ chunkSize: CHUNK })
    : zlib.createZstdDecompress({ chunkSize: CHUNK });
  raw.on("error", (e) => dec.destroy(e));
  const compressed = range?.length ?? (await Deno.stat(path)).size;
  const max = Math.max(limit.floor, compressed * limit.ratio);
  const out = raw.pipe(dec);
  // Only after pipe(): a "data" listener starts the flow, and chunks before the pipe would be lost.
  if (onRead) raw.on("data", (c) => onRead((c as Uint8Array).length));
  return iterate(out, what, { compressed, max, ratio: limit.ratio });
}
