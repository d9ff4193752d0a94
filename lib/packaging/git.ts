/**
 * The git queries the code packager needs, run with the system `git` (no library, no index writes:
 * every call sets GIT_OPTIONAL_LOCKS=0 so packaging never touches the user's index).
 */

import { RuntimeFailure, UsageError } from "../errors.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Run git in `cwd`; returns stdout bytes, or throws with git's stderr. */
async function git(cwd: string, args: readonly string[]): Promise<Uint8Array> {
  const out = await gitMaybe(cwd, args);
  if (out.code !== 0) {
    throw new RuntimeFailure(`git ${args.join(" ")} failed in ${cwd}: ${out.stderr.trim()}`);
  }
  return out.stdout;
}

async function gitMaybe(
  cwd: string,
  args: readonly string[],
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("git", {
      args: [...args],
      cwd,
      env: { GIT_OPTIONAL_LOCKS: "0", LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new RuntimeFailure("git is not installed (needed to package a git checkout)", {
        hint: "install git, or run from outside the checkout to ship only the recipe's own files",
      });
    }
    throw err;
  }
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

/** Split NUL-terminated git output into strings (paths must be UTF-8). */
function splitZ(bytes: Uint8Array, what: string): string[] {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new UsageError(`${what}: a path in the checkout is not valid UTF-8`, {
      hint: "rename the file, or add it to .gitignore",
    });
  }
  const parts = text.split("\0");
  if (parts.at(-1) === "") parts.pop();
  return parts;
}

/** The top-level directory of the git checkout containing `dir`, or undefined outside one. */
export async function checkoutRoot(dir: string): Promise<string | undefined> {
  const out = await gitMaybe(dir, ["rev-parse", "--show-toplevel"]);
  if (out.code !== 0) return undefined;
  const root = new TextDecoder().decode(out.stdout).trim();
  return root === "" ? undefined : root;
}

/** A submodule as the parent's index records it. */
export interface Gitlink {
  readonly path: string;
  readonly commit: string;
}

/** What the index holds: file paths (any stage, de-duplicated) and submodule gitlinks. */
export interface IndexListing {
  readonly files: readonly string[];
  readonly gitlinks: readonly Gitlink[];
}

/** Tracked paths of the checkout at `root`, from the index (`git ls-files -s`). */
export async function listIndex(root: string): Promise<IndexListing> {
  const lines = splitZ(await git(root, ["ls-files", "-z", "-s"]), "git ls-files");
  const files: string[] = [];
  const gitlinks: Gitlink[] = [];
  let last = "";
  for (const line of lines) {
    // "<mode> <sha> <stage>\t<path>"
    const tab = line.indexOf("\t");
    const path = line.slice(tab + 1);
    if (path === last) continue; // conflicted paths appear once per stage
    last = path;
    const [mode, sha] = line.slice(0, tab).split(" ");
    if (mode === "160000") gitlinks.push({ path, commit: sha });
    else files.push(path);
  }
  return { files, gitlinks };
}

/**
 * Untracked files that are not ignored (`git ls-files --others --exclude-standard`). Nested
 * repositories that are not submodules show up as `dir/`; they are returned separately.
 */
export async function listUntracked(
  root: string,
): Promise<{ files: string[]; nestedRepos: string[] }> {
  const all = splitZ(
    await git(root, ["ls-files", "-z", "--others", "--exclude-standard"]),
    "git ls-files --others",
  );
  return {
    files: all.filter((p) => !p.endsWith("/")),
    nestedRepos: all.filter((p) => p.endsWith("/")),
  };
}

/** `git rev-parse HEAD`, or undefined in a repository with no commits yet. */
export async function headCommit(root: string): Promise<string | undefined> {
  const out = await gitMaybe(root, ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]);
  if (out.code !== 0) return undefined;
  return new TextDecoder().decode(out.stdout).trim();
}

/**
 * `git diff HEAD --binary`: every uncommitted change to tracked files, binary-safe, except under
 * the `exclude` paths (relative to `root`; a trailing `/` names a directory).
 */
