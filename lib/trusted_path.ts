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

/** Check one chain of components (lstat each; stop at the first that does not exist). */
function checkChain(chain: readonly string[], uid: number): PathProblem | undefined {
  let parentSticky = false;
  for (const dir of chain) {
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(dir);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined; // created by us, privately
      throw err;
    }
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
): PathProblem | undefined {
  if (uid === null) return undefined; // no users on this platform
  const abs = path.resolve(target);
  const lexical = checkChain(prefixes(abs), uid);
  if (lexical) return lexical;
  // The real path of the deepest existing component, then what is still to be created below it.
  let existing = abs;
  let rest = "";
  while (true) {
    try {
      const real = Deno.realPathSync(existing);
      return checkChain(prefixes(rest ? path.join(real, rest) : real), uid);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      if (existing === "/") return undefined;
      rest = rest ? path.join(path.basename(existing), rest) : path.basename(existing);
      existing = path.dirname(existing);
    }
  }
}
