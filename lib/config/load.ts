/**
 * Finding and loading recipe configs: a config by name in a config dir, by path, or a built-in
 * config by `RECIPE:CONFIG` (`demo/train:tiny`); YAML with OmegaConf typing, and the simple
 * `defaults:` inheritance of nemotron's loader (whose entries may be `RECIPE:CONFIG` too).
 *
 * The built-in configs are embedded data (recipes/index.ts); this module only reads their text.
 */
import { dirname, extname, isAbsolute, join, resolve } from "../path.ts";
import { didYouMean, UsageError } from "../errors.ts";
import { builtinConfigDirs } from "../../recipes/index.ts";
import { mergeConfigs } from "./merge.ts";
import { type ConfigMap, positionOf } from "./tree.ts";
import { parseYamlMapping } from "./yaml.ts";

/** `RECIPE:CONFIG`, e.g. `demo/train:tiny` or `nano3/data/prep/sft:default`. */
const BUILTIN_REF_RE = /^([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*):([A-Za-z0-9_.-]+)$/;

/** A built-in config reference split into its recipe and config name, or undefined. */
export function parseBuiltinRef(ref: string): { recipe: string; config: string } | undefined {
  const m = BUILTIN_REF_RE.exec(ref);
  return m ? { recipe: m[1], config: m[2].replace(/\.ya?ml$/, "") } : undefined;
}

/** Every built-in config as `RECIPE:CONFIG`, sorted. */
export function builtinConfigRefs(): string[] {
  const out: string[] = [];
  for (const { recipe, dir } of builtinConfigDirs()) {
    for (const f of Object.keys(dir.configs)) {
      if (f.endsWith(".yaml")) out.push(`${recipe}:${f.slice(0, -5)}`);
    }
  }
  return out.sort();
}

/** The text of built-in config `recipe:config`; a `UsageError` listing what exists otherwise. */
export function builtinConfigText(recipe: string, config: string): string {
  const entry = builtinConfigDirs().find((d) => d.recipe === recipe);
  if (!entry) {
    const recipes = builtinConfigDirs().map((d) => d.recipe);
    throw new UsageError(
      `no built-in recipe '${recipe}' (in '${recipe}:${config}').${didYouMean(recipe, recipes)}`,
      {
        hint: `built-in recipes with configs: ${recipes.join(", ")}`,
      },
    );
  }
  const text = entry.dir.configs[`${config}.yaml`];
  if (text === undefined) {
    const names = Object.keys(entry.dir.configs).filter((f) => f.endsWith(".yaml"))
      .map((f) => f.slice(0, -5));
    throw new UsageError(
      `recipe ${recipe} has no built-in config '${config}'.${didYouMean(config, names)}`,
      {
        hint: `its configs: ${names.map((n) => `${recipe}:${n}`).join(", ")}`,
      },
    );
  }
  return text;
}

/** The built-in configs named `name` (`tiny` → `demo/data:tiny`, `demo/train:tiny`, …). */
export function builtinConfigsNamed(name: string): string[] {
  return builtinConfigRefs().filter((r) => r.endsWith(`:${name}`));
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Config files available by name in `configDir` (names without `.yaml`/`.yml`), sorted. */
export function configNames(configDir: string): string[] {
  const names: string[] = [];
  try {
    for (const e of Deno.readDirSync(configDir)) {
      if (e.isFile && /\.ya?ml$/.test(e.name)) names.push(e.name.replace(/\.ya?ml$/, ""));
    }
  } catch {
    // no dir: no names
  }
  return [...new Set(names)].sort();
}

/**
 * Resolve `-c NAME_OR_PATH`: a value containing `/` or ending in `.yaml`/`.yml` is a path
 * (relative to the cwd) or, when no such file exists, a built-in config `RECIPE:CONFIG` (returned
 * as is; `loadConfig` reads it); otherwise `<configDir>/<name>.yaml`, then `.yml`. Missing → `UsageError`
 * with the original's messages ("Config file not found: …", "Config '…' not found in … Tried: …").
 */
export function findConfigFile(nameOrPath: string, configDir: string): string {
  if (nameOrPath.includes("/") || /\.ya?ml$/.test(nameOrPath)) {
    if (!exists(nameOrPath) && parseBuiltinRef(nameOrPath)) {
      const { recipe, config } = parseBuiltinRef(nameOrPath)!;
      builtinConfigText(recipe, config); // unknown recipe or config → UsageError listing them
      return nameOrPath; // loadConfig reads the built-in config
    }
    if (!exists(nameOrPath)) {
      throw new UsageError(`Config file not found: ${nameOrPath}`, {
        hint: "check the path (relative paths start from the current directory)",
      });
    }
    return nameOrPath;
  }
  for (const ext of [".yaml", ".yml"]) {
    const p = join(configDir, nameOrPath + ext);
    if (exists(p)) return p;
  }
  const names = configNames(configDir);
  throw new UsageError(
    `Config '${nameOrPath}' not found in ${configDir}. Tried: ${nameOrPath}.yaml, ${nameOrPath}.yml`,
    { hint: names.length ? `available configs: ${names.join(", ")}` : undefined },
  );
}

/** Read and parse one YAML config file (no inheritance). An empty file is an error. */
export function readConfigFile(path: string): ConfigMap {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UsageError(`cannot read config ${path}: ${(e as Error).message}`);
  }
  return parseConfigText(text, path);
}

function parseConfigText(text: string, shown: string): ConfigMap {
  if (!/^\s*[^\s#]/m.test(text)) {
    throw new UsageError(`config ${shown} is empty`, {
      location: { file: shown },
      hint: "a config holds `key: value` lines (an empty mapping is written {})",
    });
  }
  return parseYamlMapping(text, shown);
}

/**
 * Load a config file — or a built-in config given as `RECIPE:CONFIG` when no such file exists —
 * and apply `defaults:` inheritance: a top-level `defaults` that is a string or a list of strings
 * names base configs, merged in order, then the file itself (without `defaults`) on top. An entry
 * is `RECIPE:CONFIG` (a built-in config, e.g. `demo/train:tiny`) or a file (`.yaml` appended when
 * there is no suffix, relative to the including file; in a built-in config, a sibling built-in);
 * `_self_` is ignored. A Hydra-style list of mappings is left in place. Missing bases and cycles
 * are `UsageError`s naming the chain.
 */
export function loadConfig(path: string): ConfigMap {
  const ref = parseBuiltinRef(path);
  if (ref && !exists(path)) return loadWithChain(builtinSource(ref.recipe, ref.config), []);
  return loadWithChain(fileSource(resolve(path), path), []);
}

/** One config to load: a file on disk or a built-in config. */
interface ConfigSource {
  /** Identity on the inheritance chain. */
  readonly id: string;
  /** How messages name it. */
  readonly shown: string;
  read(): ConfigMap;
  /** The source a `defaults:` entry of this config names (undefined: the base does not exist). */
  base(entry: string): ConfigSource | undefined;
}

function fileSource(abs: string, shown: string): ConfigSource {
  return {
    id: abs,
    shown,
    read: () => readConfigFile(shown === abs ? abs : shown),
    base(entry) {
      const ref = parseBuiltinRef(entry);
      const file = extname(entry) ? entry : `${entry}.yaml`;
      const basePath = isAbsolute(file) ? file : join(dirname(abs), file);
      if (exists(basePath)) return fileSource(resolve(basePath), basePath);
      return ref ? builtinSource(ref.recipe, ref.config) : undefined;
    },
  };
}

function builtinSource(recipe: string, config: string): ConfigSource {
  const text = builtinConfigText(recipe, config);
  const shown = `${recipe}:${config}`;
  return {
    id: `builtin:${shown}`,
    shown,
    read: () => parseConfigText(text, shown),
    base(entry) {
      const ref = parseBuiltinRef(entry);
      if (ref) return builtinSource(ref.recipe, ref.config);
      const name = entry.replace(/\.ya?ml$/, "");
      return builtinSource(recipe, name);
    },
  };
}

function loadWithChain(src: ConfigSource, chain: string[]): ConfigMap {
  if (chain.includes(src.id)) {
    const cycle = [...chain.slice(chain.indexOf(src.id)), src.id];
    throw new UsageError(`Cyclic config inheritance detected: ${cycle.join(" -> ")}`, {
      hint: "remove one of the `defaults:` entries so the chain ends",
    });
  }
  const cfg = src.read();
  const defaults = cfg.get("defaults");
  const entries = typeof defaults === "string"
    ? [defaults]
    : Array.isArray(defaults) && defaults.every((d) => typeof d === "string")
    ? defaults as string[]
    : undefined;
  if (entries === undefined) return cfg;
  const own = mergeConfigs(new Map(), cfg); // a copy that keeps positions
  own.delete("defaults");
  let merged: ConfigMap = new Map();
  for (const entry of entries) {
    if (entry === "_self_") continue;
    const pos = positionOf(cfg, "defaults");
    let base: ConfigSource | undefined;
    try {
      base = src.base(entry);
    } catch (e) {
      // An unknown RECIPE:CONFIG: say where it was written.
      if (e instanceof UsageError && !e.location && pos) {
        throw new UsageError(e.message, { location: pos, hint: e.hint });
      }
      throw e;
    }
    if (base === undefined) {
      const file = extname(entry) ? entry : `${entry}.yaml`;
      throw new UsageError(
        `Base config '${join(dirname(resolve(src.id)), file)}' referenced from ${src.shown} ` +
          "does not exist",
        {
          location: pos,
          hint: "fix the `defaults:` entry (files are relative to this file; built-in configs " +
            "are RECIPE:CONFIG, e.g. demo/train:tiny — `nemotron config show` lists them)",
        },
      );
    }
    merged = mergeConfigs(merged, loadWithChain(base, [...chain, src.id]));
  }
  return mergeConfigs(merged, own);
}
