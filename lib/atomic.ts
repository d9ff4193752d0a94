/**
 * Atomic file writes: the data goes to a new temp file in the same directory, which is then
 * renamed over the target, so readers see the old file or the new one, never a partial one.
 *
 * Safe in a directory other users can write: the temp file has an unguessable name and is created
 * with O_CREAT|O_EXCL (`createNew`), which never follows a symlink planted at that name nor opens
 * a file someone else created there; `rename` replaces a symlink at the target itself instead of
 * writing through it. The file's mode honours the umask (nothing forces group/other bits on).
 */
import * as path from "./path.ts";
import { RuntimeFailure } from "./errors.ts";

/** A random 32-hex-digit suffix for temp names (128 bits: cannot be guessed or pre-planted). */
function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Write `data` (text or bytes) to `file` atomically. `mode` (default 0644) is the mode asked for
 * at creation, so the umask applies (0600 stays owner-only whatever the umask).
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomSuffix()}.tmp`);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let created = false;
  try {
    const f = Deno.openSync(tmp, { write: true, createNew: true, mode });
    created = true;
    try {
      let off = 0;
      while (off < bytes.length) off += f.writeSync(bytes.subarray(off));
    } finally {
      f.close();
    }
    Deno.renameSync(tmp, file);
  } catch (err) {
    if (created) {
      try {
        Deno.removeSync(tmp);
      } catch { /* already renamed or gone */ }
    }
    throw err;
  }
}

/** `lstat` (a symlink is reported as itself, never followed); undefined when nothing is there
 * (also when a parent is not a directory). */
export async function lstatOrUndefined(file: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw e;
  }
}

/**
 * Why an existing file (its `lstat`) must not be used as one of this user's own files, or
 * undefined when it may: only a regular file owned by this user qualifies (never a symlink, which
 * another user may have planted to make us write through it).
 */
export function notOwnFileReason(info: Deno.FileInfo): string | undefined {
  if (info.isSymlink) return "is a symbolic link";
  if (!info.isFile) return "is not a regular file";
  const uid = Deno.uid();
  if (uid !== null && info.uid !== null && info.uid !== uid) {
    return `belongs to uid ${info.uid}, not to you (uid ${uid})`;
  }
  return undefined;
}

/**
 * Open `file` for writing without ever following a symlink there: a new file is created with
 * O_CREAT|O_EXCL (`createNew`); with `append`, an existing file is opened only if it is a regular
 * file of this user, re-checked after opening (same inode) so a swap in between is caught. A file
 * that may not be used is a RuntimeFailure naming it.
 */
export async function openOwnFileForWrite(
  file: string,
  options: { append?: boolean } = {},
): Promise<Deno.FsFile> {
  try {
    return await Deno.open(file, { write: true, createNew: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists) || !options.append) throw e;
  }
  const before = await Deno.lstat(file);
  const why = notOwnFileReason(before);
  if (why) throw notOwnFile(file, why);
  const f = await Deno.open(file, { write: true, append: true });
  const after = await f.stat();
  if (after.ino !== before.ino || after.dev !== before.dev) {
    f.close();
    throw notOwnFile(file, "was replaced while being opened");
  }
  return f;
}

function notOwnFile(file: string, why: string): RuntimeFailure {
  return new RuntimeFailure(`${file} ${why}: refusing to write to it`, {
    hint: "someone else may have planted it; remove it (check who made it) and run again",
  });
}
