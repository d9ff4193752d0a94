/**
 * Is a directory safe from other users? The check OpenSSH's StrictModes makes, for the places
 * nemotron writes code and scripts that later run as you (job dirs, `remote_job_dir`): every
 * component of the path, as written and after resolving symlinks, is owned by you or root and is
 * not writable by group or others unless it is sticky (`/tmp`-style) — and the component below a
 * sticky shared directory is yours or root's. Components that do not exist yet are fine: nemotron
 * creates them itself, privately.
 */
import * as path from "./path.ts";

/** Why a directory on the way to a job dir cannot be trusted. */
export interface PathProblem {
  /** The offending directory (or symlink). */
  readonly dir: string;
  /** What is wrong with it. */
  readonly reason: string;
  /** How to fix it. */
  readonly fix: string;
}

function modeText(mode: number): string {
  return "0" + (mode & 0o7777).toString(8);
}

/** The components of an absolute path: `/a/b` → `["/", "/a", "/a/b"]`. */
function prefixes(abs: string): string[] {
  const out = ["/"];
  let cur = "";
  for (const part of abs.split("/").filter((p) => p !== "")) {
    cur += "/" + part;
    out.push(cur);
  }
  return out;
}

/** What the check needs to know of a path (lstat); `undefined` when it does not exist. */
export interface PathFacts {
  readonly uid: number | null;
  readonly mode: number | null;
  readonly isSymlink: boolean;
}

/**
 * How the check looks at a filesystem: this machine's (default), or another one's described by
 * facts gathered there (the ssh tunnel checks `remote_job_dir` on the cluster this way).
 */
export interface PathInspector {
  /** lstat, or undefined when the path does not exist. */
  lstat(p: string): PathFacts | undefined;
  /** The real path (symlinks resolved), or undefined when the path does not exist. */
  realPath(p: string): string | undefined;
}

/** The local filesystem. */
export const localInspector: PathInspector = {
  lstat(p) {
    try {
      const st = Deno.lstatSync(p);
      return { uid: st.uid, mode: st.mode, isSymlink: st.isSymlink };
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  },
  realPath(p) {
    try {
      return Deno.realPathSync(p);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  },
};

/** Check one chain of components (lstat each; stop at the first that does not exist). */
function checkChain(
  chain: readonly string[],
  uid: number,
  fs: PathInspector,
): PathProblem | undefined {
  let parentSticky = false;
  for (const dir of chain) {
    const st = fs.lstat(dir);
    if (st === undefined) return undefined; // created by us, privately
    const owner = st.uid ?? uid;
    const mode = st.mode ?? 0;
    if (owner !== uid && owner !== 0) {
      return {
        dir,
        reason: `it belongs to another user (uid ${owner})${
          parentSticky ? " in a directory everyone can write" : ""
        }`,
        fix: parentSticky
          ? `use a directory of your own: mkdir -m 700 ${path.dirname(dir)}/$USER`
          : "use a directory owned by you (or root)",
      };
    }
    if (st.isSymlink) {
      parentSticky = false;
      continue; // a symlink's own mode means nothing; its target is checked by its real path
    }
    if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
      return {
        dir,
        reason: `it is writable by ${(mode & 0o002) ? "everyone" : "its group"} (mode ${
          modeText(mode)
        }) and not sticky, so others could rename what is inside`,
        fix: owner === uid
          ? `chmod go-w ${dir}, or use a directory only you can write`
          : `use a directory only you can write (e.g. mkdir -m 700 ${dir}/$USER)`,
      };
    }
    parentSticky = (mode & 0o022) !== 0;
  }
  return undefined;
}

/**
 * StrictModes-style check of `target` (need not exist yet): every existing component, both as
 * written and after resolving symlinks, is owned by you or root and not writable by group/others
 * unless sticky — and a component inside a sticky group/other-writable directory is owned by you
 * or root. Returns the first problem, or undefined when the path is safe.
 */
export function untrustedPathComponent(
  target: string,
  uid: number | null = Deno.uid(),
  fs: PathInspector = localInspector,
): PathProblem | undefined {
  if (uid === null) return undefined; // no users on this platform
  const abs = path.resolve(target);
  const lexical = checkChain(prefixes(abs), uid, fs);
  if (lexical) return lexical;
  // The real path of the deepest existing component, then what is still to be created below it.
  let existing = abs;
  let rest = "";
  while (true) {
    const real = fs.realPath(existing);
    if (real !== undefined) {
      return checkChain(prefixes(rest ? path.join(real, rest) : real), uid, fs);
    }
    if (existing === "/") return undefined;
    rest = rest ? path.join(path.basename(existing), rest) : path.basename(existing);
    existing = path.dirname(existing);
  }
}

/** All components of an absolute path, `/` first (what a remote inspector must gather). */
export function pathPrefixes(abs: string): string[] {
  return prefixes(path.resolve(abs));
}
