/**
 * The recipe catalogue: every recipe `nemotron run NAME` can run, by its runspec `name`. Sources:
 * the built-in recipes (passed in by the caller: lib/ never imports recipes/ or commands/) and the
 * runspec scripts under the directories the user names — env.toml `[cli] recipe_dirs = [...]`
 * (relative paths relative to the env.toml) and `NEMOTRON_RECIPE_PATH` (`:`-separated, relative to
 * the current directory). Nothing is scanned unless a command asks for the catalogue.
 *
 * Two recipes with the same name are an error naming both files, never a silent pick.
 */
import * as path from "./path.ts";
import { closestMatch, UsageError } from "./errors.ts";
import { type EnvFile, expandHome } from "./env_toml.ts";
import { parseRunspecText, type Runspec, type RunspecWarning } from "./runspec.ts";
import { isTable, locateKey } from "./toml.ts";

/** A built-in recipe as the catalogue sees it (structurally `BuiltinRecipe` of recipes/index.ts). */
export interface CatalogueBuiltin {
  readonly command: string;
  readonly recipe: {
    readonly scriptPath: string;
    readonly script: string;
    readonly configDir: string;
    readonly configs: Readonly<Record<string, string>>;
    readonly files: Readonly<Record<string, string>>;
  };
}

/** A directory the user named, and where it was named. */
export interface RecipeDir {
  readonly dir: string;
  /** `env.toml [cli] recipe_dirs (FILE)` or `NEMOTRON_RECIPE_PATH`. */
  readonly origin: string;
}

/** One runnable recipe. */
export interface CatalogueEntry {
  readonly name: string;
  /** `built-in`, or the recipe directory it was found under. */
  readonly source: string;
  /** The command that runs it (`nemotron demo train`, `nemotron run NAME`). */
  readonly command: string;
  readonly runspec: Runspec;
  /** The script: its absolute path, or `built-in:<path under recipes/>`. */
  readonly script: string;
  /** Config names (stems of the `*.yaml` files of its config dir). */
  readonly configs: readonly string[];
  /** Its files, relative to the script's directory (script, helpers, config dir). */
  readonly files: readonly string[];
  /** Set for a built-in recipe. */
  readonly builtin?: CatalogueBuiltin;
}

/** Prefix of the `script` of a built-in entry. */
export const BUILTIN_PREFIX = "built-in:";

/** The catalogue entry of a built-in recipe (its runspec parsed from the embedded text). */
export function builtinEntry(b: CatalogueBuiltin): CatalogueEntry {
  const rel = b.recipe.scriptPath;
  // A virtual location: the runspec's paths are never used for a built-in (it is unpacked first).
  const { runspec } = parseRunspecText(b.recipe.script, path.join("/nemotron-builtin", rel));
  const configs = Object.keys(b.recipe.configs).filter((n) => /\.ya?ml$/.test(n))
    .map((n) => n.replace(/\.ya?ml$/, "")).sort();
  const files = [
    path.basename(rel),
    ...Object.keys(b.recipe.files),
    ...Object.keys(b.recipe.configs).map((n) => `${b.recipe.configDir}/${n}`),
  ].sort();
  return {
    name: runspec.name,
    source: "built-in",
    command: b.command,
    runspec,
    script: BUILTIN_PREFIX + rel,
    configs,
    files,
    builtin: b,
  };
}

/**
 * The recipe directories: env.toml `[cli] recipe_dirs` first, then `NEMOTRON_RECIPE_PATH`. A value
 * that is not a list of strings, or a directory that does not exist, is a usage error naming where
 * it was set.
 */
export function recipeDirs(
  envFile: EnvFile | undefined,
  env: { get(name: string): string | undefined } = Deno.env,
  cwd: string = Deno.cwd(),
): RecipeDir[] {
  const out: RecipeDir[] = [];
  const cli = envFile?.data.cli;
  if (envFile && isTable(cli) && cli.recipe_dirs !== undefined) {
    const where = {
      file: envFile.path,
      line: locateKey(envFile.lines, "cli", "recipe_dirs"),
    };
    const v = cli.recipe_dirs;
    if (!Array.isArray(v) || v.some((d) => typeof d !== "string" || d === "")) {
      throw new UsageError("[cli] recipe_dirs must be a list of directory paths", {
        location: where,
        hint: 'write recipe_dirs = ["recipes", "/shared/team/recipes"]',
      });
    }
    const origin = `env.toml [cli] recipe_dirs (${envFile.path})`;
    for (const d of v as string[]) {
      out.push({
        dir: checkDir(path.resolve(path.dirname(envFile.path), expandHome(d)), origin),
        origin,
      });
    }
  }
  const fromVar = env.get("NEMOTRON_RECIPE_PATH");
  if (fromVar) {
    for (const d of fromVar.split(":").filter(Boolean)) {
      out.push({
        dir: checkDir(path.resolve(cwd, expandHome(d)), "NEMOTRON_RECIPE_PATH"),
        origin: "NEMOTRON_RECIPE_PATH",
      });
    }
  }
  // The same directory named twice is scanned once.
  return out.filter((d, i) => out.findIndex((e) => e.dir === d.dir) === i);
}

