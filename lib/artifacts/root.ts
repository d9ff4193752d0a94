/**
 * Where the artifact registry lives. First match wins:
 * 1. `NEMOTRON_ARTIFACTS_ROOT` (also what recipe scripts receive);
 * 2. env.toml `[artifacts] root` (or the original's `[artifacts.manifest] root`);
 * 3. `$NEMOTRON_HOME/artifacts`, with `NEMOTRON_HOME` defaulting to `~/.nemotron`.
 * `~` is expanded; a relative env.toml path is taken relative to the env.toml's directory, a
 * relative NEMOTRON_ARTIFACTS_ROOT/NEMOTRON_HOME relative to the current directory.
 */
import { dirname, resolve as resolvePath } from "../path.ts";
import { UsageError } from "../errors.ts";
import { loadEnvFile, specialSection } from "../env_toml.ts";
import { ArtifactRegistry } from "./registry.ts";
import { nemotronHome } from "../home.ts";

interface EnvReader {
  get(key: string): string | undefined;
}

/** The registry root for an `[artifacts]` env.toml section (or none). */
export function artifactsRoot(
  section: Readonly<Record<string, unknown>> | undefined,
  env: EnvReader = Deno.env,
  baseDir?: string,
): string {
  const fromEnv = env.get("NEMOTRON_ARTIFACTS_ROOT");
  if (fromEnv) return expandPath(fromEnv, env);
  const manifest = section?.manifest;
  const candidates: [string, unknown][] = [
    ["[artifacts] root", section?.root],
    [
      "[artifacts.manifest] root",
      manifest !== null && typeof manifest === "object"
        ? (manifest as Record<string, unknown>).root
        : undefined,
    ],
  ];
  for (const [where, value] of candidates) {
    if (value === undefined || value === null) continue;
    if (typeof value !== "string" || value === "") {
      throw new UsageError(`env.toml ${where} must be a non-empty string path`, {
        hint: `e.g. [artifacts]\nroot = "/lustre/me/artifacts"`,
      });
    }
    return expandPath(value, env, baseDir);
  }
  return resolvePath(nemotronHome(env), "artifacts");
}

/** The registry the CLI uses: env.toml `[artifacts]` found by the usual discovery, else defaults. */
export function registryFromEnvironment(cwd: string = Deno.cwd()): ArtifactRegistry {
  const fromEnv = Deno.env.get("NEMOTRON_ARTIFACTS_ROOT");
  if (fromEnv) return new ArtifactRegistry(artifactsRoot(undefined));
  const envFile = loadEnvFile(cwd);
  return new ArtifactRegistry(
    artifactsRoot(
      specialSection(envFile, "artifacts"),
      Deno.env,
      envFile ? dirname(envFile.path) : undefined,
    ),
  );
}

function homeDir(env: EnvReader): string {
  const home = env.get("HOME") ?? env.get("USERPROFILE");
  if (!home) {
    throw new UsageError("cannot find the home directory (HOME is not set)", {
      hint: "set NEMOTRON_HOME or NEMOTRON_ARTIFACTS_ROOT",
    });
  }
  return home;
}

function expandPath(p: string, env: EnvReader, baseDir?: string): string {
  if (p === "~" || p.startsWith("~/")) return resolvePath(homeDir(env), p.slice(2));
  return baseDir === undefined ? resolvePath(p) : resolvePath(baseDir, p);
}
