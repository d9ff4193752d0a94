/**
 * What `nemotron --version` reports: the release version (deno.json), the git commit the binary was
 * built from, and the Deno runtime inside it. `tools/build.ts` stamps the commit into the bundle
 * (and so into the compiled binary, which is compiled from the bundle); run from a source checkout,
 * the commit is read with git at the time `--version` is asked.
 */
import denoJson from "../deno.json" with { type: "json" };
import * as path from "./path.ts";

/** Replaced by tools/build.ts with `<short sha>` or `<short sha>+dirty`. */
export const BUILD_COMMIT: string = "@@NEMOTRON_BUILD_COMMIT@@";

/** What a stamped commit looks like (a pattern, so the stamping does not rewrite this test). */
const STAMPED = /^[0-9a-f]{7,40}(\+dirty)?$/;

export interface VersionInfo {
  readonly version: string;
  /** Short commit (with `+dirty` when built from uncommitted changes), or `unknown`. */
  readonly commit: string;
  readonly deno: string;
  readonly v8: string;
  readonly typescript: string;
}

/** The commit of the source checkout this module lives in, when run from source. */
function sourceCommit(): string {
  try {
    const here = new URL(import.meta.url);
    if (here.protocol !== "file:") return "unknown";
    const dir = path.dirname(path.dirname(here.pathname));
    const git = (args: string[]) =>
      new Deno.Command("git", { args: ["-C", dir, ...args], stdout: "piped", stderr: "null" })
        .outputSync();
    const head = git(["rev-parse", "--short=12", "HEAD"]);
    if (!head.success) return "unknown";
    const sha = new TextDecoder().decode(head.stdout).trim();
    const dirty = git(["status", "--porcelain", "--untracked-files=no"]);
    return dirty.success && dirty.stdout.length > 0 ? `${sha}+dirty` : sha;
  } catch {
    return "unknown";
  }
}

export function versionInfo(): VersionInfo {
  return {
    version: denoJson.version,
    commit: STAMPED.test(BUILD_COMMIT) ? BUILD_COMMIT : sourceCommit(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
  };
}

/** `nemotron 0.1.0 (commit 1a2b3c4d5e6f, deno 2.9.6)` */
export function versionLine(v: VersionInfo = versionInfo()): string {
  return `nemotron ${v.version} (commit ${v.commit}, deno ${v.deno})`;
}