function checkDir(dir: string, origin: string): string {
  let ok = false;
  try {
    ok = Deno.statSync(dir).isDirectory;
  } catch { /* missing */ }
  if (!ok) {
    throw new UsageError(`recipe directory not found: ${dir} (from ${origin})`, {
      hint: "create it, or remove it from the list",
    });
  }
  return dir;
}

const SKIP_DIRS = new Set(["__pycache__", "node_modules", "venv", "site-packages"]);
const RUNSPEC_TABLE = /^#\s*\[tool\.runspec[\].]/m;

/**
 * The runspec scripts under `dir` (recursively; hidden directories, `__pycache__`, `node_modules`,
 * `venv` and `site-packages` are skipped). A `.py` file is a recipe when its PEP 723 block has a
 * `[tool.runspec]` table; a broken block is an error with its file:line:col. A recipe without a
 * `name` is named by its path relative to `dir`, without `.py`.
 */
export function scanRecipeDir(
  dir: string,
  warn: (w: RunspecWarning) => void = () => {},
): CatalogueEntry[] {
  const out: CatalogueEntry[] = [];
  const walk = (abs: string) => {
    const items = [...Deno.readDirSync(abs)].sort((a, b) => a.name < b.name ? -1 : 1);
    for (const e of items) {
      const p = path.join(abs, e.name);
      if (e.isDirectory) {
        if (!e.name.startsWith(".") && !SKIP_DIRS.has(e.name)) walk(p);
        continue;
      }
      if (!e.isFile || !e.name.endsWith(".py")) continue;
      const text = Deno.readTextFileSync(p);
      if (!text.includes("# /// script") || !RUNSPEC_TABLE.test(text)) continue;
      const { runspec, warnings } = parseRunspecText(text, p);
      warnings.forEach(warn);
      out.push(diskEntry(runspec, dir));
    }
  };
  walk(dir);
  return out;
}

/** The catalogue entry of a script on disk found under `sourceDir`. */
function diskEntry(runspec: Runspec, sourceDir: string): CatalogueEntry {
  const script = runspec.script_path;
  const name = runspec.name ||
    path.relative(sourceDir, script).replace(/\.py$/, "");
  const scriptDir = path.dirname(script);
  const configFiles: string[] = [];
  try {
    for (const e of Deno.readDirSync(runspec.config_dir)) {
      if (e.isFile) {
        configFiles.push(path.relative(scriptDir, path.join(runspec.config_dir, e.name)));
      }
    }
  } catch { /* no config dir */ }
  return {
    name,
    source: sourceDir,
    command: `nemotron run ${name}`,
    runspec,
    script,
    configs: configFiles.filter((f) => /\.ya?ml$/.test(f))
      .map((f) => path.basename(f).replace(/\.ya?ml$/, "")).sort(),
    files: [path.basename(script), ...configFiles.sort()],
  };
}

/**
 * The whole catalogue: built-ins first, then each directory's recipes. Two entries with the same
 * name are a usage error naming both scripts.
 */
export function loadCatalogue(
  builtins: readonly CatalogueBuiltin[],
  dirs: readonly RecipeDir[],
  warn?: (w: RunspecWarning) => void,
): CatalogueEntry[] {
  const entries: CatalogueEntry[] = builtins.map(builtinEntry);
  for (const d of dirs) entries.push(...scanRecipeDir(d.dir, warn));
  const seen = new Map<string, CatalogueEntry>();
  for (const e of entries) {
    const prev = seen.get(e.name);
    if (prev) {
      throw new UsageError(
        `two recipes are named '${e.name}': ${prev.script} and ${e.script}`,
        {
          hint: prev.builtin
            ? `rename your copy (name = "…" in its [tool.runspec]), or run it by path: nemotron run ${e.script}`
            : "give one of them another name in its [tool.runspec], or run it by path",
        },
      );
    }
    seen.set(e.name, e);
  }
  return entries;
}

/** The entry named `name`, or a usage error listing the names (with a "did you mean"). */
export function findRecipe(entries: readonly CatalogueEntry[], name: string): CatalogueEntry {
  const hit = entries.find((e) => e.name === name);
  if (hit) return hit;
  const names = entries.map((e) => e.name);
  const near = closestMatch(name, names);
  throw new UsageError(`no recipe named '${name}' (and no such script file)`, {
    hint: (near ? `did you mean '${near}'? ` : "") +
      `recipes: ${
        names.join(", ")
      } (nemotron recipes list; add directories with [cli] recipe_dirs or NEMOTRON_RECIPE_PATH)`,
  });
}
