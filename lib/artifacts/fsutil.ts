/**
 * Small synchronous file helpers for the artifact registry: reads, listings and a recursive copy.
 * Synchronous on purpose: the config engine's `${art:…}` resolver is a plain function call.
 */
import { join } from "../path.ts";

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
