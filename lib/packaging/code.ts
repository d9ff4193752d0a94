/**
 * Code packager: ships the user's checkout, as it is on disk, next to a job.
 *
 * Inside a git checkout the package holds every tracked file and every untracked file that is not
 * ignored, with their working-tree contents (uncommitted edits included, deleted files left out),
 * and each initialised submodule at the commit the parent's index records. Outside a checkout it
 * holds the recipe script's own directory. On top come the recipe script, the train config as
 * `config.yaml` and a stdlib-only launcher `main.py`: `python3 main.py ARGS…` in the extracted
 * directory runs the script with `--config config.yaml ARGS…` and exits with its code.
 *
 * Next to `<name>.tar.gz` the job dir gets `<name>.commit` (`git rev-parse HEAD`) and `<name>.diff`
 * (`git diff HEAD --binary`), so what ran can be rebuilt from the repository.
 *
 * Never shipped, whatever .gitignore says (the deny list, `DENIED`): env.toml (and the file
 * nemotron read as its env.toml), `.env`/`.env.*`, `.netrc`, `.git-credentials`, `*.pem`, OpenSSH
 * private keys (`id_rsa`, `id_ed25519`… not `*.pub`) and any file that starts like a PEM private
 * key, `.nemotron-secrets[-<uid>]/`, `.nemotron/` (local job dirs), the job dir, `remote_job_dir` and
 * `$NEMOTRON_HOME` when they sit inside the checkout, and any directory holding a nemotron job
 * manifest (another profile's job dirs). What was left out is listed in the plan
 * (and so in dry runs). Symlinks are shipped as symlinks, never followed.
 *
 * Modes: files keep 0644/0755 unless they are not readable by others on disk, then they are
 * owner-only (0600/0700) in the archive; the generated train config is always 0600 and the
 * archive itself is written 0600. The archive stays deterministic (modes come from the files).
 *
 * Size guard: `planCodePackage` sums the files; `checkPackageSize` refuses (UsageError, exit 2,
 * nothing written) a package over `max_package_mb` (default 100) unless forced.
 */

import { basename, dirname, isWithin, join, relative, resolve } from "../path.ts";
import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../atomic.ts";
import { nemotronHome } from "../home.ts";
import {
  BlobReader,
  checkoutRoot,
  diffAgainstHead,
  hasCommit,
  headCommit,
  listIndex,
  listTree,
  listUntracked,
} from "./git.ts";
import { compareNames, type TarEntry, writeTarGz } from "./tar.ts";
import { type PackProgress, packProgress } from "../cli/progress.ts";

/** Name of the generated launcher at the package root. */
export const LAUNCHER_NAME = "main.py";
/** Name of the train config at the package root (YAML; see `packagedConfigName`). */
export const CONFIG_NAME = "config.yaml";

/**
 * The train config's name in the package for a runspec `config.format`: `config.json`,
 * `config.toml`, else `config.yaml` — the name matches the content, as in local runs (a script
 * may pick its parser by the extension; an image without PyYAML must not get YAML).
 */
export function packagedConfigName(format?: "omegaconf" | "yaml" | "json" | "toml"): string {
  return format === "json" ? "config.json" : format === "toml" ? "config.toml" : CONFIG_NAME;
}

/** The recipe script: a file on disk, or embedded text and the path it gets in the package. */
export type ScriptSource =
  | { readonly path: string }
  | { readonly arcname: string; readonly text: string };

/** A file given as text (e.g. an embedded recipe helper) and its path in the package. */
export interface ExtraFile {
  readonly arcname: string;
  readonly text: string;
}

