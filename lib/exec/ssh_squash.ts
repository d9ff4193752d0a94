/**
 * Container images for a cluster behind an ssh tunnel (`tunnel = "ssh"`): the one decision every
 * command that runs images there makes (recipes through lib/exec/ssh_submit.ts, `nano3 eval` for
 * the launcher's images). An image is never squashed on this machine nor uploaded from it: an
 * existing `<remote_job_dir>/<name>.sqsh` on the cluster is used, `enroot import` runs there over
 * the tunnel (`squash = "enroot"`, or `--force-squash`), or it is a clear error saying how to
 * squash it there.
 */
import * as path from "../path.ts";
import { RuntimeFailure, UsageError } from "../errors.ts";
import { shellQuote } from "../shell.ts";
import type { Profile } from "../env_toml.ts";
import { renderEnrootImport } from "../squash/enroot.ts";
import { squashMode } from "../squash/ensure.ts";
import { sqshName } from "../squash/reference.ts";
import { type SshTunnel, tunnelLabel } from "./ssh.ts";

const enc = new TextEncoder();

/** Whether `image` already is a `.sqsh` path (used as is, on the cluster). */
export function isSqshPath(image: string): boolean {
  return image.endsWith(".sqsh") && !image.includes("://");
}

/** Where the `.sqsh` of a registry image lives on the cluster: `<remote_job_dir>/<name>.sqsh`. */
export function clusterSqshPath(image: string, remoteJobDir: string): string {
  return path.join(remoteJobDir, sqshName(image));
}

/** What `ensureClusterSqsh` needs besides the tunnel. */
export interface ClusterImageRequest {
  /** A registry image (not a `.sqsh` path). */
  readonly image: string;
  /** remote_job_dir as the cluster sees it (`~` already expanded there, see `probeRemote`). */
  readonly remoteJobDir: string;
  /** The profile (its `squash` mode and `build_*`/`account`/`partition` keys for salloc). */
  readonly profile: Profile;
  /** `--force-squash`: import again even when the `.sqsh` exists. */
  readonly force: boolean;
  /** Whether the `.sqsh` exists on the cluster, or how to find out (one ssh call). */
  readonly exists: boolean | (() => Promise<boolean>);
  /** The setting that names the image, for the hint (default `container_image`). */
  readonly setting?: string;
}

/**
 * The `.sqsh` on the cluster for a registry image, which is then there: an existing one is used
 * (unless `force`); with the profile's `squash = "enroot"`, `enroot import` runs on the cluster
 * through the tunnel (again with `force`; RuntimeFailure, exit 1, if it fails); otherwise a
 * UsageError (exit 2) that says how to squash it there. Nothing is squashed on this machine.
 */
export async function ensureClusterSqsh(
  tunnel: Pick<SshTunnel, "exec" | "spec">,
  req: ClusterImageRequest,
): Promise<string> {
  const label = tunnelLabel(tunnel.spec);
  const target = clusterSqshPath(req.image, req.remoteJobDir);
  const mode = squashMode(req.profile);
  const exists = req.force
    ? false
    : typeof req.exists === "boolean"
    ? req.exists
    : await req.exists();
  if (exists) {
    console.error(`✓ Using existing squashed image on ${label}: ${target}`);
  } else if (mode === "enroot") {
    await squashOverSsh(tunnel, req.image, target, req.profile, req.force);
  } else if (req.force) {
    throw new UsageError(
      `--force-squash: nemotron squashes images on ${label} only with enroot (the profile has squash = "native")`,
      {
        hint:
          `set squash = "enroot" in the profile (nemotron then runs enroot import on the cluster over ssh), or squash it again on the cluster: \`nemotron squash ${req.image} -o ${target} --force\` there`,
      },
    );
  } else {
    throw new UsageError(
      `container image ${req.image} has no squashed .sqsh on ${label} (looked for ${target})`,
      {
        hint:
          `nemotron does not upload images from this machine. Squash it on the cluster: \`nemotron squash ${req.image} -o ${target}\` there, or set squash = "enroot" in the profile (nemotron then runs enroot import on the cluster over ssh), or set ${
            req.setting ?? "container_image"
          } to a .sqsh path on the cluster`,
      },
    );
  }
  return target;
}

/** Whether `file` is a regular file on the cluster (one ssh call). */
export async function clusterFileExists(
  tunnel: Pick<SshTunnel, "exec" | "spec">,
  file: string,
): Promise<boolean> {
  const out = await tunnel.exec(`test -f "$1"`, undefined, [file]);
  return out.code === 0;
}

/** `enroot import` on the cluster through the tunnel (salloc/srun there, as on a login node). */
async function squashOverSsh(
  tunnel: Pick<SshTunnel, "exec" | "spec">,
  image: string,
  output: string,
  profile: Profile,
  force: boolean,
): Promise<void> {
  const cmd = renderEnrootImport(image, output, path.dirname(output), profile);
  console.error(`squashing ${image} with enroot on ${tunnelLabel(tunnel.spec)} into ${output}`);
  const rm = force ? `rm -f -- ${shellQuote(output)} && ` : "";
  const out = await tunnel.exec(
    `${rm}mkdir -p -- ${shellQuote(path.dirname(output))} && ${cmd.display} 1>&2`,
  );
  if (out.stderr) Deno.stderr.writeSync(enc.encode(out.stderr));
  if (out.code !== 0) {
    throw new RuntimeFailure(
      `Failed to squash container image on ${
        tunnelLabel(tunnel.spec)
      }.\nCommand: ${cmd.display}\nExit code: ${out.code}`,
    );
  }
}
