/**
 * Docker image → enroot `.sqsh` natively on the login node: registry (or local archive) → blob
 * cache → merged tar stream → `mksquashfs -tar`. Heavy (node:zlib, node:crypto): import it lazily;
 * `ensure.ts` is the light entry point.
 */
import { basename, dirname, join } from "../path.ts";
import { RuntimeFailure, UsageError } from "../errors.ts";
import { type ArchiveImage, openDockerArchive, openOciArchive } from "./archive.ts";
import { blobCacheDir, cacheCap, fetchBlob, pruneBlobCache } from "./blobs.ts";
import { lookupCredentials } from "./credentials.ts";
import { enrootConfigFiles } from "./image_config.ts";
import { expansionLimit, openLayerFile } from "./layers.ts";
import {
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  layerCompression,
  type Platform,
  type ResolvedImage,
  resolveImage,
} from "./manifest.ts";
import { type LayerSource, mergeLayers } from "./merge.ts";
import { checkMksquashfs, mksquashfsArgs, startMksquashfs } from "./mksquashfs.ts";
import { formatBytes, type Reporter, SILENT } from "./progress.ts";
import {
  type ArchiveImageRef,
  displayRef,
  parseImageRef,
  type RegistryImageRef,
} from "./reference.ts";
import { MAX_MANIFEST_BYTES, RegistryClient, type RetryPolicy } from "./registry.ts";
import { BufferedSink } from "./sink.ts";
import { END_OF_ARCHIVE } from "./tar.ts";

/** What `--json` prints. */
export interface SquashResult {
  readonly output: string;
  readonly digest: string;
  readonly layers: number;
  readonly bytes: number;
  readonly seconds: number;
}

export interface NativeOptions {
  readonly platform?: Platform;
  readonly allowHttp?: boolean;
  readonly reporter?: Reporter;
  /** Blob cache (default `$NEMOTRON_HOME/cache/blobs`). */
  readonly cacheDir?: string;
  readonly retry?: RetryPolicy;
  /** Parallel blob downloads (default 4). */
  readonly concurrency?: number;
}

/** What a native squash would fetch (dry run), already resolved against the registry. */
export interface NativePlan {
  readonly source: string;
  readonly digest: string;
  readonly platform?: string;
  readonly layers: readonly {
    readonly digest: string;
    readonly size: number;
    readonly mediaType: string;
  }[];
}

function clientFor(ref: RegistryImageRef, options: NativeOptions): RegistryClient {
  return new RegistryClient(ref.registry, ref.repository, {
    credentials: lookupCredentials(ref.registry, ref.user),
    allowHttp: options.allowHttp,
    retry: options.retry,
    onRetry: (m) => options.reporter?.warn(m),
  });
}

function checkLayerTypes(resolved: ResolvedImage, where: string): void {
  for (const l of resolved.layers) {
    if (layerCompression(l.mediaType) === undefined) {
      throw new RuntimeFailure(
        `${where}: layer ${l.digest} has media type '${l.mediaType}', not a filesystem layer`,
      );
    }
  }
}

function refOf(image: string): RegistryImageRef | ArchiveImageRef {
  const ref = parseImageRef(image);
  if (ref.kind === "dockerd" || ref.kind === "podman") {
    const daemon = ref.kind === "dockerd" ? "docker" : "podman";
    throw new UsageError(`${ref.kind}:// images need a local ${daemon} daemon`, {
      hint: "use --enroot (enroot import talks to the daemon), or push the image to a registry",
    });
  }
  return ref as RegistryImageRef | ArchiveImageRef;
}

/** Resolve what a native squash would fetch, without downloading layers. */
export async function planNative(image: string, options: NativeOptions = {}): Promise<NativePlan> {
  const ref = refOf(image);
  const platform = options.platform ?? hostPlatform();
  if (ref.kind === "registry") {
    const client = clientFor(ref, options);
    const resolved = await resolveImage(client, ref.digest ?? ref.tag!, platform);
    checkLayerTypes(resolved, displayRef(ref));
    return {
      source: displayRef(ref),
      digest: resolved.digest,
      platform: resolved.platform ? formatPlatform(resolved.platform) : undefined,
      layers: resolved.layers.map((l) => ({
        digest: l.digest,
        size: l.size,
        mediaType: l.mediaType,
      })),
    };
  }
  const a = await openArchive(ref, platform);
  return {
    source: ref.path,
    digest: a.digest,
    layers: a.layers.map((l) => ({
      digest: l.name,
      size: l.range.length,
      mediaType: "archive member",
    })),
  };
}

