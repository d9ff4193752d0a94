/**
 * Built-in recipes travel inside the binary as text imports. Config loading, local runs and the
 * code packager need them as files, so they are unpacked once, content-addressed, to
 * `$NEMOTRON_HOME/recipes/<sha256[:16]>/` (atomically: a temp dir renamed into place; concurrent
 * processes agree). `--dry-run` unpacks into a temporary directory that is removed afterwards, so a
 * dry run leaves nothing behind.
 */
import * as path from "./path.ts";
import { ensureNemotronHome } from "./home.ts";

/** Files of one recipe family: path relative to the recipes root → text. */
export type RecipeFiles = Readonly<Record<string, string>>;

async function digest(files: RecipeFiles): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const name of Object.keys(files).sort()) {
    parts.push(enc.encode(`${name}\0${files[name].length}\0`), enc.encode(files[name]));
  }
  const total = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    total.set(p, off);
    off += p.length;
  }
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", total));
  return [...hash.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function writeAll(dir: string, files: RecipeFiles): void {
  for (const [rel, text] of Object.entries(files)) {
    const p = path.join(dir, rel);
    Deno.mkdirSync(path.dirname(p), { recursive: true });
    Deno.writeTextFileSync(p, text);
  }
}

/** Unpacked recipe files; `cleanup()` removes a temporary unpack (no-op for the cache). */
export interface UnpackedRecipes {
  readonly dir: string;
  cleanup(): void;
}

/**
 * Unpack `files` and return the directory. `temporary: true` (dry runs) uses a fresh temp dir that
 * `cleanup()` removes.
 */
export async function unpackRecipes(
  files: RecipeFiles,
  opts: { temporary?: boolean } = {},
): Promise<UnpackedRecipes> {
  if (opts.temporary) {
    const dir = Deno.makeTempDirSync({ prefix: "nemotron-recipes-" });
    writeAll(dir, files);
    return { dir, cleanup: () => Deno.removeSync(dir, { recursive: true }) };
  }
  const base = path.join(ensureNemotronHome(), "recipes");
  const dir = path.join(base, await digest(files));
  try {
    Deno.statSync(path.join(dir, ".complete"));
    return { dir, cleanup: () => {} };
  } catch { /* not unpacked yet */ }
  Deno.mkdirSync(base, { recursive: true });
  const tmp = Deno.makeTempDirSync({ dir: base, prefix: ".unpack-" });
  writeAll(tmp, files);
  Deno.writeTextFileSync(path.join(tmp, ".complete"), "");
  try {
    Deno.renameSync(tmp, dir);
  } catch {
    // Another process won the race (the target exists and is complete): use theirs.
    Deno.removeSync(tmp, { recursive: true });
  }
  return { dir, cleanup: () => {} };
}