/** Inputs of {@link packageCode}. */
export interface CodePackageOptions {
  /** The recipe script the launcher runs. */
  readonly script: ScriptSource;
  /** Train config text, shipped as `packagedConfigName(configFormat)`. */
  readonly trainConfig: string;
  /** The runspec's `config.format` (default YAML): names the shipped config file. */
  readonly configFormat?: "omegaconf" | "yaml" | "json" | "toml";
  /** Job directory: receives `<name>.tar.gz`, `<name>.commit`, `<name>.diff`. Created if missing. */
  readonly jobDir: string;
  /** Base name of the outputs (default `code`). */
  readonly name?: string;
  /** Directory whose git checkout is packaged (default: the current directory). */
  readonly cwd?: string;
  /** More generated files; like the script they replace a repository file of the same path. */
  readonly extraFiles?: readonly ExtraFile[];
  /** Top-level directories of the checkout to leave out (e.g. large example trees). */
  readonly excludeDirs?: readonly string[];
  /** The env.toml nemotron read (never shipped, whatever its name). */
  readonly envFile?: string;
  /** The profile's `remote_job_dir` (never shipped when it sits inside the checkout). */
  readonly remoteJobDir?: string;
  /** Progress of writing the archive (default: on stderr, only past ~2 s; lib/cli/progress.ts). */
  readonly progress?: PackProgress;
}

/** A file the deny list kept out of the package, and why. */
export interface ExcludedFile {
  /** Path relative to the packaged root. */
  readonly path: string;
  readonly reason: string;
}

/** What would be packaged: built by {@link planCodePackage} without writing anything. */
export interface CodePackagePlan {
  readonly options: CodePackageOptions;
  /** Sorted archive entries. */
  readonly entries: readonly TarEntry[];
  /** Files (or whole directories, with a trailing `/`) left out by the deny list. */
  readonly excluded: readonly ExcludedFile[];
  /** Sum of the entries' sizes in bytes (uncompressed). */
  readonly totalBytes: number;
  readonly source: "git" | "directory" | "script";
  readonly root?: string;
  readonly scriptArcname: string;
  readonly commit?: string;
  readonly warnings: readonly string[];
}

/** What {@link packageCode} wrote. */
export interface CodePackage {
  readonly tarball: string;
  readonly sha256: string;
  /** Compressed size in bytes. */
  readonly bytes: number;
  /** Number of entries in the archive. */
  readonly entries: number;
  /** `git`: a checkout; `directory`: the script's directory; `script`: only the embedded script. */
  readonly source: "git" | "directory" | "script";
  /** The packaged directory on disk (checkout root or script directory). */
  readonly root?: string;
  /** Path of the recipe script inside the package. */
  readonly scriptArcname: string;
  /** HEAD commit of the checkout (git source with at least one commit). */
  readonly commit?: string;
  /** True when tracked files differ from HEAD (the diff file is non-empty). */
  readonly dirty: boolean;
  readonly commitFile?: string;
  readonly diffFile?: string;
  /** Things the user should know (skipped submodules, replaced repository files). */
  readonly warnings: readonly string[];
  /** Files the deny list left out. */
  readonly excluded: readonly ExcludedFile[];
}

const encoder = new TextEncoder();

/**
 * The launcher: chdir to its own directory, put the package root and `src/` first on PYTHONPATH,
 * and exec the script with `--config <root>/config.yaml` plus the launcher's own arguments (exec,
 * so the script keeps the pid, receives Slurm's signals and its exit code is the job's).
 */
export function launcherSource(scriptArcname: string, configName: string = CONFIG_NAME): string {
  return `#!/usr/bin/env python3
"""Launcher generated by nemotron: runs the recipe script with this package's ${configName}."""
import os
import sys

SCRIPT = ${JSON.stringify(scriptArcname)}
CONFIG = ${JSON.stringify(configName)}


def main():
    root = os.path.dirname(os.path.abspath(__file__))
    os.chdir(root)
    paths = [root, os.path.join(root, "src")]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    argv = [sys.executable, os.path.join(root, SCRIPT), "--config", os.path.join(root, CONFIG)]
    argv += sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    main()
`;
}

/** `p` relative to `root`, or undefined when `p` is not strictly inside `root`. */
function inside(root: string, p: string): string | undefined {
  if (!isWithin(root, p) || resolve(root) === resolve(p)) return undefined;
  return relative(root, p);
}

