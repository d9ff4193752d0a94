/**
 * `nemotron squash IMAGE [-o PATH] [--force] [-d|--dry-run] [--enroot] [-r PROFILE]
 * [--platform OS/ARCH] [--allow-http] [--json]`: docker image → enroot `.sqsh`.
 *
 * Natively (default): pull the layers into the blob cache, merge them with OCI whiteout rules into
 * one tar stream and feed `mksquashfs -tar` on this node — no root, no extraction, no allocation.
 * With `--enroot` (or `squash = "enroot"` in the profile): `salloc … srun … enroot import`.
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import { loadEnvFile, type Profile, resolveProfile } from "../lib/env_toml.ts";
import { isAbsolute, join, resolve } from "../lib/path.ts";
import { renderEnrootImport } from "../lib/squash/enroot.ts";
import {
  checkReusableSqsh,
  defaultSqshPath,
  squashMode,
  squashWithEnroot,
} from "../lib/squash/ensure.ts";
import { lstatOrUndefined } from "../lib/atomic.ts";
import { formatPlatform, hostPlatform, parsePlatform } from "../lib/squash/manifest.ts";
import { formatBytes, stderrReporter } from "../lib/squash/progress.ts";
import { formatSummary } from "../lib/cli/progress.ts";
import { localTime, relativeTime } from "../lib/cli/time.ts";
import {
  blobCacheDir,
  cacheCap,
  listBlobCache,
  parseAge,
  parseSize,
  pruneBlobCache,
} from "../lib/squash/blobs.ts";
import { parseImageRef, sqshName } from "../lib/squash/reference.ts";
import { dirname } from "../lib/path.ts";

interface SquashOpts {
  output?: string;
  force?: boolean;
  dryRun?: boolean;
  enroot?: boolean;
  run?: string;
  platform?: string;
  allowHttp?: boolean;
  json?: boolean;
}

function loadNamedProfile(name: string): Profile {
  const env = loadEnvFile();
  if (!env) {
    throw new UsageError(`profile '${name}' given but no env.toml found`, {
      hint: "create env.toml here (or in a parent directory), or set NEMOTRON_ENV_FILE",
    });
  }
  return resolveProfile(env, name);
}

function statOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw e;
  }
}

/** `-o PATH`: a directory (existing, or ending in `/`) gets the default name inside it. */
function outputPath(
  image: string,
  output: string | undefined,
  profile: Profile | undefined,
): string {
  if (output === undefined) return defaultSqshPath(image, profile);
  const abs = isAbsolute(output) ? output : resolve(Deno.cwd(), output);
  if (output.endsWith("/") || statOrUndefined(abs)?.isDirectory) return join(abs, sqshName(image));
  return abs;
}

