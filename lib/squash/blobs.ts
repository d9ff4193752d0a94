/**
 * The content-addressed blob cache (`$NEMOTRON_HOME/cache/blobs/sha256/<hex>`) and the downloader
 * that fills it: sha256 verified, resumed from `<hex>.partial` with a Range request after an
 * interruption, retried with backoff. A blob only gets its final name once verified, so anything
 * under its digest name is trusted.
 */
import type { Hash } from "node:crypto";
import { ensureNemotronHome } from "../home.ts";
import { RuntimeFailure, UsageError } from "../errors.ts";
import { checkDigest, type RegistryClient, TransientError, withRetry } from "./registry.ts";
import type { Descriptor } from "./manifest.ts";
import { lstatOrUndefined, notOwnFileReason, openOwnFileForWrite } from "../atomic.ts";

/** The blob cache directory (inside the private `$NEMOTRON_HOME`, created 0700 if missing). */
export function blobCacheDir(): string {
  return `${ensureNemotronHome()}/cache/blobs`;
}

/** Path of a verified blob in the cache. */
export function blobPath(cacheDir: string, digest: string): string {
  return `${cacheDir}/sha256/${checkDigest(digest, "blob")}`;
}

/**
 * Size of a cache file, undefined when missing. Only regular files of this user count: anything
 * else in the cache (a symlink, another user's file) was planted and is refused, never read.
 */
async function statSize(path: string): Promise<number | undefined> {
  const info = await lstatOrUndefined(path);
  if (info === undefined) return undefined;
  const why = notOwnFileReason(info);
  if (why) {
    throw new RuntimeFailure(`blob cache file ${path} ${why}: refused`, {
      hint: "remove it (the cache holds only files nemotron wrote as you) and run again",
    });
  }
  return info.size;
}

/** A digest mismatch: the registry (or its storage) served the wrong bytes. */
export class DigestMismatch extends RuntimeFailure {}

async function hashFile(path: string, hash: Hash): Promise<void> {
  using f = await Deno.open(path);
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
}

async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await f.write(bytes.subarray(off));
}

export interface FetchBlobOptions {
  /** Called with the bytes of this blob that are on disk so far. */
  readonly onProgress?: (bytesOnDisk: number) => void;
  readonly onRetry?: (message: string) => void;
}

/**
 * Make sure blob `desc` is in the cache and return its path. Resumes a `.partial` left by an
 * interrupted run; a transient failure mid-body keeps what arrived and retries from there.
 */
