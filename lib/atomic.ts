/**
 * Atomic file writes: the data goes to a temp file in the same directory, which is then renamed
 * over the target, so readers see the old file or the new one, never a partial one.
 */
import * as path from "./path.ts";

/** Write `data` (text or bytes) to `file` atomically, with `mode` (default 0644). */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.tmp`,
  );
  try {
    if (typeof data === "string") Deno.writeTextFileSync(tmp, data, { mode });
    else Deno.writeFileSync(tmp, data, { mode });
    Deno.chmodSync(tmp, mode); // the umask may have taken bits away
    Deno.renameSync(tmp, file);
  } catch (err) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never created */ }
    throw err;
  }
}
