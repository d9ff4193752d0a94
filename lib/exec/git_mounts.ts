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
export function checkMount(m: AutoMount): void {
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

// ---- ssh tunnel (issue 12) ----
/**
 * `syncGitMounts` for a cluster behind an ssh tunnel: the same steps, run by git on the cluster's
 * login node (one remote script per repository, the URL, ref and cache dir as its arguments,
 * never spliced into the script). `remoteJobDir` is the cluster's path; `exec` runs a script there.
 */
export async function syncGitMountsRemote(
  mounts: readonly AutoMount[],
  remoteJobDir: string,
  exec: (
    script: string,
    args: readonly string[],
  ) => Promise<{ readonly code: number; readonly stderr: string }>,
  where: string,
): Promise<string[]> {
  const out: string[] = [];
  for (const m of mounts) {
    checkMount(m);
    const cache = path.join(remoteJobDir, "git-cache", m.name);
    console.error(`[auto_mount] Syncing ${m.name}@${m.ref} on ${where}...`);
    const r = await exec(REMOTE_SYNC, [m.url, m.ref, cache]);
    const said = r.stderr.trim();
    if (r.code === 91) {
      throw new RuntimeFailure(`git not found on ${where}: auto_mount needs git on the cluster`, {
        hint: "install git there, or replace ${auto_mount:…} by a plain mount",
      });
    } else if (r.code === 92) {
      throw new RuntimeFailure(`auto_mount: ${cache} on ${where} is not your git cache (${said})`, {
        hint: "remove it there (or ask its owner to) and retry",
      });
    } else if (r.code === 93) {
      throw new RuntimeFailure(`git clone on ${where} failed for ${m.name}: ${said}`, {
        hint: `check that ${m.url} is reachable from the cluster's login node`,
      });
    } else if (r.code === 94) {
      throw new RuntimeFailure(
        `git checkout of ${m.ref} on ${where} failed for ${m.name}: ${said}`,
        {
          hint: "check that the branch, tag or commit exists",
        },
      );
    } else if (r.code !== 0) {
      throw new RuntimeFailure(`auto_mount of ${m.name} on ${where} failed: ${said || r.code}`);
    }
    if (m.target) out.push(`${cache}:${m.target}`);
  }
  return out;
}

/**
 * The cluster-side sync of one repository (arguments: URL, ref, cache dir). Exit 91: no git;
 * 92: the cache is not the user's own dir; 93: clone failed; 94: checkout failed.
 */
const REMOTE_SYNC = `url=$1; ref=$2; cache=$3
command -v git >/dev/null 2>&1 || exit 91
if [ -e "$cache" ] || [ -L "$cache" ]; then
  if [ -L "$cache" ] || [ ! -d "$cache" ]; then echo "not a directory" >&2; exit 92; fi
  o=$(stat -c %u -- "$cache") || exit 92
  [ "$o" = "$(id -u)" ] || { echo "it belongs to uid $o" >&2; exit 92; }
fi
ready=0
if [ -e "$cache/.git" ]; then
  case $ref in
    *[!0-9a-fA-F]*) ;;
    *) [ \${#ref} -eq 40 ] && git -C "$cache" cat-file -e "$ref^{commit}" 2>/dev/null && ready=1;;
  esac
  if [ $ready = 0 ]; then
    if git -C "$cache" fetch --quiet origin 2>/dev/null; then ready=1; else rm -rf -- "$cache"; fi
  fi
fi
if [ $ready = 0 ]; then
  mkdir -p -- "\${cache%/*}" || exit 93
  git clone --quiet -- "$url" "$cache" || exit 93
fi
git -C "$cache" checkout --quiet --detach "origin/$ref" 2>/dev/null ||
  git -C "$cache" checkout --quiet --detach "$ref" || exit 94
git -C "$cache" reset --quiet --hard HEAD
`;