export async function fetchBlob(
  client: RegistryClient,
  cacheDir: string,
  desc: Descriptor,
  options: FetchBlobOptions = {},
): Promise<string> {
  const hex = checkDigest(desc.digest, "blob");
  if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new RuntimeFailure(`blob ${desc.digest}: the manifest gives no valid size`);
  }
  const final = blobPath(cacheDir, desc.digest);
  const existing = await statSize(final);
  if (existing !== undefined && (desc.size === undefined || existing === desc.size)) {
    await touch(final); // "last use" for `squash cache prune`
    options.onProgress?.(existing);
    return final;
  }
  await Deno.mkdir(`${cacheDir}/sha256`, { recursive: true, mode: 0o700 });
  const partial = `${final}.partial`;
  await using lockFile = await openOwnFileForWrite(`${final}.lock`, { append: true });
  await lockFile.lock(true); // another nemotron fetching the same blob waits here
  if ((await statSize(final)) === desc.size) return final;

  let resumedAttemptFailed = false;
  return await withRetry(`blob ${desc.digest.slice(0, 19)}`, client.retry, async () => {
    let have = (await statSize(partial)) ?? 0;
    if (resumedAttemptFailed || (desc.size !== undefined && have > desc.size)) {
      await Deno.remove(partial).catch(() => {});
      have = 0;
    }
    // node:crypto is loaded here, not at module level: in a bundle a static node: import is
    // hoisted and paid by every command at start-up.
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha256");
    if (desc.size === undefined || have < desc.size) {
      const res = await client.get(
        `blobs/${desc.digest}`,
        have > 0 ? { Range: `bytes=${have}-` } : {},
      );
      if (have > 0 && res.status !== 206) {
        await Deno.remove(partial).catch(() => {}); // the server ignored the Range: start over
        have = 0;
      }
      if (have > 0) await hashFile(partial, hash);
      // Never through a symlink: a fresh partial is created O_EXCL, a resumed one must be ours.
      if (have === 0) await Deno.remove(partial).catch(() => {});
      using f = await openOwnFileForWrite(partial, { append: have > 0 });
      let written = have;
      try {
        for await (const chunk of res.body!) {
          if (written + chunk.length > desc.size) {
            // More than the manifest promised: stop now instead of filling the disk.
            await res.body!.cancel().catch(() => {});
            await Deno.remove(partial).catch(() => {});
            throw new DigestMismatch(
              `blob ${desc.digest}: the registry sent more than the ${desc.size} bytes the manifest gives`,
              { hint: "the registry served corrupt data; no output was written" },
            );
          }
          hash.update(chunk);
          await writeAll(f, chunk);
          written += chunk.length;
          options.onProgress?.(written);
        }
      } catch (e) {
        if (e instanceof DigestMismatch) throw e;
        throw new TransientError(
          `download interrupted at ${written} bytes: ${(e as Error).message}`,
        );
      }
    } else {
      await hashFile(partial, hash);
    }
    const size = (await statSize(partial)) ?? 0;
    if (desc.size !== undefined && size < desc.size) {
      throw new TransientError(`short download (${size} of ${desc.size} bytes)`);
    }
    const got = hash.digest("hex");
    if (got !== hex || (desc.size !== undefined && size !== desc.size)) {
      await Deno.remove(partial).catch(() => {});
      if (have > 0 && !resumedAttemptFailed) {
        resumedAttemptFailed = true; // the kept partial may have been bad: one fresh attempt
        throw new TransientError("digest mismatch after resuming; downloading again");
      }
      throw new DigestMismatch(
        `blob ${desc.digest} failed verification: got sha256:${got} (${size} bytes, expected ${desc.size})`,
        { hint: "the registry served corrupt data; no output was written" },
      );
    }
    await Deno.rename(partial, final);
    return final;
  }, options.onRetry ?? client.onRetry);
}

/** Set a cache file's mtime to now: the cache's "last use" (atime is unreliable: relatime, noatime). */
async function touch(path: string): Promise<void> {
  const now = new Date();
  await Deno.utime(path, now, now).catch(() => {});
}

/** One file of the blob cache, as `squash cache list` shows it. */
export interface CacheEntry {
  /** `sha256:<hex>`. */
  readonly digest: string;
  readonly path: string;
  readonly bytes: number;
  /** mtime: set when the blob is written and each time a squash reuses it. */
  readonly lastUsed: Date;
  /** An unfinished download (`<hex>.partial`). */
  readonly partial: boolean;
}

