/**
 * The OCI layer merge: layers are read top-down (last layer first) and every final path is written
 * exactly once into one tar stream for `mksquashfs -tar`, with the whiteouts applied. Only the set
 * of paths seen so far is kept in memory; contents stream straight through.
 *
 * Rules (OCI image spec "applying changesets", applied in reverse):
 * - the first (topmost) entry for a path wins; lower entries for it are dropped;
 * - `.wh.NAME` hides `NAME` and its subtree in the layers below; `.wh..wh..opq` hides the lower
 *   children of its directory (not entries of its own layer, wherever the marker sits in the tar);
 * - a non-directory at `P` hides everything below `P` in the layers below (type changes);
 * - a directory seen only as a parent of upper entries still takes its metadata from the topmost
 *   explicit entry (mksquashfs updates an implied directory when its entry arrives later);
 * - hard links point at the name their target got in the output; a target replaced by an upper
 *   layer is re-read from its own layer at the end so the link keeps its original content.
 * Escapes are never written: names with `..` are dropped, absolute names are made relative, and an
 * entry below a symlink (or other non-directory) of the same layer is dropped — with a warning.
 * Like enroot, entries under `dev/` are left out. Device nodes elsewhere are dropped with a
 * warning (an unprivileged `enroot import` cannot create them either: its tar's mknod fails);
 * fifos and setuid/setgid bits are kept, as enroot's import keeps them.
 */
import { ByteReader, encodeHeader, padding, readTar, type TarHeader, ZEROS } from "./tar.ts";
import type { ByteSink } from "./sink.ts";

/** A layer the merge can open (decompressed tar bytes). Opened once, in top-down order. */
export interface LayerSource {
  readonly label: string;
  open(): Promise<AsyncIterable<Uint8Array>>;
}

/** A small file written on top of all layers (enroot's `/etc/rc` and friends). */
export interface SyntheticFile {
  readonly path: string;
  readonly content: string;
  readonly mode: number;
}

export interface MergeOptions {
  /** Files placed above the top layer. */
  readonly topFiles?: readonly SyntheticFile[];
  /** Directories created (0755) at the end if no layer has them (e.g. the WorkingDir). */
  readonly ensureDirs?: readonly string[];
  /** Called once per problem entry. */
  readonly warn?: (message: string) => void;
  /** Called when a layer starts being merged (top-down index, 0 = top). */
  readonly onLayer?: (label: string) => void;
  /** Leave out `dev/*` like enroot does (default true). */
  readonly excludeDev?: boolean;
  /** Drop character and block devices outside `dev/`, with a warning (default true). */
  readonly dropDevices?: boolean;
  /** mtime for synthetic entries (default now). */
  readonly mtime?: number;
}

export interface MergeStats {
  /** Entries written. */
  entries: number;
  /** Content bytes written. */
  contentBytes: number;
  /** Entries dropped as unsafe (escapes), counted once each. */
  unsafe: number;
  /** Device nodes dropped (outside `dev/`). */
  devices: number;
}

const IMPLIED = 0;
const DIR = 1;
const OTHER = 2;

/** Normalise a tar name; `undefined` means "unsafe, drop". `""` is the root. */
export function normalizeEntryPath(
  raw: string,
): { path?: string; changed: boolean; reason?: string } {
  const parts = raw.split("/");
  const out: string[] = [];
  for (const p of parts) {
    if (p === "" || p === ".") continue;
    if (p === "..") return { changed: true, reason: "has a '..' component" };
    out.push(p);
  }
  const path = out.join("/");
  return { path, changed: raw.startsWith("/") };
}

function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** True if `set` holds a proper ancestor of `path` (or `path` itself when `self`). */
function hasAncestorIn(set: Set<string>, path: string, self: boolean): boolean {
  if (set.size === 0) return false;
  if (self && set.has(path)) return true;
  let i = path.lastIndexOf("/");
  while (i > 0) {
    const a = path.slice(0, i);
    if (set.has(a)) return true;
    i = path.lastIndexOf("/", i - 1);
  }
  return false;
}