export function squashCommand(cli: CliContext): Command {
  const cmd = new Command("squash")
    .usage("[OPTIONS] <image>\nnemotron squash cache list|prune [OPTIONS]")
    .description("convert a docker image into an enroot .sqsh (natively, or with --enroot)")
    .examples([
      [
        "nemotron squash nvcr.io/nvidia/nemo:25.11",
        "Pull and squash it into this directory",
      ],
      ["nemotron squash ubuntu:24.04 -o /lustre/me/images/", "Into a directory, default name"],
      ["nemotron squash IMAGE -d", "What would be fetched; write nothing"],
      ["nemotron squash IMAGE --enroot -r cluster", "Import with enroot on a compute node"],
      ["nemotron squash cache list", "The blob cache: size, last use"],
    ])
    .argument(
      "<image>",
      "NAME[:TAG], REGISTRY/NAME[:TAG|@DIGEST], docker://[USER@][REGISTRY#]NAME[:TAG], " +
        "docker-archive://PATH, oci-archive://PATH (dockerd:// and podman:// need --enroot)",
    )
    .option("-o, --output <path>", "output file, or a directory for the default name")
    .option("--force", "re-create the .sqsh even if it exists")
    .option("-d, --dry-run", "show what would be fetched (or the enroot command); write nothing")
    .option("--enroot", "run enroot import on a compute node via salloc/srun instead")
    .option("-r, --run <profile>", "Profile (env.toml): remote_job_dir, squash mode, build_* keys")
    .option(
      "--platform <os/arch>",
      "platform to pick from a multi-platform image (default: this host)",
    )
    .option("--allow-http", "allow plain HTTP to a non-loopback registry")
    .option("--json", "print {output, digest, layers, bytes, seconds} at the end")
    .action(async (image: string, opts: SquashOpts) => {
      const dryRun = Boolean(opts.dryRun || cli.leading.dryRun);
      cacheCap(); // a bad NEMOTRON_SQUASH_CACHE_MAX fails here, before any work
      const profileName = opts.run ?? cli.leading.run ?? cli.leading.batch;
      const profile = profileName ? loadNamedProfile(profileName) : undefined;
      const ref = parseImageRef(image);
      const platform = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
      const mode = opts.enroot ? "enroot" : squashMode(profile);
      if (mode === "native" && (ref.kind === "dockerd" || ref.kind === "podman")) {
        throw new UsageError(
          `${ref.kind}:// images need a local daemon; they work only with --enroot`,
          {
            hint: `nemotron squash --enroot ${image}`,
          },
        );
      }
      const output = outputPath(image, opts.output, profile);
      const say = (s: string) => console.error(s);
      // lstat: a symlink at the output is reported as itself, never followed.
      const existing = await lstatOrUndefined(output);
      if (existing && dryRun) {
        // Say what a real run would do, with and without --force; nothing is fetched.
        checkReusableSqsh(output, existing);
        const what = `exists (${formatBytes(existing.size)}, ${fileTime(existing.mtime)})`;
        const redo = mode === "enroot" ? "re-import it with enroot" : "re-create it";
        if (opts.json) {
          console.log(JSON.stringify({
            output,
            exists: { bytes: existing.size, mtime: existing.mtime?.toISOString() ?? null },
            action: opts.force ? "recreate" : "reuse",
          }));
          return;
        }
        console.log("Dry run: nothing is written.");
        console.log(`output:   ${output}`);
        console.log(
          opts.force
            ? `          ${what}: would ${redo} (--force)`
            : `          ${what}: would reuse it; with --force: would ${redo}`,
        );
        if (!opts.force) return;
      }
      if (existing && !opts.force) {
        checkReusableSqsh(output, existing);
        say(`Using existing squashed image: ${output} (pass --force to re-create it)`);
        if (opts.json) {
          console.log(
            JSON.stringify({
              output,
              digest: null,
              layers: 0,
              bytes: existing.size,
              seconds: 0,
              reused: true,
            }),
          );
        }
        return;
      }

      if (mode === "enroot") {
        const cmd = renderEnrootImport(image, output, dirname(output), profile);
        if (dryRun) {
          if (!existing) say("Dry run: nothing is written. Would run:");
          console.log(cmd.display);
          return;
        }
        const t0 = performance.now();
        if (existing) await Deno.remove(output);
        say(`Importing ${image} with enroot into ${output}`);
        say(`  ${cmd.display}`);
        await squashWithEnroot(image, output, profile);
        const seconds = Math.round((performance.now() - t0) / 10) / 100;
        if (opts.json) {
          const bytes = statOrUndefined(output)?.size ?? 0;
          console.log(JSON.stringify({ output, digest: null, layers: null, bytes, seconds }));
        } else say(`Successfully imported: ${output}`);
        return;
      }

      const { planNative, squashNative } = await import("../lib/squash/squash.ts");
      if (dryRun) {
        const plan = await planNative(image, { platform, allowHttp: opts.allowHttp });
        if (opts.json) {
          console.log(JSON.stringify({ output, ...plan }, null, 2));
          return;
        }
        const total = plan.layers.reduce((a, l) => a + l.size, 0);
        if (!existing) console.log(`Dry run: nothing is written.`);
        console.log(`image:    ${plan.source}`);
        console.log(
          `digest:   ${plan.digest}${
            plan.platform ? ` (${plan.platform})` : ` (${formatPlatform(platform)})`
          }`,
        );
        console.log(`layers:   ${plan.layers.length}, ${formatBytes(total)}`);
        for (const l of plan.layers) {
          console.log(`  ${l.digest}  ${formatBytes(l.size).padStart(10)}  ${l.mediaType}`);
        }
        if (!existing) console.log(`output:   ${output}`);
        return;
      }
      const reporter = stderrReporter();
      const result = await squashNative(image, output, {
        platform,
        allowHttp: opts.allowHttp,
        reporter,
      });
      if (opts.json) console.log(JSON.stringify(result));
      else {
        const size = statOrUndefined(output)?.size ?? 0;
        say(
          `Wrote ${output} (${formatBytes(size)}): ${result.layers} layers, ` +
            formatSummary(result.bytes, result.seconds),
        );
      }
    });
  cmd.addCommand(cacheCommand());
  return cmd;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** Local time of a file's mtime (`2026-11-30 14:02`). */
function fileTime(d: Date | null): string {
  return d ? localTime(d.toISOString()) : "unknown time";
}

/**
 * `squash cache list|prune`. `cache` is a sub-verb of `squash`: `nemotron squash cache …` always
 * means the cache; an image named `cache` is written `cache:latest` or `library/cache`.
 */
function cacheCommand(): Command {
  const cache = new Command("cache").description(
    "show and clean the blob cache of native squashes ($NEMOTRON_HOME/cache/blobs)",
  ).examples([
    ["nemotron squash cache list", "each blob's size and last use, and the total"],
    ["nemotron squash cache prune --older-than 7d", "remove blobs not used for a week"],
    ["nemotron squash cache prune --max-size 50G -d", "what a 50 GiB cap would remove"],
  ]);
  cache.command("list")
    .description("show each cached blob: size, last use (least recently used first), total")
    .option("--json", "print {dir, total_bytes, blobs: [{digest, bytes, last_used, partial}]}")
    .examples([["nemotron squash cache list --json", "the same as JSON (ISO times)"]])
    .action(async (opts: { json?: boolean }) => {
      const dir = blobCacheDir();
      const entries = await listBlobCache(dir);
      const total = entries.reduce((a, e) => a + e.bytes, 0);
      if (opts.json) {
        console.log(JSON.stringify(
          {
            dir,
            total_bytes: total,
            blobs: entries.map((e) => ({
              digest: e.digest,
              bytes: e.bytes,
              last_used: e.lastUsed.toISOString(),
              partial: e.partial,
            })),
          },
          null,
          2,
        ));
        return;
      }
      console.log(`Blob cache ${dir}`);
      if (entries.length === 0) {
        console.log("  (empty)");
        return;
      }
      console.log(`  ${"DIGEST".padEnd(19)}  ${"SIZE".padStart(10)}  LAST USED`);
      for (const e of entries) {
        console.log(
          `  ${e.digest.slice(0, 19)}  ${formatBytes(e.bytes).padStart(10)}  ${
            relativeTime(e.lastUsed.toISOString())
          }${e.partial ? "  (partial download)" : ""}`,
        );
      }
      const cap = cacheCap();
      console.log(
        `Total: ${plural(entries.length, "blob")}, ${formatBytes(total)}${
          cap === undefined ? "" : ` (cap ${formatBytes(cap)}, NEMOTRON_SQUASH_CACHE_MAX)`
        }`,
      );
    });
  cache.command("prune")
    .description(
      "remove blobs not used for a while and/or down to a size (least recently used first)",
    )
    .option("--older-than <age>", "remove blobs not used for AGE (e.g. 7d, 12h, 2w)")
    .option("--max-size <size>", "then remove until the cache is at most SIZE (e.g. 50G)")
    .option("-d, --dry-run", "only show what would be removed")
    .option("--json", "print {dry_run, removed, busy, before_bytes, after_bytes}")
    .examples([
      ["nemotron squash cache prune --older-than 30d", "remove blobs unused for 30 days"],
      ["nemotron squash cache prune --max-size 20G", "least recently used first, down to 20 GiB"],
      ["NEMOTRON_SQUASH_CACHE_MAX=50G nemotron squash cache prune", "apply the cap setting now"],
    ])
    .action(
      async (opts: { olderThan?: string; maxSize?: string; dryRun?: boolean; json?: boolean }) => {
        const olderThanMs = opts.olderThan === undefined ? undefined : parseAge(opts.olderThan);
        if (opts.olderThan !== undefined && olderThanMs === undefined) {
          throw new UsageError(`--older-than: '${opts.olderThan}' is not an age`, {
            hint: "a number and a unit: 30m, 12h, 7d, 2w",
          });
        }
        let maxBytes = opts.maxSize === undefined ? undefined : parseSize(opts.maxSize);
        if (opts.maxSize !== undefined && maxBytes === undefined) {
          throw new UsageError(`--max-size: '${opts.maxSize}' is not a size`, {
            hint: "a number and a unit (powers of 1024): 500M, 50G, 1T",
          });
        }
        if (olderThanMs === undefined && maxBytes === undefined) maxBytes = cacheCap();
        if (olderThanMs === undefined && maxBytes === undefined) {
          throw new UsageError("squash cache prune: say what to remove", {
            hint: "give --older-than AGE and/or --max-size SIZE (or set NEMOTRON_SQUASH_CACHE_MAX)",
          });
        }
        const r = await pruneBlobCache(blobCacheDir(), {
          olderThanMs,
          maxBytes,
          dryRun: Boolean(opts.dryRun),
        });
        if (opts.json) {
          console.log(JSON.stringify(
            {
              dry_run: Boolean(opts.dryRun),
              removed: r.removed.map((e) => ({ digest: e.digest, bytes: e.bytes })),
              busy: r.busy.map((e) => e.digest),
              before_bytes: r.before,
              after_bytes: r.after,
            },
            null,
            2,
          ));
          return;
        }
        const verb = opts.dryRun ? "would remove" : "removed";
        for (const e of r.removed) {
          console.log(
            `${verb} ${e.digest.slice(0, 19)}  ${formatBytes(e.bytes).padStart(10)}  last used ${
              relativeTime(e.lastUsed.toISOString())
            }`,
          );
        }
        for (const e of r.busy) {
          console.log(`kept ${e.digest.slice(0, 19)}: a squash is downloading it right now`);
        }
        console.log(
          `${opts.dryRun ? "Dry run: " : ""}${verb} ${plural(r.removed.length, "blob")}: ${
            formatBytes(r.before)
          } → ${formatBytes(r.after)}`,
        );
      },
    );
  return cache;
}
