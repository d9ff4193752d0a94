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
