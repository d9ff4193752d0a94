/**
 * Turning a stored layer (a cache file, or a byte range of a local archive) into a stream of
 * decompressed tar bytes. gzip and zstd go through node:zlib (faster here than
 * DecompressionStream, which has no zstd in Deno 2.9); the format is sniffed from the magic bytes,
 * since media types are sometimes wrong.
 */
import type { Readable } from "node:stream";
import { RuntimeFailure } from "../errors.ts";

const CHUNK = 128 * 1024;

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

async function* iterate(stream: Readable, what: string): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of stream) yield chunk as Uint8Array;
  } catch (e) {
    throw new RuntimeFailure(`${what}: cannot decompress: ${(e as Error).message}`);
  } finally {
    stream.destroy();
  }
}

/**
 * Decompressed bytes of the layer stored at `path` (optionally only bytes [start, start+length)).
 */
export async function openLayerFile(
  path: string,
  what: string,
  range?: { start: number; length: number },
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
  if (kind === "none") return iterate(raw, what);
  const dec = kind === "gzip"
    ? zlib.createGunzip({ chunkSize: CHUNK })
    : zlib.createZstdDecompress({ chunkSize: CHUNK });
  raw.on("error", (e) => dec.destroy(e));
  return iterate(raw.pipe(dec), what);
}
