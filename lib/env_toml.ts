/**
 * env.toml: where profiles (named execution settings) live.
 *
 * Discovery: `NEMOTRON_ENV_FILE` (with `~`); else `env.toml` in the current directory and each
 * parent, stopping after the first directory holding `pyproject.toml` or `.git`, at `$HOME` and at
 * the root of the current directory's filesystem (a mount point); else the user file
 * `$XDG_CONFIG_HOME/nemotron/env.toml` (default `~/.config/nemotron/env.toml`). A discovered
 * env.toml that another user could have written (owned by someone other than you or root, or
 * writable by group/others) is skipped with a warning: its `setup_lines` would run as you.
 *
 * Top-level tables are profiles, except the special sections `wandb`, `cli`, `cache`, `artifacts`.
 * `extends = "parent"` merges the child over its resolved parent (tables deep-merged, arrays
 * replaced); interpolations (`${oc.env:VAR,default}`, `${sibling}`) are resolved at load.
 */
import * as path from "./path.ts";
import { didYouMean, NemotronError, UsageError } from "./errors.ts";
import { isTable, locateKey, parseToml } from "./toml.ts";
import { interpolateProfileTable } from "./config/profile.ts";
import { checkProfileKeys } from "./profile_keys.ts";

export const SPECIAL_SECTIONS = ["wandb", "cli", "cache", "artifacts"] as const;
export type SpecialSection = (typeof SPECIAL_SECTIONS)[number];

/** A resolved profile: plain TOML data, `extends` applied and removed, interpolations resolved. */
export type Profile = Readonly<Record<string, unknown>>;

/** A loaded env.toml file. */
export interface EnvFile {
  readonly path: string;
  /** How it was found: the variable, a directory walk, or the user config file. */
  readonly source: "NEMOTRON_ENV_FILE" | "directory" | "user";
  readonly data: Readonly<Record<string, unknown>>;
  readonly lines: readonly string[];
}

/** Expand a leading `~` to the home directory. */
export function expandHome(p: string): string {
  if (p === "~" || p.startsWith("~/")) {
    const home = Deno.env.get("HOME") ?? "";
    return path.join(home, p.slice(1));
  }
  return p;
}

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

const warnedUntrusted = new Set<string>();

/**
 * Why a discovered env.toml cannot be trusted (someone else could have written it), or
 * undefined. Warns once per file.
 */
function untrustedEnvFile(file: string): string | undefined {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(file);
  } catch {
    return undefined;
  }
  const uid = Deno.uid();
  if (uid === null) return undefined;
  let why: string | undefined;
  if (st.uid !== uid && st.uid !== 0) why = `it belongs to another user (uid ${st.uid})`;
  else if (((st.mode ?? 0) & 0o022) !== 0) {
    why = `it is writable by group or others (mode 0${((st.mode ?? 0) & 0o777).toString(8)})`;
  }
  if (why && !warnedUntrusted.has(file)) {
    warnedUntrusted.add(file);
    console.error(
      `warning: ignoring ${file}: ${why}; settings from it would run as you ` +
        "(chmod go-w it if it is yours, or use ~/.config/nemotron/env.toml or NEMOTRON_ENV_FILE)",
    );
  }
  return why;
}

/** Where env.toml would be read from, without reading it. */
export function findEnvFile(
  cwd: string = Deno.cwd(),
): { path: string; source: EnvFile["source"] } | undefined {
  const fromVar = Deno.env.get("NEMOTRON_ENV_FILE");
  if (fromVar) {
    const p = path.resolve(cwd, expandHome(fromVar));
    if (!exists(p)) {
      throw new UsageError(`NEMOTRON_ENV_FILE points to a file that does not exist: ${p}`, {
        hint: "fix or unset NEMOTRON_ENV_FILE",
      });
    }
    return { path: p, source: "NEMOTRON_ENV_FILE" };
  }
  let dir = path.resolve(cwd);
  const home = Deno.env.get("HOME") ? path.resolve(Deno.env.get("HOME")!) : undefined;
  const device = (d: string) => {
    try {
      return Deno.statSync(d).dev;
    } catch {
      return undefined;
    }
  };
  const startDev = device(dir);
  while (true) {
    const candidate = path.join(dir, "env.toml");
    if (exists(candidate) && !untrustedEnvFile(candidate)) {
      return { path: candidate, source: "directory" };
    }
    if (exists(path.join(dir, "pyproject.toml")) || exists(path.join(dir, ".git"))) break;
    if (dir === home) break; // never climb out of the home directory
    const parent = path.dirname(dir);
    if (parent === dir) break;
    if (startDev !== undefined && device(parent) !== startDev) break; // a mount point's root
    dir = parent;
  }
  const xdg = Deno.env.get("XDG_CONFIG_HOME") ||
    path.join(Deno.env.get("HOME") ?? "", ".config");
  const user = path.join(xdg, "nemotron", "env.toml");
  if (exists(user) && !untrustedEnvFile(user)) return { path: user, source: "user" };
  return undefined;
}

/** Find and parse env.toml; `undefined` when there is none. TOML errors carry file:line:col. */
export function loadEnvFile(cwd: string = Deno.cwd()): EnvFile | undefined {
  const found = findEnvFile(cwd);
  if (!found) return undefined;
  return readEnvFile(found.path, found.source);
}

