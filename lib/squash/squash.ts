/**
 * Docker image → enroot `.sqsh`, natively on the login node (registry or local archive → merged
 * tar stream → `mksquashfs -tar`) or through `enroot import` on a compute node. Also the entry
 * point the recipe/slurm code uses: `ensureSquashedImage`.
 */
import { dirname, isAbsolute, join, resolve } from "node:path";
import { RuntimeFailure, UsageError } from "../errors.ts";
import type { Profile } from "../env_toml.ts";
import { type ArchiveImage, openDockerArchive, openOciArchive } from "./archive.ts";
import { blobCacheDir, fetchBlob } from "./blobs.ts";
import { lookupCredentials } from "./credentials.ts";
import { renderEnrootImport } from "./enroot.ts";
import { enrootConfigFiles } from "./image_config.ts";
import { openLayerFile } from "./layers.ts";
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
import { formatBytes, type Reporter, SILENT, stderrReporter } from "./progress.ts";
import {
  type ArchiveImageRef,
  displayRef,
  parseImageRef,
  type RegistryImageRef,
  sqshName,
} from "./reference.ts";
import { RegistryClient, type RetryPolicy } from "./registry.ts";
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
 * Squash `image` into `output` natively. Writes `output.partial` and renames it when complete;
 * on failure (or Ctrl-C) no output file is left behind.
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
  const cacheDir = options.cacheDir ?? blobCacheDir();
  let digest: string;
  let config: ImageConfig;
  let layers: LayerSource[];
  let bytes: number;
  let downloads: Promise<string>[] = [];
  if (ref.kind === "registry") {
    const client = clientFor(ref, options);
    reporter.phase(`resolving ${displayRef(ref)} (${formatPlatform(platform)})`);
    const resolved = await resolveImage(client, ref.digest ?? ref.tag!, platform);
    checkLayerTypes(resolved, displayRef(ref));
    digest = resolved.digest;
    const configPath = await fetchBlob(client, cacheDir, resolved.config);
    config = JSON.parse(await Deno.readTextFile(configPath));
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
      open: async () => openLayerFile(await downloads[i], `layer ${l.digest}`),
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
      open: () => openLayerFile(ref.path, `${ref.path}:${l.name}`, l.range),
    }));
  }

  await checkMksquashfs();
  await Deno.mkdir(dirname(output), { recursive: true });
  const partial = `${output}.partial`;
  const mk = startMksquashfs(mksquashfsArgs(partial));
  const cleanup = () => {
    mk.kill();
    try {
      Deno.removeSync(partial);
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
      reporter.phase("squashing");
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
    await Deno.rename(partial, output);
  } catch (e) {
    cleanup();
    await Promise.allSettled(downloads);
    throw e;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    reporter.close();
  }
  const seconds = Math.round((performance.now() - t0) / 10) / 100;
  return { output, digest, layers: layers.length, bytes, seconds };
}

/** `squash` profile key → mode. */
export function squashMode(profile: Profile | undefined): "native" | "enroot" {
  const v = profile?.squash;
  if (v === undefined || v === null || v === "" || v === "native") return "native";
  if (v === "enroot") return "enroot";
  throw new UsageError(`profile key squash = ${JSON.stringify(v)} is not valid`, {
    hint: 'use squash = "native" (default) or squash = "enroot"',
  });
}

/** Where the `.sqsh` for `image` goes: `<remote_job_dir>/<name>`, else `<cwd>/<name>`. */
export function defaultSqshPath(
  image: string,
  profile: Profile | undefined,
  cwd = Deno.cwd(),
): string {
  const rjd = profile?.remote_job_dir;
  const dir = typeof rjd === "string" && rjd !== "" ? rjd : cwd;
  return join(isAbsolute(dir) ? dir : resolve(cwd, dir), sqshName(image));
}

/** Run the enroot import command (or return it for a dry run). */
export async function squashWithEnroot(
  image: string,
  output: string,
  profile: Profile | undefined,
): Promise<void> {
  const cmd = renderEnrootImport(image, output, dirname(output), profile);
  await Deno.mkdir(dirname(output), { recursive: true });
  let status: Deno.CommandStatus;
  try {
    status = await new Deno.Command(cmd.argv[0], { args: cmd.argv.slice(1), stdin: "null" }).spawn()
      .status;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new RuntimeFailure("salloc not found: the enroot path needs Slurm", {
        hint: 'run on a Slurm login node, or drop --enroot / squash = "enroot" to squash natively',
      });
    }
    throw e;
  }
  if (!status.success) {
    throw new RuntimeFailure(
      `Failed to squash container image.\nCommand: ${cmd.display}\nExit code: ${status.code}`,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

export interface EnsureOptions {
  readonly force?: boolean;
  readonly dryRun?: boolean;
  /** Default: the profile's `squash` key (native unless "enroot"). */
  readonly mode?: "native" | "enroot";
  readonly reporter?: Reporter;
  readonly platform?: Platform;
  readonly allowHttp?: boolean;
}

/**
 * Make sure the `.sqsh` for `image` exists and return its path (for pyxis `--container-image`).
 * An image that already is a `.sqsh` path is returned unchanged. An existing file is reused unless
 * `force`. With `dryRun`, only says what it would do (on stderr) and writes nothing.
 */
export async function ensureSquashedImage(
  profile: Profile | undefined,
  image: string,
  options: EnsureOptions = {},
): Promise<string> {
  if (image.endsWith(".sqsh") && !image.includes("://")) return image;
  const reporter = options.reporter ?? stderrReporter();
  const mode = options.mode ?? squashMode(profile);
  const output = defaultSqshPath(image, profile);
  if (!options.force && await exists(output)) {
    reporter.info(`✓ Using existing squashed image: ${output}`);
    return output;
  }
  if (options.dryRun) {
    if (mode === "enroot") {
      reporter.info(
        `would run: ${renderEnrootImport(image, output, dirname(output), profile).display}`,
      );
    } else {
      reporter.info(`would squash ${image} natively into ${output}`);
    }
    return output;
  }
  if (mode === "enroot") {
    if (options.force) await Deno.remove(output).catch(() => {});
    reporter.info(`squashing ${image} with enroot into ${output}`);
    await squashWithEnroot(image, output, profile);
  } else {
    reporter.info(`squashing ${image} into ${output}`);
    await squashNative(image, output, {
      reporter,
      platform: options.platform,
      allowHttp: options.allowHttp,
    });
  }
  return output;
}
