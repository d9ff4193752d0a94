/**
 * POSIX path helpers. nemotron runs on Linux login nodes; this avoids `node:path`, whose polyfill
 * costs start-up time in every command (see README design notes).
 */

export const sep = "/";

/** Collapse `.`/`..`/duplicate slashes. Keeps a leading `/`; returns `.` for an empty result. */
export function normalize(p: string): string {
  if (p === "") return ".";
  const abs = p.startsWith("/");
  const trailing = p.endsWith("/") && p.length > 1;
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!abs) out.push("..");
    } else out.push(seg);
  }
  let res = (abs ? "/" : "") + out.join("/");
  if (res === "") res = abs ? "/" : ".";
  if (trailing && res !== "/") res += "/";
  return res;
}

/** Join segments and normalise. */
export function join(...parts: string[]): string {
  const nonEmpty = parts.filter((x) => x !== "");
  return nonEmpty.length === 0 ? "." : normalize(nonEmpty.join("/"));
}

/** True for an absolute path. */
export function isAbsolute(p: string): boolean {
  return p.startsWith("/");
}

/** Resolve to an absolute, normalised path (right-most absolute segment wins; else from cwd). */
export function resolve(...parts: string[]): string {
  let acc = "";
  for (let i = parts.length - 1; i >= 0 && !acc.startsWith("/"); i--) {
    if (parts[i] === "") continue;
    acc = acc === "" ? parts[i] : `${parts[i]}/${acc}`;
  }
  if (!acc.startsWith("/")) acc = `${Deno.cwd()}/${acc}`;
  const n = normalize(acc);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/** The directory part (`/a/b/c` → `/a/b`, `c` → `.`). */
export function dirname(p: string): string {
  if (p === "") return ".";
  const s = p.replace(/\/+$/, "");
  if (s === "") return "/";
  const i = s.lastIndexOf("/");
  if (i < 0) return ".";
  const head = s.slice(0, i).replace(/\/+$/, "");
  return head === "" ? "/" : head;
}

/** The last segment, optionally without `ext`. */
export function basename(p: string, ext?: string): string {
  const s = p.length > 1 ? p.replace(/\/+$/, "") : p;
  const b = s.slice(s.lastIndexOf("/") + 1);
  return ext && b.endsWith(ext) && b !== ext ? b.slice(0, -ext.length) : b;
}

/** The extension of the last segment, with its dot (`a.tar.gz` → `.gz`), or "". */
export function extname(p: string): string {
  const b = basename(p);
  const i = b.lastIndexOf(".");
  return i <= 0 || b === ".." ? "" : b.slice(i);
}

/** The relative path from `from` to `to` (both resolved first). */
export function relative(from: string, to: string): string {
  const a = resolve(from).split("/").filter(Boolean);
  const b = resolve(to).split("/").filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...Array(a.length - i).fill(".."), ...b.slice(i)].join("/");
}

/** True when `child` is `parent` or lies below it (path-segment aware: /a/b2 is not under /a/b). */
export function isWithin(parent: string, child: string): boolean {
  const p = resolve(parent);
  const c = resolve(child);
  return c === p || c.startsWith(p === "/" ? "/" : p + "/");
}
