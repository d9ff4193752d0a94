/**
 * What `--dry-run` shows (reference §1.8): the compiled configuration as two YAML panels, `run`
 * (unresolved) and `config` (everything else; local runs resolve `${run.*}`, remote runs show the
 * remote path rewrites), with secret-looking values redacted; plus the command that would run.
 */
import {
  remotePwdFor,
  resolveRunInterpolations,
  rewritePathsForRemote,
} from "../config/run_refs.ts";
import type { ConfigMap, ConfigNode } from "../config/tree.ts";
import { toYaml } from "../config/write.ts";
import { redactEnv as redactSecretEnv, redactSecrets } from "../secrets.ts";

/**
 * A copy of a config tree with secret-looking values shown as `******`, at any depth (the one
 * rule of lib/secrets.ts).
 */
export function redactTree(node: ConfigNode): ConfigNode {
  return redactSecrets(node);
}

/** Redact secret-looking entries of a name → value map (lib/secrets.ts). */
export const redactEnv = redactSecretEnv;

function box(title: string, body: string): string {
  const rule = "─".repeat(Math.max(4, 76 - title.length));
  return `── ${title} ${rule}\n${body.trimEnd()}\n`;
}

/** The config the display shows under `config`: job config minus `run`, local or remote view. */
export function displayedConfig(
  job: ConfigMap,
  opts: { forRemote: boolean; repoRoot?: string; cwd?: string },
): ConfigMap {
  const rest: ConfigMap = new Map([...job].filter(([k]) => k !== "run"));
  const root = opts.repoRoot ?? Deno.cwd();
  const shown = opts.forRemote
    ? rewritePathsForRemote(rest, root, remotePwdFor(root, opts.cwd))
    : resolveRunInterpolations(rest, job.get("run"));
  return shown as ConfigMap;
}

/** "Compiled Configuration" with the `run` and `config` panels. */
export function renderCompiledConfig(
  job: ConfigMap,
  opts: { forRemote: boolean; repoRoot?: string; cwd?: string },
): string {
  const run = job.get("run") ?? new Map();
  return [
    "",
    "Compiled Configuration",
    box("run", toYaml(redactTree(run))),
    box("config", toYaml(redactTree(displayedConfig(job, opts)))),
  ].join("\n");
}

/** A titled block of text (command, rendered script, environment). */
export function renderBlock(title: string, body: string): string {
  return box(title, body);
}
