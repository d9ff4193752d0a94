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
 */

import { basename, dirname, isWithin, join, relative, resolve } from "../path.ts";
import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../atomic.ts";
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
  /** Progress of writing the archive (default: on stderr, only past ~2 s; lib/cli/progress.ts). */
  readonly progress?: PackProgress;
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
  if (st.isSymlink) return { kind: "symlink", name, target: Deno.readLinkSync(path) };
  if (!st.isFile) return undefined;
  return { kind: "file", name, path, size: st.size, executable: ((st.mode ?? 0) & 0o100) !== 0 };
}

function skipped(name: string, excludeDirs: ReadonlySet<string>, jobDirRel?: string): boolean {
  if (excludeDirs.has(name.split("/", 1)[0])) return true;
  if (name.split("/").includes(".git")) return true;
  return jobDirRel !== undefined && (name === jobDirRel || name.startsWith(jobDirRel + "/"));
}

/** Entries of one submodule at `commit`, recursing into nested submodules. */
async function submoduleEntries(
  worktree: string,
  prefix: string,
  commit: string,
  readers: BlobReader[],
  warnings: string[],
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
  const reader = new BlobReader(worktree);
  readers.push(reader);
  const out: TarEntry[] = [];
  for (const e of await listTree(worktree, commit)) {
    const name = `${prefix}/${e.path}`;
    if (e.type === "commit") {
      out.push(
        ...await submoduleEntries(join(worktree, e.path), name, e.sha, readers, warnings),
      );
    } else if (e.mode === "120000") {
      out.push({
        kind: "symlink",
        name,
        target: new TextDecoder().decode(await reader.readAll(e.sha)),
      });
    } else {
      const sha = e.sha;
      out.push({
        kind: "stream",
        name,
        size: e.size,
        executable: e.mode === "100755",
        open: () => reader.read(sha),
      });
    }
  }
  return out;
}

/** Every file under `dir` (not following symlinks), skipping `.git`, caches and the job dir. */
function walkDirectory(dir: string, jobDir: string): TarEntry[] {
  const out: TarEntry[] = [];
  const walk = (abs: string, rel: string) => {
    for (const d of Deno.readDirSync(abs)) {
      const name = rel ? `${rel}/${d.name}` : d.name;
      const path = join(abs, d.name);
      if (d.name === ".git" || d.name === "__pycache__" || d.name.endsWith(".pyc")) continue;
      if (path === jobDir) continue;
      if (d.isDirectory) walk(path, name);
      else {
        const e = worktreeEntry(dir, name);
        if (e) out.push(e);
      }
    }
  };
  walk(dir, "");
  return out;
}

/**
 * Package the checkout (or the script's directory) plus script, config and launcher into
 * `<jobDir>/<name>.tar.gz`, and record commit and diff next to it. Always rebuilds the archive.
 * Bad input (a script that shadows the launcher, a submodule whose recorded commit is missing)
 * is a UsageError raised before anything is written.
 */
export async function packageCode(opts: CodePackageOptions): Promise<CodePackage> {
  const name = opts.name ?? "code";
  const jobDir = resolve(opts.jobDir);
  await Deno.mkdir(jobDir, { recursive: true });
  const jobDirReal = Deno.realPathSync(jobDir);
  const warnings: string[] = [];
  const excludeDirs = new Set(opts.excludeDirs ?? []);

  const scriptPath = "path" in opts.script
    ? Deno.realPathSync(resolve(opts.script.path))
    : undefined;
  const root = await checkoutRoot(resolve(opts.cwd ?? Deno.cwd()));
  let source: CodePackage["source"];
  let packagedRoot: string | undefined;
  let scriptArcname: string;
  let base: TarEntry[] = [];
  const readers: BlobReader[] = [];
  let commit: string | undefined;

  try {
    if (root) {
      source = "git";
      packagedRoot = Deno.realPathSync(root);
      const jobRel = inside(packagedRoot, jobDirReal);
      const [index, untracked] = await Promise.all([
        listIndex(packagedRoot),
        listUntracked(packagedRoot),
      ]);
      for (const p of untracked.nestedRepos) {
        warnings.push(`${p} is a separate git repository (not a submodule) and was left out`);
      }
      for (const f of [...index.files, ...untracked.files]) {
        if (skipped(f, excludeDirs, jobRel)) continue;
        const e = worktreeEntry(packagedRoot, f);
        if (e) base.push(e);
      }
      for (const link of index.gitlinks) {
        if (skipped(link.path, excludeDirs, jobRel)) continue;
        base.push(
          ...await submoduleEntries(
            join(packagedRoot, link.path),
            link.path,
            link.commit,
            readers,
            warnings,
          ),
        );
      }
      commit = await headCommit(packagedRoot);
    } else if (scriptPath) {
      source = "directory";
      packagedRoot = dirname(scriptPath);
      base = walkDirectory(packagedRoot, jobDirReal);
    } else {
      source = "script";
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
    generated.push({
      kind: "bytes",
      name: configName,
      data: encoder.encode(opts.trainConfig),
      executable: false,
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

    const tarball = join(jobDir, `${name}.tar.gz`);
    const result = await writeTarGz(tarball, (opts.progress ?? packProgress()).track(entries));

    let commitFile: string | undefined;
    let diffFile: string | undefined;
    let dirty = false;
    if (source === "git" && commit) {
      commitFile = join(jobDir, `${name}.commit`);
      diffFile = join(jobDir, `${name}.diff`);
      const diff = await diffAgainstHead(packagedRoot!);
      dirty = diff.length > 0;
      writeFileAtomic(commitFile, commit + "\n");
      writeFileAtomic(diffFile, diff);
    }
    return {
      tarball,
      sha256: result.sha256,
      bytes: result.bytes,
      entries: result.entries,
      source,
      root: packagedRoot,
      scriptArcname,
      commit,
      dirty,
      commitFile,
      diffFile,
      warnings,
    };
  } finally {
    for (const r of readers) await r.close();
  }
}