/** `p` (resolved through symlinks when it exists) relative to `root`, if strictly inside it. */
function insideReal(root: string, p: string | undefined): string | undefined {
  if (p === undefined || p === "") return undefined;
  let real = resolve(p);
  try {
    real = Deno.realPathSync(real);
  } catch { /* not created yet: compare the path as given */ }
  return inside(root, real);
}

/** Tar mode class of a file on disk: owner-only when others cannot read it. */
function ownerOnly(st: Deno.FileInfo): boolean {
  return st.mode !== null && (st.mode & 0o004) === 0;
}

/** A file of the working tree as a tar entry, or undefined if it is gone (deleted, or a dir). */
function worktreeEntry(root: string, name: string): TarEntry | undefined {
  const path = join(root, name);
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw err;
  }
  // A symlink is shipped as a link (its target text), never followed to its content.
  if (st.isSymlink) return { kind: "symlink", name, target: Deno.readLinkSync(path) };
  if (!st.isFile) return undefined;
  return {
    kind: "file",
    name,
    path,
    size: st.size,
    executable: ((st.mode ?? 0) & 0o100) !== 0,
    ownerOnly: ownerOnly(st),
  };
}

/** `.nemotron-secrets` (older jobs) or the per-user `.nemotron-secrets-<uid>`. */
function isSecretsDir(part: string): boolean {
  return part === ".nemotron-secrets" || part.startsWith(".nemotron-secrets-");
}

/** OpenSSH private key file names: id_rsa, id_ed25519_sk, id_ecdsa_work… (not *.pub). */
const SSH_KEY_NAME = /^id_(?:rsa|dsa|ecdsa|ed25519|xmss)(?:[_-].*)?$/;

/**
 * Why a path (relative to the packaged root) is on the deny list, or undefined. Directory rules
 * match any path component; file rules match the base name.
 */
export function deniedReason(name: string): string | undefined {
  const parts = name.split("/");
  if (parts.some(isSecretsDir)) return "nemotron secrets directory";
  if (parts.includes(".nemotron")) return "nemotron local job directory";
  const base = parts[parts.length - 1];
  if (base === "env.toml") return "env.toml (profiles may hold secrets)";
  if (base === ".env" || base.startsWith(".env.")) return "dotenv file";
  if (base === ".netrc" || base === "_netrc") return "netrc credentials";
  if (base === ".git-credentials") return "git credentials";
  if (base.endsWith(".pem")) return "PEM file (keys, certificates)";
  if (SSH_KEY_NAME.test(base) && !base.endsWith(".pub")) return "SSH private key";
  return undefined;
}

/** True when the file starts like a PEM/OpenSSH private key (`-----BEGIN … PRIVATE KEY-----`). */
function looksLikePrivateKey(path: string): boolean {
  let head: Uint8Array;
  try {
    // Regular files only: never follow a symlink, never open a fifo or a device.
    if (!Deno.lstatSync(path).isFile) return false;
    using f = Deno.openSync(path);
    head = new Uint8Array(256);
    const n = f.readSync(head) ?? 0;
    head = head.subarray(0, n);
  } catch {
    return false;
  }
  const text = new TextDecoder("latin1").decode(head);
  return /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text);
}

/** Decides what stays out of a package: the deny list, directories and files by real path. */
class Denier {
  readonly excluded: ExcludedFile[] = [];
  readonly #dirs: { rel: string; reason: string }[] = [];
  readonly #files = new Map<string, string>();
  readonly #reportedDirs = new Set<string>();
  readonly #jobDirs = new Map<string, boolean>();
  /** The packaged root on disk, for recognising job dirs by their manifest. */
  root: string | undefined;

  constructor(private readonly excludeDirs: ReadonlySet<string>) {}

