/**
 * Small synchronous file helpers for the artifact registry: atomic text writes and a recursive copy.
 * Synchronous on purpose: the config engine's `${art:…}` resolver is a plain function call.
 */
import { basename, dirname, join } from "../path.ts";

/** Write `text` to `path` atomically: a temp file in the same directory, then rename. */
export function writeTextAtomic(path: string, text: string): void {
  const tmp = join(
    dirname(path),
    `.${basename(path)}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`,
  );
  try {
    Deno.writeTextFileSync(tmp, text);
    Deno.renameSync(tmp, path);
  } catch (err) {
    try {
      Deno.removeSync(tmp);
    } catch { /* already gone */ }
    throw err;
  }
}

/** Read a file as text, or undefined when it does not exist. */
export function readTextIfExists(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Entries of a directory, or [] when it does not exist. */
export function listDir(path: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(path)];
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

/**
 * Copy a file or a directory tree from `src` to `dest` (which must not exist). Symlinks are copied
 * as symlinks; permissions of regular files are kept by `copyFileSync`.
 */
export function copyTree(src: string, dest: string): void {
  const info = Deno.lstatSync(src);
  if (info.isSymlink) {
    Deno.symlinkSync(Deno.readLinkSync(src), dest);
  } else if (info.isDirectory) {
    Deno.mkdirSync(dest);
    for (const entry of Deno.readDirSync(src)) {
      copyTree(join(src, entry.name), join(dest, entry.name));
    }
  } else {
    Deno.copyFileSync(src, dest);
  }
}
