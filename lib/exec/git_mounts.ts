/**
 * Git repositories mounted into Slurm jobs (`${auto_mount:git+URL@REF,TARGET}` in `run.env.mounts`):
 * cloned or updated on the login node into `<remote_job_dir>/git-cache/<repo>` at REF, then mounted
 * as `<cache>:<TARGET>`. A 40-hex commit already present is reused without fetching; branches and
 * tags are fetched; a cache that cannot be fetched is cloned again.
 *
 * The URL, ref and name come from a config: a URL or ref starting with `-` (git option injection)
 * and a name that is not a plain directory name are refused, and `--` ends git's options before
 * the URL. A cache dir that is not the user's own is refused (never fetched into, never removed).
 */
import type { AutoMount } from "../config/resolvers.ts";
import { RuntimeFailure, UsageError } from "../errors.ts";
import * as path from "../path.ts";

async function git(args: string[], cwd?: string): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await new Deno.Command("git", { args, cwd, stdout: "piped", stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    return { ok: r.code === 0, out: (dec.decode(r.stdout) + dec.decode(r.stderr)).trim() };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new RuntimeFailure("git not found: auto_mount needs git on the login node", {
        hint: "install git, or replace ${auto_mount:…} by a plain mount",
      });
    }
    throw err;
  }
}

/** Refuse what git would read as an option, and names that are not one plain path component. */
function checkMount(m: AutoMount): void {
  if (m.url.startsWith("-") || m.ref.startsWith("-")) {
    throw new UsageError(
      `auto_mount: ${m.url.startsWith("-") ? "URL" : "ref"} '${
        m.url.startsWith("-") ? m.url : m.ref
      }' starts with '-'`,
      { hint: "write ${auto_mount:git+https://host/repo.git@REF[,TARGET]}" },
    );
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(m.name)) {
    throw new UsageError(`auto_mount: '${m.url}' gives no usable repository name ('${m.name}')`, {
      hint: "the URL must end in a repository name such as repo.git",
    });
  }
}

/** Refuse a git cache dir someone else owns (their hooks and config would run as you). */
function checkCacheOwner(cache: string): void {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(cache);
  } catch {
    return;
  }
  const uid = Deno.uid();
  if (!st.isDirectory || (uid !== null && st.uid !== uid)) {
    throw new RuntimeFailure(
      `auto_mount: ${cache} is not your git cache (${
        st.isDirectory ? `it belongs to uid ${st.uid}` : "not a directory"
      })`,
      { hint: "remove it (or ask its owner to) and retry" },
    );
  }
}

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The container mounts (`cache:target`) for `mounts`; `dryRun` only says what it would do. */
export async function syncGitMounts(
  mounts: readonly AutoMount[],
  remoteJobDir: string,
  opts: { dryRun?: boolean; note?: (line: string) => void } = {},
): Promise<string[]> {
  const note = opts.note ?? ((l: string) => console.error(l));
  const out: string[] = [];
  for (const m of mounts) {
    checkMount(m);
    const cache = path.join(remoteJobDir, "git-cache", m.name);
    if (opts.dryRun) {
      note(`[auto_mount] would sync ${m.url}@${m.ref} into ${cache}`);
    } else {
      note(`[auto_mount] Syncing ${m.name}@${m.ref}...`);
      const isSha = /^[0-9a-f]{40}$/i.test(m.ref);
      let ready = false;
      checkCacheOwner(cache);
      if (exists(path.join(cache, ".git"))) {
        if (isSha && (await git(["cat-file", "-e", `${m.ref}^{commit}`], cache)).ok) ready = true;
        else if ((await git(["fetch", "--quiet", "origin"], cache)).ok) ready = true;
        else Deno.removeSync(cache, { recursive: true });
      }
      if (!ready) {
        Deno.mkdirSync(path.dirname(cache), { recursive: true });
        const clone = await git(["clone", "--quiet", "--", m.url, cache]);
        if (!clone.ok) {
          throw new RuntimeFailure(`git clone failed for ${m.name}: ${clone.out}`, {
            hint: `check that ${m.url} is reachable from this login node`,
          });
        }
      }
      let co = await git(["checkout", "--quiet", "--detach", `origin/${m.ref}`], cache);
      if (!co.ok) co = await git(["checkout", "--quiet", "--detach", m.ref], cache);
      if (!co.ok) {
        throw new RuntimeFailure(`git checkout of ${m.ref} failed for ${m.name}: ${co.out}`, {
          hint: "check that the branch, tag or commit exists",
        });
      }
      await git(["reset", "--quiet", "--hard", "HEAD"], cache);
    }
    if (m.target) out.push(`${cache}:${m.target}`);
  }
  return out;
}