function openArchive(ref: ArchiveImageRef, platform: Platform): Promise<ArchiveImage> {
  return ref.kind === "docker-archive"
    ? openDockerArchive(ref.path)
    : openOciArchive(ref.path, platform);
}

/** Run `tasks` with at most `limit` at a time, in order; results as promises in input order. */
function limited<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T>[] {
  let next = 0;
  const resolvers: { resolve: (v: T) => void; reject: (e: unknown) => void }[] = [];
  const promises = tasks.map(() =>
    new Promise<T>((resolve, reject) => resolvers.push({ resolve, reject }))
  );
  const run = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      try {
        resolvers[i].resolve(await tasks[i]());
      } catch (e) {
        resolvers[i].reject(e);
      }
    }
  };
  for (let w = 0; w < Math.min(limit, tasks.length); w++) run();
  for (const p of promises) p.catch(() => {}); // observed later by the merge or the cleanup
  return promises;
}

/**
 * Squash `image` into `output` natively. mksquashfs writes into a private (0700, randomly named)
 * temp directory beside `output`, and the file is renamed into place when complete: nothing is
 * ever written through a name another user could have planted. On failure (or Ctrl-C) no output
 * file is left behind.
 */
export async function squashNative(
  image: string,
  output: string,
  options: NativeOptions = {},
): Promise<SquashResult> {
  const t0 = performance.now();
  const reporter = options.reporter ?? SILENT;
  const platform = options.platform ?? hostPlatform();
  const ref = refOf(image);
  const limit = expansionLimit();
  const cacheDir = options.cacheDir ?? blobCacheDir();
  const cap = cacheCap(); // a bad NEMOTRON_SQUASH_CACHE_MAX fails before any work
  let digest: string;
  let config: ImageConfig;
  let layers: LayerSource[];
  let bytes: number;
  let downloads: Promise<string>[] = [];
  let merged = 0; // stored (compressed) layer bytes the merge has read
  const mergeRead = (n: number) => reporter.progress("merge", merged += n, bytes);
  if (ref.kind === "registry") {
    const client = clientFor(ref, options);
    reporter.phase(`resolving ${displayRef(ref)} (${formatPlatform(platform)})`);
    const resolved = await resolveImage(client, ref.digest ?? ref.tag!, platform);
    checkLayerTypes(resolved, displayRef(ref));
    digest = resolved.digest;
    if (!(resolved.config.size <= MAX_MANIFEST_BYTES)) {
      throw new RuntimeFailure(
        `${
          displayRef(ref)
        }: image config of ${resolved.config.size} bytes is larger than ${MAX_MANIFEST_BYTES}: refused`,
      );
    }
    const configPath = await fetchBlob(client, cacheDir, resolved.config);
    try {
      config = JSON.parse(await Deno.readTextFile(configPath));
    } catch (e) {
      throw new RuntimeFailure(
        `${displayRef(ref)}: image config is not valid JSON: ${(e as Error).message}`,
      );
    }
    if (config.architecture && config.architecture !== platform.architecture) {
      reporter.warn(
        `image architecture ${config.architecture} differs from the requested ${platform.architecture}`,
      );
    }
    const n = resolved.layers.length;
    bytes = resolved.layers.reduce((a, l) => a + l.size, 0);
    reporter.info(`${displayRef(ref)} ${digest}: ${n} layers, ${formatBytes(bytes)}`);
    reporter.layers(resolved.layers.map((l) => l.size));
    // Top layer first: the merge starts with it while lower layers are still downloading.
    const order = resolved.layers.map((_, i) => n - 1 - i);
    const byOrder = limited(
      order.map((i) => async () => {
        const l = resolved.layers[i];
        const p = await fetchBlob(client, cacheDir, l, {
          onProgress: (b) => reporter.layerBytes(i, b),
          onRetry: (m) => reporter.warn(m),
        });
        reporter.layerDone(i, l.digest.slice(0, 19));
        return p;
      }),
      options.concurrency ?? 4,
    );
    downloads = resolved.layers.map((_, i) => byOrder[n - 1 - i]);
    layers = resolved.layers.map((l, i) => ({
      label: `layer ${i + 1}/${n} (${l.digest.slice(0, 19)})`,
      open: async () =>
        openLayerFile(await downloads[i], `layer ${l.digest}`, undefined, limit, mergeRead),
    }));
  } else {
    reporter.phase(`reading ${ref.path}`);
    const a = await openArchive(ref, platform);
    digest = a.digest;
    config = a.config;
    bytes = a.layers.reduce((s, l) => s + l.range.length, 0);
    reporter.info(`${ref.path}: ${a.layers.length} layers, ${formatBytes(bytes)}`);
    layers = a.layers.map((l, i) => ({
      label: `layer ${i + 1}/${a.layers.length} (${l.name})`,
      open: () => openLayerFile(ref.path, `${ref.path}:${l.name}`, l.range, limit, mergeRead),
    }));
  }

  mksquashfsArgs(output); // bad ENROOT_* / SOURCE_DATE_EPOCH values fail here, before any write
  await checkMksquashfs();
  let work: string;
  try {
    await Deno.mkdir(dirname(output), { recursive: true });
    work = await Deno.makeTempDir({
      dir: dirname(output),
      prefix: `.${basename(output)}.partial-`,
    });
  } catch (e) {
    throw new RuntimeFailure(`cannot write in ${dirname(output)}: ${(e as Error).message}`, {
      hint: "choose an output directory you can write to (-o, or remote_job_dir in the profile)",
    });
  }
  const partial = join(work, basename(output));
  const mk = startMksquashfs(
    mksquashfsArgs(partial),
    undefined,
    (done, total) => reporter.progress("mksquashfs", done, total),
  );
  const cleanup = () => {
    mk.kill();
    try {
      Deno.removeSync(work, { recursive: true });
    } catch { /* not there */ }
  };
  const onSignal = () => {
    reporter.close();
    cleanup();
    Deno.exit(130);
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    const sink = new BufferedSink(mk.stdin);
    const { files, dirs } = enrootConfigFiles(config);
    try {
      await mergeLayers(layers, sink, {
        topFiles: files,
        ensureDirs: dirs,
        warn: (m) => reporter.warn(m),
        onLayer: (label) => reporter.phase(`merging ${label}`),
      });
      reporter.progress("merge", bytes, bytes);
      reporter.phase("");
      await sink.write(END_OF_ARCHIVE);
      await sink.close();
    } catch (e) {
      // If mksquashfs died, its message explains the broken pipe better than the write error.
      mk.kill();
      await mk.done.catch((mkErr) => {
        if (!(e instanceof RuntimeFailure)) throw mkErr;
      });
      throw e;
    }
    await mk.done;
    reporter.end("mksquashfs"); // at its last count: the bar's total is final only now
    try {
      await Deno.rename(partial, output);
    } catch (e) {
      throw new RuntimeFailure(
        `cannot put the image in place at ${output}: ${(e as Error).message}`,
        {
          hint: "it may belong to someone else (in a shared directory): choose another -o",
        },
      );
    }
    await Deno.remove(work);
  } catch (e) {
    cleanup();
    await Promise.allSettled(downloads);
    throw e;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    reporter.close();
  }
  const seconds = Math.round((performance.now() - t0) / 10) / 100;
  // The cache cap (NEMOTRON_SQUASH_CACHE_MAX), after every native squash: least recently used
  // blobs go first — this image's were just used — and never one being downloaded right now.
  if (cap !== undefined) {
    const r = await pruneBlobCache(cacheDir, { maxBytes: cap });
    if (r.removed.length > 0) {
      reporter.info(
        `blob cache over NEMOTRON_SQUASH_CACHE_MAX (${
          formatBytes(cap)
        }): removed ${r.removed.length} least recently used blob(s), ${formatBytes(r.before)} → ${
          formatBytes(r.after)
        }`,
      );
    }
  }
  return { output, digest, layers: layers.length, bytes, seconds };
}
