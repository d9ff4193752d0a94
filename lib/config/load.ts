/**
 * Finding and loading recipe configs: a config by name in a config dir or by path, YAML with
 * OmegaConf typing, and the simple `defaults:` inheritance of nemotron's loader.
 */
import { dirname, extname, isAbsolute, join, resolve } from "../path.ts";
import { UsageError } from "../errors.ts";
import { mergeConfigs } from "./merge.ts";
import { type ConfigMap, positionOf } from "./tree.ts";
import { parseYamlMapping } from "./yaml.ts";

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
 * (relative to the cwd); otherwise `<configDir>/<name>.yaml`, then `.yml`. Missing → `UsageError`
 * with the original's messages ("Config file not found: …", "Config '…' not found in … Tried: …").
 */
export function findConfigFile(nameOrPath: string, configDir: string): string {
  if (nameOrPath.includes("/") || /\.ya?ml$/.test(nameOrPath)) {
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

/** Read and parse one YAML config file (no inheritance). */
export function readConfigFile(path: string): ConfigMap {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UsageError(`cannot read config ${path}: ${(e as Error).message}`);
  }
  return parseYamlMapping(text, path);
}

/**
 * Load a config file and apply `defaults:` inheritance: a top-level `defaults` that is a string
 * or a list of strings names base files (`.yaml` appended when there is no suffix, relative to the
 * including file; `_self_` ignored). Bases are loaded recursively and merged in order, then the
 * file itself (without `defaults`) on top. A Hydra-style list of mappings is left in place.
 * Missing bases and cycles are `UsageError`s naming the chain.
 */
export function loadConfig(path: string): ConfigMap {
  return loadWithChain(resolve(path), path, []);
}

function loadWithChain(abs: string, shown: string, chain: string[]): ConfigMap {
  if (chain.includes(abs)) {
    const cycle = [...chain.slice(chain.indexOf(abs)), abs];
    throw new UsageError(`Cyclic config inheritance detected: ${cycle.join(" -> ")}`, {
      hint: "remove one of the `defaults:` entries so the chain ends",
    });
  }
  const cfg = readConfigFile(shown === abs ? abs : shown);
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
    const file = extname(entry) ? entry : `${entry}.yaml`;
    const basePath = isAbsolute(file) ? file : join(dirname(abs), file);
    if (!exists(basePath)) {
      const pos = positionOf(cfg, "defaults");
      throw new UsageError(
        `Base config '${basePath}' referenced from ${shown} does not exist`,
        { location: pos, hint: "fix the `defaults:` entry (names are relative to this file)" },
      );
    }
    merged = mergeConfigs(merged, loadWithChain(resolve(basePath), basePath, [...chain, abs]));
  }
  return mergeConfigs(merged, own);
}