/**
 * For `--help` of a recipe: the env.toml (to list its profiles), or — when it is broken — none, with
 * a one-line warning, so a typo in env.toml never hides the help that explains how to fix things.
 */
export function loadEnvFileForHelp(cwd: string = Deno.cwd()): EnvFile | undefined {
  try {
    return loadEnvFile(cwd);
  } catch (err) {
    const where = err instanceof NemotronError && err.location
      ? `${err.location.file}:${err.location.line}: `
      : "";
    const what = err instanceof Error ? err.message.split("\n")[0] : String(err);
    console.error(
      `warning: ${where}${what} (profiles not listed; \`nemotron env list\` shows why)`,
    );
    return undefined;
  }
}

/** Parse one env.toml file. */
export function readEnvFile(file: string, source: EnvFile["source"] = "directory"): EnvFile {
  const text = Deno.readTextFileSync(file);
  const data = parseToml(text, file);
  return Object.freeze({ path: file, source, data, lines: text.split(/\r?\n/) });
}

/** Names of the profiles (top-level tables that are not special sections), in file order. */
export function profileNames(env: EnvFile): string[] {
  return Object.keys(env.data).filter((k) =>
    isTable(env.data[k]) && !(SPECIAL_SECTIONS as readonly string[]).includes(k)
  );
}

/** A special section (`[wandb]`, `[artifacts]`, …), or undefined. */
export function specialSection(
  env: EnvFile | undefined,
  name: SpecialSection,
): Record<string, unknown> | undefined {
  const v = env?.data[name];
  return isTable(v) ? v : undefined;
}

/** Deep merge for profiles: tables merge key-wise, everything else (arrays too) is replaced. */
export function mergeTables(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isTable(b) && isTable(v) ? mergeTables(b, v) : v;
  }
  return out;
}

/** The `extends` chain of a profile, child first (e.g. `["dev", "base"]`). */
export function extendsChain(env: EnvFile, name: string): string[] {
  const chain: string[] = [];
  let current: string | undefined = name;
  while (current !== undefined) {
    if (chain.includes(current)) {
      throw new UsageError(`Circular profile inheritance detected: ${current}`, {
        location: { file: env.path, line: locateKey(env.lines, current, "extends") },
        hint: `profile chain: ${[...chain, current].join(" -> ")}; remove one 'extends'`,
      });
    }
    chain.push(current);
    const table: unknown = env.data[current];
    if (!isTable(table)) {
      const child = chain[chain.length - 2];
      throw new UsageError(`Profile '${child}' extends unknown profile '${current}'`, {
        location: { file: env.path, line: locateKey(env.lines, child, "extends") },
        hint: `known profiles: ${profileNames(env).join(", ")}.${
          didYouMean(current, profileNames(env))
        }`,
      });
    }
    const parent: unknown = table.extends;
    if (parent !== undefined && typeof parent !== "string") {
      throw new UsageError(`'extends' of profile '${current}' must be a profile name (string)`, {
        location: { file: env.path, line: locateKey(env.lines, current, "extends") },
        hint: 'write extends = "base"',
      });
    }
    current = parent;
  }
  return chain;
}

/**
 * Resolve profile `name`: check it exists and is not a special section, apply `extends`, resolve
 * interpolations. Errors use the original's messages plus a "did you mean" hint.
 */
export function resolveProfile(env: EnvFile, name: string): Profile {
  const names = profileNames(env);
  if ((SPECIAL_SECTIONS as readonly string[]).includes(name)) {
    throw new UsageError(
      `'${name}' is a special env.toml section, not a profile`,
      {
        location: { file: env.path },
        hint: `profiles in this file: ${names.join(", ") || "none"}`,
      },
    );
  }
  if (!names.includes(name)) {
    const available = "[" + names.map((n) => `'${n}'`).join(", ") + "]";
    throw new UsageError(`Profile '${name}' not found in env.toml. Available: ${available}`, {
      location: { file: env.path },
      hint: `add a [${name}] table to ${env.path}.${didYouMean(name, names)}`.trim(),
    });
  }
  const chain = extendsChain(env, name);
  checkProfileKeys(
    env.path,
    env.lines,
    chain.map((n) => ({ name: n, table: env.data[n] as Record<string, unknown> })),
  );
  let merged: Record<string, unknown> = {};
  for (const n of chain.toReversed()) {
    merged = mergeTables(merged, env.data[n] as Record<string, unknown>);
  }
  delete merged.extends;
  merged = interpolateProfileTable(merged, { file: env.path, profile: name });
  return deepFreeze(merged);
}

/**
 * Resolve profile `name` (when one was asked for) from `env`; no env.toml at all is an error that
 * says where the file is looked for.
 */
export function profileFrom(
  env: EnvFile | undefined,
  name: string | undefined,
): Profile | undefined {
  if (name === undefined) return undefined;
  if (!env) {
    throw new UsageError(`Profile '${name}' not found: no env.toml was found`, {
      hint:
        "create env.toml in this directory (or a parent up to the repository root), set NEMOTRON_ENV_FILE, or write ~/.config/nemotron/env.toml",
    });
  }
  return resolveProfile(env, name);
}

/** Load env.toml and resolve `name`; `undefined` when no profile was asked for. */
export function loadProfile(name: string | undefined, cwd?: string): Profile | undefined {
  return name === undefined ? undefined : profileFrom(loadEnvFile(cwd), name);
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !(v instanceof Date)) {
    for (const x of Object.values(v as Record<string, unknown>)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
