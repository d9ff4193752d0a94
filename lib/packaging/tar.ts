/**
 * Deterministic tar.gz writer for code packages.
 *
 * The same entries give byte-identical archives (and so the same sha256): entries are written in
 * the order given (callers sort them), every header carries the same mtime, uid/gid 0, uname/gname
 * `root`, and a normalised mode: 0644, or 0755 for executables; entries marked `ownerOnly` (files
 * others cannot read on disk, the train config) get 0600, or 0700. Names that do not fit a ustar
 * header, long symlink targets and sizes of 8 GiB or more get a PAX extended header. The gzip
 * header has mtime 0 and no file name. The archive is written to a temporary file next to its
 * destination and renamed into place, so a reader never sees a half-written package. The archive
 * file itself is created 0600 (it may hold owner-only files).
 */

import { basename, dirname, join } from "../path.ts";

/** The mtime of every entry: 2000-01-01T00:00:00Z (a fixed, plausible date; tar warns on 0). */
export const TAR_MTIME = 946684800;

/** What a tar entry holds. Regular files are streamed from disk or written from memory. */
export type TarEntry =
  | {
    readonly kind: "file";
    readonly name: string;
    readonly path: string;
    readonly size: number;
    readonly executable: boolean;
    /** Mode 0600/0700 instead of 0644/0755 (private content). */
    readonly ownerOnly?: boolean;
  }
  | {
    readonly kind: "bytes";
    readonly name: string;
    readonly data: Uint8Array;
    readonly executable: boolean;
    /** Mode 0600/0700 instead of 0644/0755 (private content). */
    readonly ownerOnly?: boolean;
  }
  | { readonly kind: "symlink"; readonly name: string; readonly target: string }
  | {
    /** Content supplied by a reader (e.g. a git blob); it must yield exactly `size` bytes. */
    readonly kind: "stream";
    readonly name: string;
    readonly size: number;
    readonly executable: boolean;
    readonly open: () => AsyncIterable<Uint8Array>;
    /** Mode 0600/0700 instead of 0644/0755 (private content). */
    readonly ownerOnly?: boolean;
  };

/** The result of writing an archive. */
export interface TarResult {
  readonly path: string;
  readonly sha256: string;
  /** Size of the compressed archive in bytes. */
  readonly bytes: number;
  readonly entries: number;
}

const BLOCK = 512;
const CHUNK = 1 << 20; // bytes handed to gzip at a time
const SMALL_FILE = 1 << 20; // files up to this size are read in one call, larger ones streamed
const MAX_OCTAL_SIZE = 0o77777777777; // largest size a 12-byte octal field holds
const encoder = new TextEncoder();