  /** True when `<root>/<rel>` holds a nemotron job manifest (`job.json`, `nemotron-job/1`). */
  #isJobDir(rel: string): boolean {
    let yes = this.#jobDirs.get(rel);
    if (yes === undefined) {
      yes = false;
      if (this.root !== undefined) {
        try {
          const text = Deno.readTextFileSync(join(this.root, rel, "job.json"));
          yes = text.includes('"nemotron-job/1"');
        } catch { /* no manifest */ }
      }
      this.#jobDirs.set(rel, yes);
    }
    return yes;
  }

  /** Leave out everything under `rel` (a directory inside the root). */
  denyDir(rel: string | undefined, reason: string): void {
    if (rel !== undefined) this.#dirs.push({ rel, reason });
  }

  /** Leave out the file at `rel`. */
  denyFile(rel: string | undefined, reason: string): void {
    if (rel !== undefined) this.#files.set(rel, reason);
  }

  /** True (and recorded) when `name` must not ship. `path` is its file on disk, if any. */
  skip(name: string, path?: string): boolean {
    if (this.excludeDirs.has(name.split("/", 1)[0])) return true;
    if (name.split("/").includes(".git")) return true;
    for (const d of this.#dirs) {
      if (name === d.rel || name.startsWith(d.rel + "/")) {
        if (!this.#reportedDirs.has(d.rel)) {
          this.#reportedDirs.add(d.rel);
          this.excluded.push({ path: d.rel + "/", reason: d.reason });
        }
        return true;
      }
    }
    // Any nemotron job dir (another profile's remote_job_dir inside the checkout): its configs
    // hold the values its script needed.
    const segs = name.split("/");
    for (let i = 1; i < segs.length; i++) {
      const rel = segs.slice(0, i).join("/");
      if (this.#isJobDir(rel)) {
        if (!this.#reportedDirs.has(rel)) {
          this.#reportedDirs.add(rel);
          this.excluded.push({ path: rel + "/", reason: "a nemotron job dir" });
        }
        return true;
      }
    }
    let reason = this.#files.get(name) ?? deniedReason(name);
    if (reason === undefined && path !== undefined && looksLikePrivateKey(path)) {
      reason = "private key (by content)";
    }
    if (reason === undefined) return false;
    // Directory rules are reported once per directory.
    const parts = name.split("/");
    for (const isDir of [isSecretsDir, (p: string) => p === ".nemotron"]) {
      const i = parts.findIndex(isDir);
      if (i >= 0) {
        const rel = parts.slice(0, i + 1).join("/");
        if (!this.#reportedDirs.has(rel)) {
          this.#reportedDirs.add(rel);
          this.excluded.push({ path: rel + "/", reason });
        }
        return true;
      }
    }
    this.excluded.push({ path: name, reason });
    return true;
  }
}