/** The blobs (and unfinished downloads) in the cache, least recently used first. */
export async function listBlobCache(cacheDir: string): Promise<CacheEntry[]> {
  const dir = `${cacheDir}/sha256`;
  const out: CacheEntry[] = [];
  let names: Deno.DirEntry[];
  try {
    names = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  for (const d of names) {
    const m = /^([0-9a-f]{64})(\.partial)?$/.exec(d.name);
    if (!m) continue; // `.lock` files and strangers
    const path = `${dir}/${d.name}`;
    const info = await lstatOrUndefined(path);
    if (!info || notOwnFileReason(info)) continue;
    out.push({
      digest: `sha256:${m[1]}`,
      path,
      bytes: info.size,
      lastUsed: info.mtime ?? new Date(0),
      partial: m[2] !== undefined,
    });
  }
  return out.sort((a, b) =>
    a.lastUsed.getTime() - b.lastUsed.getTime() || a.path.localeCompare(b.path)
  );
}

export interface PruneOptions {
  /** Remove what was not used for this long (ms). */
  readonly olderThanMs?: number;
  /** Then remove least recently used until the cache is at most this big (bytes). */
  readonly maxBytes?: number;
  /** Only say what would go. */
  readonly dryRun?: boolean;
  readonly now?: Date;
}

export interface PruneResult {
  readonly removed: CacheEntry[];
  /** Chosen but left: a squash is downloading it right now (its lock is held). */
  readonly busy: CacheEntry[];
  /** Bytes in the cache before and after. */
  readonly before: number;
  readonly after: number;
}

/** Which entries go: all older than `olderThanMs`, then least recently used down to `maxBytes`. */
export function choosePrune(entries: readonly CacheEntry[], options: PruneOptions): CacheEntry[] {
  const now = (options.now ?? new Date()).getTime();
  const lru = [...entries].sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
  const chosen = new Set<CacheEntry>();
  if (options.olderThanMs !== undefined) {
    for (const e of lru) if (now - e.lastUsed.getTime() > options.olderThanMs) chosen.add(e);
  }
  if (options.maxBytes !== undefined) {
    let size = lru.filter((e) => !chosen.has(e)).reduce((a, e) => a + e.bytes, 0);
    for (const e of lru) {
      if (size <= options.maxBytes) break;
      if (chosen.has(e)) continue;
      chosen.add(e);
      size -= e.bytes;
    }
  }
  return lru.filter((e) => chosen.has(e));
}

/**
 * Remove blobs from the cache (see {@link choosePrune}). A blob whose `<hex>.lock` another process
 * holds (a squash downloading it right now) is never removed; the removal itself happens while
 * holding that lock, so a squash starting meanwhile waits and then downloads it again.
 */
export async function pruneBlobCache(
  cacheDir: string,
  options: PruneOptions,
): Promise<PruneResult> {
  const entries = await listBlobCache(cacheDir);
  const before = entries.reduce((a, e) => a + e.bytes, 0);
  const removed: CacheEntry[] = [];
  const busy: CacheEntry[] = [];
  for (const e of choosePrune(entries, options)) {
    const lockPath = `${e.path.replace(/\.partial$/, "")}.lock`;
    let lock: Deno.FsFile;
    try {
      lock = await openOwnFileForWrite(lockPath, { append: true });
    } catch {
      busy.push(e); // not ours or unreadable: leave it
      continue;
    }
    try {
      if (!(await lock.tryLock(true))) {
        busy.push(e);
        continue;
      }
      if (!options.dryRun) await Deno.remove(e.path);
      removed.push(e);
    } finally {
      lock.close();
    }
  }
  const gone = removed.reduce((a, e) => a + e.bytes, 0);
  return { removed, busy, before, after: before - gone };
}

/** `50G`, `500M`, `1T`, `1024` (bytes; K/M/G/T are powers of 1024, an optional `B`/`iB` ignored). */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) return undefined;
  const pow = " KMGT".indexOf(m[2].toUpperCase() || " ");
  return Math.round(Number(m[1]) * 1024 ** pow);
}

/** `7d`, `12h`, `30m`, `2w` → milliseconds. */
export function parseAge(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$/.exec(text);
  if (!m) return undefined;
  const unit = { m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[m[2] as "m" | "h" | "d" | "w"];
  return Number(m[1]) * unit;
}

/** The cache size cap from `NEMOTRON_SQUASH_CACHE_MAX` (e.g. `50G`), undefined when unset. */
export function cacheCap(env: (k: string) => string | undefined = (k) => Deno.env.get(k)):
  | number
  | undefined {
  const v = env("NEMOTRON_SQUASH_CACHE_MAX");
  if (v === undefined || v === "") return undefined;
  const n = parseSize(v);
  if (n === undefined) {
    throw new UsageError(`NEMOTRON_SQUASH_CACHE_MAX must be a size like 50G, got '${v}'`, {
      hint: "units K, M, G, T (powers of 1024); unset it for no cap",
    });
  }
  return n;
}
