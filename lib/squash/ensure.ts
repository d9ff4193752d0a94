/**
 * The entry point recipe and slurm code use: `ensureSquashedImage(profile, image, …)` returns the
 * `.sqsh` path pyxis should get, squashing first if needed — natively (default) or through
 * `enroot import` (`squash = "enroot"` in the profile). Light to import: the native squasher is
 * loaded only when an image actually has to be squashed.
 */
import { RuntimeFailure, UsageError } from "../errors.ts";
import type { Profile } from "../env_toml.ts";
import { dirname, isAbsolute, join, resolve } from "../path.ts";
import { renderEnrootImport } from "./enroot.ts";
import type { Platform } from "./manifest.ts";
import { type Reporter, stderrReporter } from "./progress.ts";
import { sqshName } from "./reference.ts";
import { lstatOrUndefined, notOwnFileReason } from "../atomic.ts";

/**
 * Refuse to reuse an existing `.sqsh` that is not a regular file of this user: in a shared
 * directory a symlink or someone else's file may have been planted there (UsageError naming it).
 */
export function checkReusableSqsh(output: string, info: Deno.FileInfo): void {
  const why = notOwnFileReason(info);
  if (why) {
    throw new UsageError(`existing image ${output} ${why}: not reusing it`, {
      hint: "remove it if you trust it to be gone, choose another output (-o / remote_job_dir), " +
        "or pass --force to replace it with a fresh squash",
    });
  }
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
    // enroot's output goes to stderr: stdout stays clean for --json.
    const child = new Deno.Command(cmd.argv[0], {
      args: cmd.argv.slice(1),
      stdin: "null",
      stdout: "piped",
    })
      .spawn();
    await child.stdout.pipeTo(Deno.stderr.writable, { preventClose: true });
    status = await child.status;
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
 * `force` (only a regular file of this user: see `checkReusableSqsh`). With `dryRun`, only says what it would do (on stderr) and writes nothing.
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
  const existing = options.force ? undefined : await lstatOrUndefined(output);
  if (existing) {
    checkReusableSqsh(output, existing);
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
    const { squashNative } = await import("./squash.ts");
    await squashNative(image, output, {
      reporter,
      platform: options.platform,
      allowHttp: options.allowHttp,
    });
  }
  return output;
}