/** Opens one `git cat-file --batch` per repository on first use; closes them all. */
class BlobReaders {
  readonly #readers = new Map<string, BlobReader>();
  get(dir: string): BlobReader {
    let r = this.#readers.get(dir);
    if (!r) this.#readers.set(dir, r = new BlobReader(dir));
    return r;
  }
  async close(): Promise<void> {
    for (const r of this.#readers.values()) await r.close();
    this.#readers.clear();
  }
}

/** Entries of one submodule at `commit`, recursing into nested submodules. */
async function submoduleEntries(
  worktree: string,
  prefix: string,
  commit: string,
  readers: BlobReaders,
  lazy: BlobReaders,
  warnings: string[],
  denier: Denier,
): Promise<TarEntry[]> {
  let dotGit: Deno.FileInfo | undefined;
  try {
    dotGit = Deno.statSync(join(worktree, ".git"));
  } catch { /* not initialised */ }
  if (!dotGit) {
    warnings.push(
      `submodule ${prefix} is not initialised and was left out ` +
        `(run: git submodule update --init --recursive)`,
    );
    return [];
  }
  if (!await hasCommit(worktree, commit)) {
    throw new UsageError(
      `submodule ${prefix}: the commit the parent records (${commit}) is not in its repository`,
      { hint: "run: git submodule update --init --recursive" },
    );
  }
  const out: TarEntry[] = [];
  for (const e of await listTree(worktree, commit)) {
    const name = `${prefix}/${e.path}`;
    if (denier.skip(name)) continue;
    if (e.type === "commit") {
      out.push(
        ...await submoduleEntries(
          join(worktree, e.path),
          name,
          e.sha,
          readers,
          lazy,
          warnings,
          denier,
        ),
      );
    } else if (e.mode === "120000") {
      out.push({
        kind: "symlink",
        name,
        target: new TextDecoder().decode(await readers.get(worktree).readAll(e.sha)),
      });
    } else {
      const sha = e.sha;
      out.push({
        kind: "stream",
        name,
        size: e.size,
        executable: e.mode === "100755",
        open: () => lazy.get(worktree).read(sha),
      });
    }
  }
  return out;
}

/** Every file under `dir` (not following symlinks), skipping `.git`, caches and denied paths. */
function walkDirectory(dir: string, denier: Denier): TarEntry[] {
  const out: TarEntry[] = [];
  const walk = (abs: string, rel: string) => {
    for (const d of Deno.readDirSync(abs)) {
      const name = rel ? `${rel}/${d.name}` : d.name;
      const path = join(abs, d.name);
      if (d.name === ".git" || d.name === "__pycache__" || d.name.endsWith(".pyc")) continue;
      if (d.isDirectory) {
        if (!denier.skip(name + "/.")) walk(path, name);
      } else if (!denier.skip(name, d.isFile ? path : undefined)) {
        const e = worktreeEntry(dir, name);
        if (e) out.push(e);
      }
    }
  };
  walk(dir, "");
  return out;
}

/**
 * Blob readers of each plan (submodule files), opened only while the archive is written and
 * closed after it, so a plan that is never written (dry run, refused) holds nothing open.
 */
const PLAN_READERS = new WeakMap<CodePackagePlan, BlobReaders>();

/**
 * Decide what goes into the package, without writing anything: the checkout (or the script's
 * directory) minus the deny list, plus script, config and launcher. Bad input (a script that
 * shadows the launcher, a submodule whose recorded commit is missing) is a UsageError.
 */
export async function planCodePackage(opts: CodePackageOptions): Promise<CodePackagePlan> {
  const jobDir = resolve(opts.jobDir);
  const warnings: string[] = [];
  const denier = new Denier(new Set(opts.excludeDirs ?? []));

  const scriptPath = "path" in opts.script
    ? Deno.realPathSync(resolve(opts.script.path))
    : undefined;
  const root = await checkoutRoot(resolve(opts.cwd ?? Deno.cwd()));
  let source: CodePackagePlan["source"];
  let packagedRoot: string | undefined;
  let scriptArcname: string;
  let base: TarEntry[] = [];
  const readers = new BlobReaders();
  const lazy = new BlobReaders();
  let commit: string | undefined;

  const denyPlaces = (r: string) => {
    denier.root = r;
    denier.denyDir(insideReal(r, jobDir), "the job dir");
    denier.denyDir(insideReal(r, opts.remoteJobDir), "remote_job_dir (other jobs)");
    denier.denyDir(insideReal(r, nemotronHome()), "NEMOTRON_HOME (job store, artifacts)");
    denier.denyFile(insideReal(r, opts.envFile), "the env.toml nemotron read");
  };

  try {
    if (root) {
      source = "git";
      packagedRoot = Deno.realPathSync(root);
      denyPlaces(packagedRoot);
      const [index, untracked] = await Promise.all([
        listIndex(packagedRoot),
        listUntracked(packagedRoot),
      ]);
      for (const p of untracked.nestedRepos) {
        warnings.push(`${p} is a separate git repository (not a submodule) and was left out`);
      }
      for (const f of [...index.files, ...untracked.files]) {
        if (denier.skip(f, join(packagedRoot, f))) continue;
        const e = worktreeEntry(packagedRoot, f);
        if (e) base.push(e);
      }
      for (const link of index.gitlinks) {
        if (denier.skip(link.path)) continue;
        base.push(
          ...await submoduleEntries(
            join(packagedRoot, link.path),
            link.path,
            link.commit,
            readers,
            lazy,
            warnings,
            denier,
          ),
        );
      }
      commit = await headCommit(packagedRoot);
    } else if (scriptPath) {
      source = "directory";
      packagedRoot = dirname(scriptPath);
      denyPlaces(packagedRoot);
      base = walkDirectory(packagedRoot, denier);
    } else {
      source = "script";
    }
  } catch (err) {
    await lazy.close();
    throw err;
  } finally {
    await readers.close();
  }

  const generated: TarEntry[] = [];
  if ("path" in opts.script) {
    const p = scriptPath!;
    scriptArcname = (packagedRoot && inside(packagedRoot, p)) ?? basename(p);
    const e = worktreeEntry(dirname(p), basename(p));
    if (!e) throw new UsageError(`recipe script not found: ${opts.script.path}`);
    generated.push({ ...e, name: scriptArcname } as TarEntry);
  } else {
    scriptArcname = opts.script.arcname;
    generated.push({
      kind: "bytes",
      name: scriptArcname,
      data: encoder.encode(opts.script.text),
      executable: false,
    });
  }
  const configName = packagedConfigName(opts.configFormat);
  if (scriptArcname === LAUNCHER_NAME || scriptArcname === configName) {
    await lazy.close();
    throw new UsageError(`the recipe script cannot be shipped as ${scriptArcname}`, {
      hint: `that name is reserved for the generated ${
        scriptArcname === LAUNCHER_NAME ? "launcher" : "train config"
      }; rename the script`,
    });
  }
  for (const x of opts.extraFiles ?? []) {
    generated.push({
      kind: "bytes",
      name: x.arcname,
      data: encoder.encode(x.text),
      executable: false,
    });
  }
  generated.push({
    kind: "bytes",
    name: LAUNCHER_NAME,
    data: encoder.encode(launcherSource(scriptArcname, configName)),
    executable: true,
  });
  // The train config may carry secret-looking values the script needs: owner-only.
  generated.push({
    kind: "bytes",
    name: configName,
    data: encoder.encode(opts.trainConfig),
    executable: false,
    ownerOnly: true,
  });

  // Generated files replace repository files of the same path.
  const byName = new Map<string, TarEntry>();
  for (const e of base) byName.set(e.name, e);
  for (const e of generated) {
    if (
      source === "git" && byName.has(e.name) &&
      (e.name === LAUNCHER_NAME || e.name === configName)
    ) {
      warnings.push(`the checkout's ${e.name} is replaced by the generated one in the package`);
    }
    byName.set(e.name, e);
  }
  const entries = [...byName.values()].sort((a, b) => compareNames(a.name, b.name));
  const plan: CodePackagePlan = {
    options: opts,
    entries,
    excluded: denier.excluded,
    totalBytes: entries.reduce((n, e) => n + entrySize(e), 0),
    source,
    root: packagedRoot,
    scriptArcname,
    commit,
    warnings,
  };
  PLAN_READERS.set(plan, lazy);
  return plan;
}

function entrySize(e: TarEntry): number {
  return e.kind === "symlink" ? 0 : e.kind === "bytes" ? e.data.length : e.size;
}

/** Default of the profile key `max_package_mb`. */
export const DEFAULT_MAX_PACKAGE_MB = 100;

/** The profile's `max_package_mb` (a positive number), or the default. */
export function maxPackageMb(profile: Readonly<Record<string, unknown>> | undefined): number {
  const v = profile?.max_package_mb;
  if (v === undefined || v === null) return DEFAULT_MAX_PACKAGE_MB;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(`max_package_mb must be a positive number, got ${JSON.stringify(v)}`, {
      hint: "set max_package_mb = 500 (MiB) in the profile, or pass --force-package",
    });
  }
  return n;
}

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MB`;
}

/**
 * Refuse a package larger than `maxMb` MiB (uncompressed): a UsageError (exit 2, raised before
 * anything is written) listing the 10 largest files and how to leave them out. `force`
 * (`--force-package`) skips the check.
 */
export function checkPackageSize(plan: CodePackagePlan, maxMb: number, force: boolean): void {
  if (force || plan.totalBytes <= maxMb * (1 << 20)) return;
  const largest = [...plan.entries].sort((a, b) => entrySize(b) - entrySize(a)).slice(0, 10);
  const lines = largest.map((e) => `    ${mib(entrySize(e)).padStart(10)}  ${e.name}`);
  throw new UsageError(
    `the code package would be ${mib(plan.totalBytes)}, over the limit of ${maxMb} MB ` +
      `(${plan.entries.length} files from ${plan.root ?? "the recipe"}); the largest:\n` +
      lines.join("\n"),
    {
      hint: "leave big files out with .gitignore (untracked) or `git rm --cached` (tracked), " +
        "or move them out of the checkout; or raise max_package_mb in the profile, " +
        "or pass --force-package",
    },
  );
}

/**
 * Write a planned package: `<jobDir>/<name>.tar.gz` (mode 0600), and `<name>.commit` and
 * `<name>.diff` for a git source with a commit. Always rebuilds the archive. `intoDir` writes
 * them elsewhere than the planned job dir (the local staging dir of an ssh-tunnel job).
 */
export async function writeCodePackage(
  plan: CodePackagePlan,
  intoDir?: string,
): Promise<CodePackage> {
  const opts = plan.options;
  const name = opts.name ?? "code";
  const jobDir = resolve(intoDir ?? opts.jobDir);
  const lazy = PLAN_READERS.get(plan);
  try {
    await Deno.mkdir(jobDir, { recursive: true });
    const tarball = join(jobDir, `${name}.tar.gz`);
    const result = await writeTarGz(tarball, (opts.progress ?? packProgress()).track(plan.entries));

    let commitFile: string | undefined;
    let diffFile: string | undefined;
    let dirty = false;
    if (plan.source === "git" && plan.commit) {
      commitFile = join(jobDir, `${name}.commit`);
      diffFile = join(jobDir, `${name}.diff`);
      // Never the changes to files the deny list keeps out (a tracked .env edited locally).
      const diff = await diffAgainstHead(plan.root!, plan.excluded.map((x) => x.path));
      dirty = diff.length > 0;
      writeFileAtomic(commitFile, plan.commit + "\n");
      // The diff holds working-tree content (possibly private): owner-only like the archive.
      writeFileAtomic(diffFile, diff, 0o600);
    }
    return {
      tarball,
      sha256: result.sha256,
      bytes: result.bytes,
      entries: result.entries,
      source: plan.source,
      root: plan.root,
      scriptArcname: plan.scriptArcname,
      commit: plan.commit,
      dirty,
      commitFile,
      diffFile,
      warnings: plan.warnings,
      excluded: plan.excluded,
    };
  } finally {
    await lazy?.close();
  }
}

/**
 * Plan and write in one go (see {@link planCodePackage} and {@link writeCodePackage}); with
 * `maxMb` the size guard runs first.
 */
export async function packageCode(
  opts: CodePackageOptions & { readonly maxMb?: number; readonly force?: boolean },
): Promise<CodePackage> {
  const plan = await planCodePackage(opts);
  if (opts.maxMb !== undefined) checkPackageSize(plan, opts.maxMb, opts.force ?? false);
  return await writeCodePackage(plan);
}

/**
 * The directory a code package is rooted at for `cwd`: the top of its git checkout (real path),
 * else `cwd` itself. Remote path rewrites (`/nemo_run/code/…`) are relative to it.
 */
export async function codePackageRoot(cwd: string): Promise<string> {
  const root = await checkoutRoot(cwd);
  return root ? Deno.realPathSync(root) : cwd;
}