export function diffAgainstHead(
  root: string,
  exclude: readonly string[] = [],
): Promise<Uint8Array> {
  const specs = exclude.map((p) => `:(exclude,literal)${p.replace(/\/+$/, "")}`);
  return git(root, [
    "diff",
    "HEAD",
    "--binary",
    "--no-color",
    "--no-ext-diff",
    "--",
    ...(specs.length ? [".", ...specs] : []),
  ]);
}

/** True if `commit` exists as a commit object in the repository at `dir`. */
export async function hasCommit(dir: string, commit: string): Promise<boolean> {
  const out = await gitMaybe(dir, ["cat-file", "-e", `${commit}^{commit}`]);
  return out.code === 0;
}

/** One entry of `git ls-tree -r -l` at a commit. */
export interface TreeEntry {
  readonly mode: string;
  readonly type: "blob" | "commit";
  readonly sha: string;
  /** Blob size in bytes (0 for commits). */
  readonly size: number;
  readonly path: string;
}

/** Every file (and nested gitlink) of `commit` in the repository at `dir`. */
export async function listTree(dir: string, commit: string): Promise<TreeEntry[]> {
  const lines = splitZ(
    await git(dir, ["ls-tree", "-r", "-z", "-l", "--full-tree", commit]),
    `git ls-tree ${commit}`,
  );
  return lines.map((line) => {
    // "<mode> <type> <sha> <size padded>\t<path>"
    const tab = line.indexOf("\t");
    const [mode, type, sha, size] = line.slice(0, tab).trim().split(/ +/);
    return {
      mode,
      type: type === "commit" ? "commit" : "blob",
      sha,
      size: type === "blob" ? Number(size) : 0,
      path: line.slice(tab + 1),
    };
  });
}

/**
 * Reads blobs of one repository through a single `git cat-file --batch` process, one at a time
 * and in any order. Close it when done.
 */
export class BlobReader {
  readonly #proc: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stdout: ReadableStreamDefaultReader<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);

  constructor(dir: string) {
    this.#proc = new Deno.Command("git", {
      args: ["cat-file", "--batch"],
      cwd: dir,
      env: { GIT_OPTIONAL_LOCKS: "0" },
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#stdin = this.#proc.stdin.getWriter();
    this.#stdout = this.#proc.stdout.getReader();
  }

  async #fill(): Promise<boolean> {
    const r = await this.#stdout.read();
    if (r.done) return false;
    if (this.#buf.length === 0) this.#buf = r.value;
    else {
      const merged = new Uint8Array(this.#buf.length + r.value.length);
      merged.set(this.#buf);
      merged.set(r.value, this.#buf.length);
      this.#buf = merged;
    }
    return true;
  }

  /** The content of blob `sha`, in chunks. Must be consumed fully before the next read. */
  async *read(sha: string): AsyncIterable<Uint8Array> {
    await this.#stdin.write(encoder.encode(`${sha}\n`));
    let nl: number;
    while ((nl = this.#buf.indexOf(0x0a)) < 0) {
      if (!await this.#fill()) throw new RuntimeFailure(`git cat-file ended early reading ${sha}`);
    }
    const header = new TextDecoder().decode(this.#buf.subarray(0, nl)).split(" ");
    this.#buf = this.#buf.subarray(nl + 1);
    if (header[1] !== "blob") throw new RuntimeFailure(`git object ${sha} is not a blob`);
    let left = Number(header[2]);
    while (left > 0) {
      if (this.#buf.length === 0 && !await this.#fill()) {
        throw new RuntimeFailure(`git cat-file ended early reading ${sha}`);
      }
      const take = this.#buf.subarray(0, Math.min(left, this.#buf.length));
      this.#buf = this.#buf.subarray(take.length);
      left -= take.length;
      yield take;
    }
    while (this.#buf.length === 0) {
      if (!await this.#fill()) throw new RuntimeFailure(`git cat-file ended early reading ${sha}`);
    }
    this.#buf = this.#buf.subarray(1); // the newline after the content
  }

  /** The whole content of a (small) blob. */
  async readAll(sha: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for await (const c of this.read(sha)) parts.push(c.slice());
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    this.#stdout.releaseLock();
    await this.#proc.stdout.cancel().catch(() => {});
    await this.#proc.status;
  }
}