interface DeferredLink {
  /** Layer to re-read for the target's content, or -1: link to the target's final name. */
  layer: number;
  readonly target: string;
  readonly link: string;
  readonly header: TarHeader;
}

/**
 * Merge `layers` (bottom-first, as listed in the manifest) into `sink` as one tar stream, without
 * an end-of-archive marker (the caller closes the stream).
 */
export async function mergeLayers(
  layers: readonly LayerSource[],
  sink: ByteSink,
  options: MergeOptions = {},
): Promise<MergeStats> {
  const warn = options.warn ?? (() => {});
  const excludeDev = options.excludeDev ?? true;
  const mtime = options.mtime ?? Math.floor(Date.now() / 1000);
  const dropDevices = options.dropDevices ?? true;
  const stats: MergeStats = { entries: 0, contentBytes: 0, unsafe: 0, devices: 0 };
  const droppedDevices = new Set<string>();
  const emitted = new Map<string, number>();
  const hidden = new Set<string>(); // whiteouts: path + subtree hidden in lower layers
  const childrenHidden = new Set<string>(); // opaque dirs and non-dirs: subtree hidden below
  const deferred: DeferredLink[] = [];

  const markParents = (path: string): void => {
    let p = parentOf(path);
    while (p !== "" && !emitted.has(p)) {
      emitted.set(p, IMPLIED);
      p = parentOf(p);
    }
  };
  const writeHeader = async (h: TarHeader): Promise<void> => {
    await sink.write(encodeHeader(h));
    stats.entries++;
  };
  const synthetic = (path: string, type: TarHeader["type"], mode: number, size = 0): TarHeader => ({
    path,
    type,
    mode,
    uid: 0,
    gid: 0,
    uname: "root",
    gname: "root",
    mtime,
    size,
    linkname: "",
    devmajor: 0,
    devminor: 0,
  });

  // "Layer 0": the synthetic files above everything.
  const enc = new TextEncoder();
  for (const f of options.topFiles ?? []) {
    const path = normalizeEntryPath(f.path).path!;
    const data = enc.encode(f.content);
    await writeHeader(synthetic(path, "file", f.mode, data.length));
    await sink.write(data);
    await sink.write(ZEROS.subarray(0, padding(data.length)));
    stats.contentBytes += data.length;
    emitted.set(path, OTHER);
    markParents(path);
  }

  for (let li = layers.length - 1; li >= 0; li--) {
    const layer = layers[li];
    options.onLayer?.(layer.label);
    const pendingHidden: string[] = [];
    const pendingChildrenHidden: string[] = [];
    const layerNonDirs = new Set<string>();
    const layerFiles = new Set<string>(); // regular files of this layer that were written
    const layerMasked = new Set<string>(); // regular files of this layer that were not written
    const reader = new ByteReader(await layer.open());
    for await (const h of readTar(reader, layer.label)) {
      const norm = normalizeEntryPath(h.path);
      if (norm.path === undefined) {
        stats.unsafe++;
        warn(`${layer.label}: dropped '${h.path}': ${norm.reason}`);
        continue;
      }
      const path = norm.path;
      if (norm.changed) warn(`${layer.label}: absolute name '${h.path}' stored as '/${path}'`);
      if (path === "") continue; // the root: mksquashfs gets -root-mode instead
      const base = baseOf(path);
      if (base.startsWith(".wh.")) {
        if (base === ".wh..wh..opq") pendingChildrenHidden.push(parentOf(path));
        else if (!base.startsWith(".wh..wh.")) {
          const dir = parentOf(path);
          pendingHidden.push(dir === "" ? base.slice(4) : `${dir}/${base.slice(4)}`);
        }
        continue;
      }
      if (excludeDev && path.startsWith("dev/")) continue;
      if (hasAncestorIn(hidden, path, true) || hasAncestorIn(childrenHidden, path, false)) {
        if (h.type === "file") layerMasked.add(path);
        continue;
      }
      if (hasAncestorIn(layerNonDirs, path, false)) {
        stats.unsafe++;
        warn(`${layer.label}: dropped '${h.path}': it is below a non-directory of the same layer`);
        continue;
      }
      const isDir = h.type === "dir";
      if (!isDir) {
        layerNonDirs.add(path);
        pendingChildrenHidden.push(path);
      }
      const existing = emitted.get(path);
      const wins = existing === undefined || (existing === IMPLIED && isDir);
      if (!wins) {
        if (h.type === "file") layerMasked.add(path);
        continue;
      }
      if (h.type === "hardlink") {
        const t = normalizeEntryPath(h.linkname);
        if (t.path === undefined || t.path === "") {
          stats.unsafe++;
          warn(`${layer.label}: dropped hard link '${h.path}' -> '${h.linkname}': unsafe target`);
          continue;
        }
        if (t.changed) {
          warn(`${layer.label}: absolute hard link target '${h.linkname}' made relative`);
        }
        emitted.set(path, OTHER);
        markParents(path);
        if (layerFiles.has(t.path)) {
          await writeHeader({ ...h, path, linkname: t.path, size: 0 });
        } else {
          deferred.push({ layer: li, target: t.path, link: path, header: h });
        }
        continue;
      }
      emitted.set(path, isDir ? DIR : OTHER);
      markParents(path);
      if (h.type === "file") {
        layerFiles.add(path);
        await writeHeader({ ...h, path });
        for await (const chunk of reader.chunks(h.size)) await sink.write(chunk);
        await sink.write(ZEROS.subarray(0, padding(h.size)));
        stats.contentBytes += h.size;
      } else if (dropDevices && (h.type === "char" || h.type === "block")) {
        // The path stays taken (it hides lower entries), but no device node reaches the image.
        stats.devices++;
        droppedDevices.add(path);
        warn(
          `${layer.label}: dropped ${h.type} device '/${path}' (${h.devmajor}:${h.devminor}): ` +
            "device nodes outside /dev are not imported",
        );
      } else {
        await writeHeader({ ...h, path, size: 0 });
      }
    }
    await reader.drain();
    for (const p of pendingHidden) hidden.add(p);
    for (const p of pendingChildrenHidden) childrenHidden.add(p);
    // Links whose target is a masked file of this same layer are resolved by a re-read below.
    for (const d of deferred) {
      if (d.layer === li && !layerMasked.has(d.target)) d.layer = -1;
    }
  }

  // Hard links whose target was replaced above them: copy the target's content from its layer.
  const fallback = deferred.filter((d) => d.layer < 0);
  for (let li = 0; li < layers.length; li++) {
    const wanted = new Map<string, DeferredLink[]>();
    for (const d of deferred) {
      if (d.layer === li) wanted.set(d.target, [...(wanted.get(d.target) ?? []), d]);
    }
    if (wanted.size === 0) continue;
    const reader = new ByteReader(await layers[li].open());
    for await (const h of readTar(reader, layers[li].label)) {
      const p = normalizeEntryPath(h.path).path;
      const group = p === undefined || h.type !== "file" ? undefined : wanted.get(p);
      if (!group) continue;
      wanted.delete(p!);
      const [first, ...rest] = group;
      await writeHeader({ ...h, path: first.link });
      for await (const chunk of reader.chunks(h.size)) await sink.write(chunk);
      await sink.write(ZEROS.subarray(0, padding(h.size)));
      stats.contentBytes += h.size;
      for (const d of rest) {
        await writeHeader({ ...d.header, path: d.link, linkname: first.link, size: 0 });
      }
    }
    await reader.drain();
    for (const group of wanted.values()) fallback.push(...group);
  }
  for (const d of fallback) {
    if (emitted.get(d.target) === OTHER && !droppedDevices.has(d.target)) {
      await writeHeader({ ...d.header, path: d.link, linkname: d.target, size: 0 });
    } else {
      warn(`dropped hard link '/${d.link}': its target '/${d.target}' is not a file in the image`);
    }
  }

  for (const dir of options.ensureDirs ?? []) {
    const p = normalizeEntryPath(dir).path;
    if (!p || emitted.get(p) === DIR || emitted.get(p) === OTHER) continue;
    if (emitted.get(p) === IMPLIED) continue;
    emitted.set(p, DIR);
    markParents(p);
    await writeHeader(synthetic(p, "dir", 0o755));
  }
  return stats;
}
