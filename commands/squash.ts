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
  return new Command("squash")
    .description("convert a docker image into an enroot .sqsh (natively, or with --enroot)")
    .argument(
      "<image>",
      "NAME[:TAG], REGISTRY/NAME[:TAG|@DIGEST], docker://[USER@][REGISTRY#]NAME[:TAG], " +
        "docker-archive://PATH, oci-archive://PATH (dockerd:// and podman:// need --enroot)",
    )
    .option("-o, --output <path>", "output file, or a directory for the default name")
    .option("--force", "re-create the .sqsh even if it exists")
    .option("-d, --dry-run", "show what would be fetched (or the enroot command); write nothing")
    .option("--enroot", "run enroot import on a compute node via salloc/srun instead")
    .option("-r, --run <profile>", "env.toml profile: remote_job_dir, squash mode, build_* keys")
    .option(
      "--platform <os/arch>",
      "platform to pick from a multi-platform image (default: this host)",
    )
    .option("--allow-http", "allow plain HTTP to a non-loopback registry")
    .option("--json", "print {output, digest, layers, bytes, seconds} at the end")
    .action(async (image: string, opts: SquashOpts) => {
      const dryRun = Boolean(opts.dryRun || cli.leading.dryRun);
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
          say("Dry run: nothing is written. Would run:");
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
        console.log(`Dry run: nothing is written.`);
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
        console.log(`output:   ${output}${existing ? " (exists; --force re-creates it)" : ""}`);
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
        say(`Wrote ${output} (${formatBytes(size)}) in ${result.seconds} s`);
      }
    });
}
