/**
 * Streaming tar reading and writing, just enough for OCI layers and for the merged stream that
 * `mksquashfs -tar` reads. Reading understands ustar, GNU (long names `L`/`K`, base-256 numbers)
 * and PAX (`x` records: path, linkpath, size, uid, gid, uname, gname, mtime, SCHILY.xattr.*).
 * Writing emits ustar headers, with a PAX record in front when a value does not fit.
 * Nothing holds an entry's content in memory: contents are passed through chunk by chunk.
 */
import { RuntimeFailure } from "../errors.ts";

/** The kinds of tar entries nemotron handles. */
export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

/** One header, decoded (PAX and GNU extensions applied). */
export interface TarHeader {
  path: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.*` records, name without the prefix → raw value. */
  xattrs?: Record<string, string>;
}

const BLOCK = 512;
/**
 * Most bytes of extended-header data (PAX `x`/`g` records, GNU long names and links) accepted in
 * front of one entry. Real ones are a few hundred bytes (xattrs maybe a few KiB); a crafted layer
 * could otherwise make nemotron (and mksquashfs) hold gigabytes.
 */
export const MAX_EXTENDED_HEADER_BYTES = 1024 * 1024;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Reads exact byte counts from an async iterable of chunks without copying when a request fits in
 * the current chunk. Returned views are valid only until the next call.
 */
export class ByteReader {
  #it: AsyncIterator<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #done = false;
  /** Total bytes consumed so far (for error messages). */
  consumed = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  async #fill(): Promise<boolean> {
    while (!this.#done) {
      const r = await this.#it.next();
      if (r.done) {
        this.#done = true;
        return false;
      }
      if (r.value.length > 0) {
        this.#buf = r.value;
        this.#pos = 0;
        return true;
      }
    }
    return false;
  }

  /** Exactly `n` bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Uint8Array> {
    if (this.#buf.length - this.#pos >= n) {
      const out = this.#buf.subarray(this.#pos, this.#pos + n);
      this.#pos += n;
      this.consumed += n;
      return out;
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.#pos >= this.#buf.length && !(await this.#fill())) break;
      const take = Math.min(n - got, this.#buf.length - this.#pos);
      out.set(this.#buf.subarray(this.#pos, this.#pos + take), got);
      this.#pos += take;
      got += take;
    }
    this.consumed += got;
    return got === n ? out : out.subarray(0, got);
  }

  /** Yield the next `n` bytes as chunk views (zero-copy). Throws on a short stream. */
  async *chunks(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (this.#pos >= this.#buf.length && !(await this.#fill())) {
        throw new RuntimeFailure(`tar stream ended ${left} bytes early`);
      }
      const take = Math.min(left, this.#buf.length - this.#pos);
      const out = this.#buf.subarray(this.#pos, this.#pos + take);
      this.#pos += take;
      this.consumed += take;
      left -= take;
      yield out;
    }
  }

  /** Skip `n` bytes. */
  async skip(n: number): Promise<void> {
    for await (const _ of this.chunks(n)) { /* discard */ }
  }

  /** Drain whatever is left (so a decompressor can check its trailer). */
  async drain(): Promise<void> {
    this.#pos = this.#buf.length;
    while (await this.#fill()) this.#pos = this.#buf.length;
  }
}

/** Bytes of padding after `size` bytes of content. */
export function padding(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

function cstring(b: Uint8Array, off: number, len: number): string {
  let end = off;
  const stop = off + len;
  while (end < stop && b[end] !== 0) end++;
  return decoder.decode(b.subarray(off, end));
}

function readNumber(b: Uint8Array, off: number, len: number): number {
  if (b[off] & 0x80) {
    // GNU base-256: big-endian two's complement in the remaining bits.
    let v = b[off] & 0x3f;
    const negative = (b[off] & 0x40) !== 0;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return negative ? v - Math.pow(2, 6 + 8 * (len - 1)) : v;
  }
  const s = cstring(b, off, len).trim();
  if (s === "") return 0;
  const v = parseInt(s, 8);
  if (Number.isNaN(v)) throw new RuntimeFailure(`bad number '${s}' in tar header`);
  return v;
}

function checksumOk(b: Uint8Array): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 32 : b[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  const stored = readNumber(b, 148, 8);
  return stored === unsigned || stored === signed;
}

function typeOf(
  flag: number,
): TarEntryType | "pax" | "paxglobal" | "gnulongname" | "gnulonglink" | "other" {
  switch (String.fromCharCode(flag)) {
    case "0":
    case "\0":
    case "7":
      return "file";
    case "1":
      return "hardlink";
    case "2":
      return "symlink";
    case "3":
      return "char";
    case "4":
      return "block";
    case "5":
      return "dir";
    case "6":
      return "fifo";
    case "x":
      return "pax";
    case "g":
      return "paxglobal";
    case "L":
      return "gnulongname";
    case "K":
      return "gnulonglink";
    default:
      return "other";
  }
}

/** Parse PAX records `"LEN key=value\n"`. Values are kept as raw (latin1-safe) UTF-8 strings. */
export function parsePax(data: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    let sp = i;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const len = parseInt(decoder.decode(data.subarray(i, sp)), 10);
    if (!(len > 0) || i + len > data.length) break;
    const rec = data.subarray(sp + 1, i + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out[decoder.decode(rec.subarray(0, eq))] = decoder.decode(rec.subarray(eq + 1));
    i += len;
  }
  return out;
}

/**
 * Iterate the entries of a tar stream. For each header the caller MUST either consume exactly
 * `header.size` bytes through `reader.chunks()` or call nothing (the iterator then skips them).
 */
export async function* readTar(
  reader: ByteReader,
  where = "tar stream",
): AsyncGenerator<TarHeader> {
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  let extendedBytes = 0; // extended-header data in front of the current entry
  for (;;) {
    const block = await reader.read(BLOCK);
    if (block.length === 0) return; // tolerate a missing end-of-archive marker
    if (block.length < BLOCK) throw new RuntimeFailure(`${where}: truncated tar header`);
    if (block.every((x) => x === 0)) return; // end of archive
    if (!checksumOk(block)) {
      throw new RuntimeFailure(
        `${where}: bad tar header checksum at byte ${reader.consumed - BLOCK}`,
      );
    }
    const kind = typeOf(block[156]);
    const rawSize = readNumber(block, 124, 12);
    if (
      kind === "pax" || kind === "paxglobal" || kind === "gnulongname" || kind === "gnulonglink"
    ) {
      extendedBytes += rawSize;
      if (extendedBytes > MAX_EXTENDED_HEADER_BYTES) {
        throw new RuntimeFailure(
          `${where}: extended tar header of ${extendedBytes} bytes at byte ${
            reader.consumed - BLOCK
          } exceeds the ${MAX_EXTENDED_HEADER_BYTES}-byte limit`,
          { hint: "the layer is malformed or crafted; no output was written" },
        );
      }
      const data = (await reader.read(rawSize)).slice();
      await reader.skip(padding(rawSize));
      if (kind === "pax") pax = { ...pax, ...parsePax(data) };
      else if (kind === "gnulongname") longName = cstring(data, 0, data.length);
      else if (kind === "gnulonglink") longLink = cstring(data, 0, data.length);
      continue;
    }
    if (kind === "other") {
      const flag = String.fromCharCode(block[156]);
      throw new RuntimeFailure(
        `${where}: unsupported tar entry type '${flag}' (${cstring(block, 0, 100)})`,
      );
    }
    if (Object.keys(pax).some((k) => k.startsWith("GNU.sparse"))) {
      throw new RuntimeFailure(
        `${where}: sparse tar entries are not supported (${cstring(block, 0, 100)})`,
      );
    }
    const magic = cstring(block, 257, 6);
    const prefix = magic === "ustar" && block[263] === 0x30 ? cstring(block, 345, 155) : "";
    let path = cstring(block, 0, 100);
    if (prefix) path = `${prefix}/${path}`;
    const h: TarHeader = {
      path: pax.path ?? longName ?? path,
      type: kind,
      mode: readNumber(block, 100, 8) & 0o7777,
      uid: pax.uid !== undefined ? Number(pax.uid) : readNumber(block, 108, 8),
      gid: pax.gid !== undefined ? Number(pax.gid) : readNumber(block, 116, 8),
      uname: pax.uname ?? cstring(block, 265, 32),
      gname: pax.gname ?? cstring(block, 297, 32),
      mtime: pax.mtime !== undefined ? Math.floor(Number(pax.mtime)) : readNumber(block, 136, 12),
      size: pax.size !== undefined ? Number(pax.size) : rawSize,
      linkname: pax.linkpath ?? longLink ?? cstring(block, 157, 100),
      devmajor: readNumber(block, 329, 8),
      devminor: readNumber(block, 337, 8),
    };
    if (!Number.isSafeInteger(h.size) || h.size < 0) {
      throw new RuntimeFailure(`${where}: bad size '${pax.size}' for ${h.path}`);
    }
    for (const [k, v] of Object.entries(pax)) {
      if (k.startsWith("SCHILY.xattr.")) (h.xattrs ??= {})[k.slice(13)] = v;
    }
    // Only regular files carry data (GNU tar and Go write size 0 for links and specials).
    if (h.type !== "file") h.size = 0;
    pax = {};
    longName = undefined;
    longLink = undefined;
    extendedBytes = 0;
    const before = reader.consumed;
    yield h;
    const used = reader.consumed - before;
    if (used > h.size) throw new RuntimeFailure(`${where}: consumer read past entry ${h.path}`);
    await reader.skip(h.size - used + padding(h.size));
  }
}

// ------------------------------------------------------------------------------------ writing ---

const TYPE_FLAG: Record<TarEntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

function putString(b: Uint8Array, off: number, len: number, s: Uint8Array): void {
  b.set(s.subarray(0, len), off);
}

function putOctal(b: Uint8Array, off: number, len: number, v: number): boolean {
  const s = Math.max(0, Math.floor(v)).toString(8);
  if (s.length > len - 1) return false;
  putString(b, off, len, encoder.encode(s.padStart(len - 1, "0")));
  return true;
}

function paxRecord(key: string, value: string): Uint8Array {
  const body = encoder.encode(` ${key}=${value}\n`);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return encoder.encode(`${len}${` ${key}=${value}\n`}`);
}

function rawHeader(
  name: Uint8Array,
  h: Omit<TarHeader, "path" | "linkname"> & { linkname: Uint8Array },
  flag: string,
): { block: Uint8Array; fits: boolean } {
  const b = new Uint8Array(BLOCK);
  let fits = name.length <= 100 && h.linkname.length <= 100;
  putString(b, 0, 100, name);
  fits = putOctal(b, 100, 8, h.mode) && fits;
  fits = putOctal(b, 108, 8, h.uid) && fits;
  fits = putOctal(b, 116, 8, h.gid) && fits;
  fits = putOctal(b, 124, 12, h.size) && fits;
  fits = putOctal(b, 136, 12, Math.max(0, h.mtime)) && fits;
  b.fill(32, 148, 156);
  b[156] = flag.charCodeAt(0);
  putString(b, 157, 100, h.linkname);
  putString(b, 257, 8, encoder.encode("ustar\u000000"));
  const uname = encoder.encode(h.uname);
  const gname = encoder.encode(h.gname);
  fits = uname.length <= 31 && gname.length <= 31 && fits;
  putString(b, 265, 31, uname);
  putString(b, 297, 31, gname);
  putOctal(b, 329, 8, h.devmajor);
  putOctal(b, 337, 8, h.devminor);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  putString(b, 148, 8, encoder.encode(sum.toString(8).padStart(6, "0") + "\u0000 "));
  return { block: b, fits };
}

/**
 * Encode one header (and a PAX record before it when a value does not fit ustar, or when there are
 * xattrs). Directories get a trailing `/`. The caller writes `size` content bytes + `padding(size)`.
 */
export function encodeHeader(h: TarHeader): Uint8Array {
  const path = h.type === "dir" && !h.path.endsWith("/") ? `${h.path}/` : h.path;
  const nameBytes = encoder.encode(path);
  const linkBytes = encoder.encode(h.linkname);
  const size = h.type === "file" ? h.size : 0;
  const main = rawHeader(nameBytes, { ...h, size, linkname: linkBytes }, TYPE_FLAG[h.type]);
  if (main.fits && !h.xattrs) return main.block;
  const recs: Uint8Array[] = [];
  if (nameBytes.length > 100) recs.push(paxRecord("path", path));
  if (size > 0o77777777777) recs.push(paxRecord("size", String(size)));
  if (h.uid > 0o7777777) recs.push(paxRecord("uid", String(h.uid)));
  if (h.gid > 0o7777777) recs.push(paxRecord("gid", String(h.gid)));
  if (encoder.encode(h.uname).length > 31) recs.push(paxRecord("uname", h.uname));
  if (encoder.encode(h.gname).length > 31) recs.push(paxRecord("gname", h.gname));
  if (h.mtime < 0 || h.mtime > 0o77777777777) recs.push(paxRecord("mtime", String(h.mtime)));
  for (const [k, v] of Object.entries(h.xattrs ?? {})) recs.push(paxRecord(`SCHILY.xattr.${k}`, v));
  // Long link targets go in a GNU 'K' record: mksquashfs 4.5.1 drops the leading '/' of a PAX
  // linkpath (observed), but reads GNU long links correctly.
  const longLink = linkBytes.length > 100 ? gnuLongLink(linkBytes) : new Uint8Array(0);
  if (recs.length === 0) {
    const out = new Uint8Array(longLink.length + BLOCK);
    out.set(longLink, 0);
    out.set(main.block, longLink.length);
    return out;
  }
  const paxLen = recs.reduce((n, r) => n + r.length, 0);
  const paxName = encoder.encode("PaxHeaders/" + path.slice(-80));
  const paxHead = rawHeader(paxName, {
    ...h,
    mode: 0o644,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    size: paxLen,
    linkname: new Uint8Array(0),
    devmajor: 0,
    devminor: 0,
  }, "x");
  const out = new Uint8Array(longLink.length + BLOCK + paxLen + padding(paxLen) + BLOCK);
  out.set(longLink, 0);
  out.set(paxHead.block, longLink.length);
  let off = longLink.length + BLOCK;
  for (const r of recs) {
    out.set(r, off);
    off += r.length;
  }
  out.set(main.block, longLink.length + BLOCK + paxLen + padding(paxLen));
  return out;
}

/** A GNU `././@LongLink` entry of type 'K' carrying `link` (NUL-terminated). */
function gnuLongLink(link: Uint8Array): Uint8Array {
  const size = link.length + 1;
  const head = rawHeader(
    encoder.encode("././@LongLink"),
    {
      path: "",
      type: "file",
      mode: 0o644,
      uid: 0,
      gid: 0,
      uname: "",
      gname: "",
      mtime: 0,
      size,
      linkname: new Uint8Array(0),
      devmajor: 0,
      devminor: 0,
    } as Omit<TarHeader, "path" | "linkname"> & { linkname: Uint8Array },
    "K",
  );
  const out = new Uint8Array(BLOCK + size + padding(size));
  out.set(head.block, 0);
  out.set(link, BLOCK);
  return out;
}

/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE: Uint8Array = new Uint8Array(2 * BLOCK);

/** Zero bytes for padding (shared, never written to). */
export const ZEROS: Uint8Array = new Uint8Array(BLOCK);