/** Byte-wise comparison of names (UTF-8 order), the one sort order of entries in a package. */
export function compareNames(a: string, b: string): number {
  // UTF-16 order differs from UTF-8 byte order only for astral vs. U+E000–U+FFFF; compare code points.
  if (a === b) return 0;
  const la = a.length, lb = b.length;
  for (let i = 0, j = 0; i < la && j < lb;) {
    const ca = a.codePointAt(i)!, cb = b.codePointAt(j)!;
    if (ca !== cb) return ca < cb ? -1 : 1;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  return la < lb ? -1 : la > lb ? 1 : 0;
}

/**
 * Buffers tar bytes and hands them to a sink in large chunks. One instance writes one archive.
 */
class TarStream {
  #buf: Uint8Array<ArrayBuffer> = new Uint8Array(CHUNK);
  #len = 0;
  constructor(private readonly sink: (chunk: Uint8Array<ArrayBuffer>) => Promise<void>) {}

  /** Append bytes, flushing full chunks to the sink. */
  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(data.length - off, CHUNK - this.#len);
      this.#buf.set(data.subarray(off, off + n), this.#len);
      this.#len += n;
      off += n;
      if (this.#len === CHUNK) await this.flush();
    }
  }

  /** Append `n` zero bytes (padding). */
  async zeros(n: number): Promise<void> {
    while (n > 0) {
      const k = Math.min(n, CHUNK - this.#len);
      this.#buf.fill(0, this.#len, this.#len + k);
      this.#len += k;
      n -= k;
      if (this.#len === CHUNK) await this.flush();
    }
  }

  /** Room left in the current chunk: lets small files be read straight into it. */
  reserve(n: number): Uint8Array | undefined {
    return this.#len + n <= CHUNK ? this.#buf.subarray(this.#len, this.#len + n) : undefined;
  }

  /** Mark `n` bytes of a `reserve`d region as written. */
  async commit(n: number): Promise<void> {
    this.#len += n;
    if (this.#len === CHUNK) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#len === 0) return;
    const out = this.#buf.slice(0, this.#len);
    this.#len = 0;
    await this.sink(out);
  }
}

function writeString(h: Uint8Array, off: number, len: number, bytes: Uint8Array): void {
  h.set(bytes.subarray(0, len), off);
}

function writeOctal(h: Uint8Array, off: number, len: number, value: number): void {
  const s = value.toString(8).padStart(len - 1, "0");
  h.set(encoder.encode(s), off); // followed by the NUL already in the zeroed header
}

/** Split a UTF-8 name into ustar (prefix, name), or undefined if it does not fit. */
function splitUstarName(name: Uint8Array): [Uint8Array, Uint8Array] | undefined {
  if (name.length <= 100) return [new Uint8Array(0), name];
  if (name.length > 256) return undefined;
  // The prefix ends at a '/', is at most 155 bytes, and the rest is at most 100 bytes.
  for (let i = Math.min(155, name.length - 1); i > 0; i--) {
    if (name[i] === 0x2f && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return [name.subarray(0, i), name.subarray(i + 1)];
    }
  }
  return undefined;
}

/** One 512-byte ustar header. */
function ustarHeader(
  name: Uint8Array,
  prefix: Uint8Array,
  mode: number,
  size: number,
  type: string,
  linkname: Uint8Array,
): Uint8Array {
  const h = new Uint8Array(BLOCK);
  writeString(h, 0, 100, name);
  writeOctal(h, 100, 8, mode);
  writeOctal(h, 108, 8, 0);
  writeOctal(h, 116, 8, 0);
  writeOctal(h, 124, 12, size);
  writeOctal(h, 136, 12, TAR_MTIME);
  h.fill(0x20, 148, 156); // checksum placeholder: spaces
  h[156] = type.charCodeAt(0);
  writeString(h, 157, 100, linkname);
  h.set(encoder.encode("ustar\u000000"), 257);
  writeString(h, 265, 32, encoder.encode("root"));
  writeString(h, 297, 32, encoder.encode("root"));
  writeString(h, 345, 155, prefix);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  const chk = encoder.encode(sum.toString(8).padStart(6, "0"));
  h.set(chk, 148);
  h[154] = 0;
  h[155] = 0x20;
  return h;
}

/** A PAX record `"<len> key=value\n"`, where len counts the whole record. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLen = encoder.encode(body).length;
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  return `${len}${body}`;
}

/** The header block(s) of one entry, with a PAX header first when ustar cannot hold it. */
function entryHeaders(
  nameStr: string,
  mode: number,
  size: number,
  type: string,
  linkStr: string,
): Uint8Array[] {
  const name = encoder.encode(nameStr);
  const link = encoder.encode(linkStr);
  const split = splitUstarName(name);
  const pax: string[] = [];
  if (!split) pax.push(paxRecord("path", nameStr));
  if (link.length > 100) pax.push(paxRecord("linkpath", linkStr));
  if (size > MAX_OCTAL_SIZE) pax.push(paxRecord("size", String(size)));
  const out: Uint8Array[] = [];
  if (pax.length > 0) {
    const body = encoder.encode(pax.join(""));
    out.push(
      ustarHeader(
        encoder.encode("././@PaxHeader"),
        new Uint8Array(0),
        0o644,
        body.length,
        "x",
        new Uint8Array(0),
      ),
    );
    const padded = new Uint8Array(Math.ceil(body.length / BLOCK) * BLOCK);
    padded.set(body);
    out.push(padded);
  }
  const [prefix, short] = split ?? [new Uint8Array(0), name.subarray(name.length - 100)];
  out.push(ustarHeader(short, prefix, mode, size > MAX_OCTAL_SIZE ? 0 : size, type, link));
  return out;
}

/** Reject names that would extract outside the target directory or are not plain relative paths. */
function checkName(name: string): void {
  if (
    name === "" || name.startsWith("/") || name.endsWith("/") || name.includes("\0") ||
    name.split("/").some((p) => p === "" || p === "." || p === "..")
  ) {
    throw new Error(`invalid archive entry name: ${JSON.stringify(name)}`);
  }
}

async function writeEntry(out: TarStream, e: TarEntry): Promise<void> {
  checkName(e.name);
  if (e.kind === "symlink") {
    for (const h of entryHeaders(e.name, 0o777, 0, "2", e.target)) await out.write(h);
    return;
  }
  const mode = e.ownerOnly ? (e.executable ? 0o700 : 0o600) : (e.executable ? 0o755 : 0o644);
  const size = e.kind === "bytes" ? e.data.length : e.size;
  for (const h of entryHeaders(e.name, mode, size, "0", "")) await out.write(h);
  let written = 0;
  if (e.kind === "bytes") {
    await out.write(e.data);
    written = e.data.length;
  } else if (e.kind === "file" && e.size <= SMALL_FILE) {
    written = await readSmallFile(out, e.path, e.size);
  } else {
    const chunks = e.kind === "file" ? readLargeFile(e.path) : e.open();
    for await (const chunk of chunks) {
      const take = chunk.subarray(0, Math.max(0, size - written));
      await out.write(take);
      written += take.length;
    }
  }
  if (written !== size) {
    throw new Error(
      `${e.name}: size changed while packaging (expected ${size} bytes, read ${written})`,
    );
  }
  const pad = (BLOCK - (size % BLOCK)) % BLOCK;
  if (pad) await out.zeros(pad);
}

/** Read a small file straight into the output buffer when it fits; returns bytes written. */
async function readSmallFile(out: TarStream, path: string, size: number): Promise<number> {
  const slot = out.reserve(size);
  if (slot) {
    using f = Deno.openSync(path);
    let n = 0;
    while (n < size) {
      const r = f.readSync(slot.subarray(n));
      if (r === null || r === 0) break;
      n += r;
    }
    await out.commit(n);
    return n;
  }
  const data = Deno.readFileSync(path);
  const take = data.subarray(0, size);
  await out.write(take);
  return take.length;
}

async function* readLargeFile(path: string): AsyncIterable<Uint8Array> {
  using f = await Deno.open(path);
  const buf = new Uint8Array(CHUNK);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) return;
    yield buf.slice(0, n);
  }
}

/**
 * Write `entries` (already sorted by the caller) as a deterministic tar.gz at `dest`, atomically.
 * Returns the archive's sha256 and size. Throws if a file changes size while it is read.
 */
export async function writeTarGz(dest: string, entries: Iterable<TarEntry>): Promise<TarResult> {
  const dir = dirname(dest);
  const tmp = join(dir, `.${basename(dest)}.tmp-${crypto.randomUUID().slice(0, 8)}`);
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  // node:crypto is the one streaming sha256 available; loaded here, never at start-up.
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  let bytes = 0;
  let count = 0;
  const gzip = new CompressionStream("gzip");
  const drain = (async () => {
    for await (const chunk of gzip.readable) {
      hash.update(chunk);
      bytes += chunk.length;
      let off = 0;
      while (off < chunk.length) off += await file.write(chunk.subarray(off));
    }
  })();
  const writer = gzip.writable.getWriter();
  try {
    const out = new TarStream((chunk) => writer.write(chunk));
    for (const e of entries) {
      await writeEntry(out, e);
      count++;
    }
    await out.zeros(2 * BLOCK);
    await out.flush();
    await writer.close();
    await drain;
    await file.sync();
    file.close();
    await Deno.rename(tmp, dest);
  } catch (err) {
    try {
      await writer.abort(err);
    } catch { /* already failed */ }
    await drain.catch(() => {});
    try {
      file.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  return { path: dest, sha256: hash.digest("hex"), bytes, entries: count };
}
