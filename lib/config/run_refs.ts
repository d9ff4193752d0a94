/**
 * Helpers for the train config the script receives: textual `${run.*}` resolution, remote path
 * rewrites, and recognising artifact references under `run`.
 */
import { type ConfigNode, type Container, positionOf, pyStr, setPosition } from "./tree.ts";

/** Copy where each value of `from` was written onto `to` (same keys), so errors keep file:line. */
function keepPositions<T extends Container>(from: Container, to: T): T {
  const keys = from instanceof Map ? [...from.keys()] : from.map((_, i) => i);
  for (const k of keys) {
    const pos = positionOf(from, k);
    if (pos) setPosition(to, k, pos);
  }
  return to;
}

const RUN_REF = /\$\{run\.([^}]+)\}/g;
const WHOLE_RUN_REF = /^\$\{run\.([^}]+)\}$/;

function lookupRun(
  run: ConfigNode | undefined,
  path: string,
): { found: boolean; value?: ConfigNode } {
  let cur: ConfigNode | undefined = run;
  for (const seg of path.split(".")) {
    if (!(cur instanceof Map) || !cur.has(seg)) return { found: false };
    cur = cur.get(seg)!;
  }
  return { found: true, value: cur };
}

/**
 * Replace `${run.a.b}` by the value at `a.b` of `run`, recursively through maps and lists.
 * A string that is exactly one `${run.…}` gets the typed value; embedded values are stringified
 * (None → ""). Missing paths and other interpolations (`${art:…}`, `${oc.env:…}`) stay verbatim.
 */
export function resolveRunInterpolations(
  value: ConfigNode,
  run: ConfigNode | undefined,
): ConfigNode {
  if (value instanceof Map) {
    const out = new Map<string, ConfigNode>();
    for (const [k, v] of value) out.set(k, resolveRunInterpolations(v, run));
    return keepPositions(value, out);
  }
  if (Array.isArray(value)) {
    return keepPositions(value, value.map((v) => resolveRunInterpolations(v, run)));
  }
  if (typeof value !== "string" || !value.includes("${run.")) return value;
  const whole = WHOLE_RUN_REF.exec(value);
  if (whole) {
    const r = lookupRun(run, whole[1]);
    return r.found ? r.value! : value;
  }
  return value.replace(RUN_REF, (m, path: string) => {
    const r = lookupRun(run, path);
    if (!r.found) return m;
    return r.value === null ? "" : pyStr(r.value!);
  });
}

/**
 * Rewrite local paths for the remote side, first matching rule per string: `${oc.env:PWD}` →
 * `/nemo_run/code`; a leading `${oc.env:NEMO_RUN_DIR…}` → `/nemo_run`; a path under `repoRoot`
 * → `/nemo_run/code/…`. The repo test is a real path-prefix test: `/local/repo2/x` is not under
 * `/local/repo`. `remotePwd` is what `${oc.env:PWD}` becomes (default `/nemo_run/code`; the code
 * packager passes `/nemo_run/code/<sub>` when run from a subdirectory `<sub>` of the checkout).
 */
export function rewritePathsForRemote(
  value: ConfigNode,
  repoRoot: string,
  remotePwd = "/nemo_run/code",
): ConfigNode {
  if (value instanceof Map) {
    const out = new Map<string, ConfigNode>();
    for (const [k, v] of value) out.set(k, rewritePathsForRemote(v, repoRoot, remotePwd));
    return keepPositions(value, out);
  }
  if (Array.isArray(value)) {
    return keepPositions(value, value.map((v) => rewritePathsForRemote(v, repoRoot, remotePwd)));
  }
  if (typeof value !== "string") return value;
  if (value.includes("${oc.env:PWD}")) return value.replaceAll("${oc.env:PWD}", remotePwd);
  if (value.startsWith("${oc.env:NEMO_RUN_DIR")) {
    const end = value.indexOf("}");
    if (end > 0) return "/nemo_run" + value.slice(end + 1);
  }
  const root = repoRoot.length > 1 ? repoRoot.replace(/\/+$/, "") : repoRoot;
  if (root && (value === root || value.startsWith(root === "/" ? "/" : root + "/"))) {
    const rest = value.slice(root.length).replace(/^\/+/, "");
    return rest ? `/nemo_run/code/${rest}` : "/nemo_run/code";
  }
  return value;
}

/**
 * What `${oc.env:PWD}` becomes remotely when nemotron runs in `cwd` and the code package is rooted
 * at `repoRoot`: `/nemo_run/code/<cwd relative to repoRoot>` (or `/nemo_run/code`).
 */
export function remotePwdFor(repoRoot: string, cwd: string | undefined): string {
  if (cwd === undefined) return "/nemo_run/code";
  const root = repoRoot.length > 1 ? repoRoot.replace(/\/+$/, "") : repoRoot;
  if (cwd.startsWith(root + "/")) return `/nemo_run/code/${cwd.slice(root.length + 1)}`;
  return "/nemo_run/code";
}

/**
 * True when `value` looks like an artifact reference (`name:latest`, `name:v3`, `name:7`, or a
 * W&B `…Artifact…` name) rather than a path or container image.
 */
export function isArtifactReference(value: unknown): boolean {
  if (typeof value !== "string") return false;
  if (value.includes("/")) return false;
  const low = value.toLowerCase();
  if (low.includes("nvcr") || low.includes("docker")) return false;
  if (value.includes("Artifact")) return true;
  const colon = value.lastIndexOf(":");
  if (colon < 0) return false;
  const version = value.slice(colon + 1);
  const name = value.slice(0, colon);
  const versionOk = version === "latest" || version.startsWith("v") || /^\d+$/.test(version);
  return versionOk && !name.includes(".") && !name.includes("/");
}
