/**
 * The artifact registry of a cluster behind an ssh tunnel (`nemotron artifacts list|show|lineage
 * --on PROFILE`), read-only. Jobs submitted through the tunnel publish into the registry on the
 * cluster (lib/exec/ssh_submit.ts: env.toml `[artifacts] root` / `NEMOTRON_ARTIFACTS_ROOT` taken
 * as a cluster path, else `<remote_job_dir>/artifacts`). One ssh call sends the registry's small
 * files — `latest`, `aliases/*`, and each version's `manifest.json` and `metadata.json`, never
 * the data below them (`find -maxdepth 3`) — which are written into a private temporary copy
 * under `$NEMOTRON_HOME/ssh/`; the ordinary registry code reads that copy, so listing, version
 * and alias resolution and lineage mean exactly what they mean on the cluster. Paths in the
 * manifests are the cluster's.
 */
import * as path from "../path.ts";
import { RuntimeFailure, UsageError } from "../errors.ts";
import { loadEnvFile, resolveProfile, specialSection } from "../env_toml.ts";
import { nemotronHome } from "../home.ts";
import { profileLocator } from "../exec/slurm.ts";
import { SshTunnel, tunnelDir, tunnelLabel, tunnelSpecOf } from "../exec/ssh.ts";
import { artifactsRoot } from "./root.ts";
import { ArtifactRegistry } from "./registry.ts";

/** A registry copied from a cluster; `close()` removes the copy. */
export interface RemoteRegistry {
  readonly registry: ArtifactRegistry;
  /** `host:/path` of the registry on the cluster, for messages. */
  readonly where: string;
  close(): void;
}

/**
 * Prints `D root` (`~` expanded there) and, per file, `F relpath` then its bytes in base64 on
 * one line. Arguments: the registry root as configured ("" for the default), remote_job_dir.
 */
const FETCH = String.raw`
root=$1; rjd=$2
case $rjd in "~") rjd=$HOME;; "~/"*) rjd=$HOME/@{rjd#??};; esac
case $root in "") root=$rjd/artifacts;; "~") root=$HOME;; "~/"*) root=$HOME/@{root#??};; esac
printf 'D\t%s\n' "$root"
[ -d "$root" ] || exit 0
cd -- "$root" || exit 3
find . -mindepth 2 -maxdepth 3 -type f \( -name latest -o -name manifest.json -o -name metadata.json -o -path './*/aliases/*' \) |
while IFS= read -r f; do
  printf 'F\t%s\n' "@{f#./}"
  base64 -w0 < "$f" || exit 4
  printf '\n'
done
`.replaceAll("@{", "${"); // "@{": a shell "$" + "{" that the JS template must not read

/** What the registry may hold at these paths; anything else sent back is ignored. */
const FILE =
  /^[A-Za-z0-9_][A-Za-z0-9_.-]*\/(latest|v\d+\/(manifest|metadata)\.json|aliases\/[A-Za-z0-9_][A-Za-z0-9_.-]*)$/;

/** Open the registry on the cluster of profile `profileName` (which must say tunnel = "ssh"). */
export async function openRemoteRegistry(profileName: string): Promise<RemoteRegistry> {
  const env = loadEnvFile();
  if (!env) {
    throw new UsageError(`--on ${profileName}: no env.toml was found`, {
      hint: "`nemotron env show` says where nemotron looks for env.toml",
    });
  }
  const profile = resolveProfile(env, profileName);
  const locate = profileLocator(env, profileName);
  const spec = tunnelSpecOf(profile, { profileName, locate });
  if (!spec) {
    throw new UsageError(
      `--on ${profileName}: profile '${profileName}' does not say tunnel = "ssh"`,
      {
        hint:
          "--on reads the registry of a cluster reached over ssh; on the cluster's login node run the command without --on",
      },
    );
  }
  const rjd = typeof profile.remote_job_dir === "string" ? profile.remote_job_dir : "";
  if (rjd === "") {
    throw new UsageError(`profile '${profileName}': remote_job_dir: is required`, {
      location: locate("remote_job_dir"),
    });
  }
  // As at submit time: a configured root is a path on the cluster; the default one (this
  // machine's $NEMOTRON_HOME/artifacts) is <remote_job_dir>/artifacts there.
  const configured = artifactsRoot(
    specialSection(env, "artifacts"),
    Deno.env,
    path.dirname(env.path),
  );
  const root = configured === path.join(nemotronHome(), "artifacts") ? "" : configured;
  const tunnel = await SshTunnel.open(spec);
  const label = tunnelLabel(spec);
  const out = await tunnel.exec(FETCH.replace(/^\n/, ""), undefined, [root, rjd]);
  if (out.code !== 0) {
    throw new RuntimeFailure(
      `cannot read the artifact registry on ${label}: ${out.stderr.trim() || `exit ${out.code}`}`,
    );
  }
  const lines = new TextDecoder().decode(out.stdout).split("\n");
  const remoteRoot = lines[0]?.startsWith("D\t") ? lines[0].slice(2) : "";
  if (!remoteRoot.startsWith("/")) {
    throw new RuntimeFailure(`unexpected answer from ${label} while reading the registry`);
  }
  const copy = Deno.makeTempDirSync({ dir: tunnelDir(), prefix: "artifacts-" });
  try {
    for (let i = 1; i + 1 < lines.length; i += 2) {
      const rel = lines[i].startsWith("F\t") ? lines[i].slice(2) : "";
      if (!FILE.test(rel)) continue;
      const file = path.join(copy, rel);
      Deno.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      Deno.writeFileSync(file, Uint8Array.from(atob(lines[i + 1]), (c) => c.charCodeAt(0)), {
        mode: 0o600,
      });
    }
  } catch (err) {
    Deno.removeSync(copy, { recursive: true });
    throw new RuntimeFailure(`cannot copy the artifact registry of ${label}: ${String(err)}`);
  }
  return {
    registry: new ArtifactRegistry(copy),
    where: `${label}:${remoteRoot}`,
    close: () => Deno.removeSync(copy, { recursive: true }),
  };
}
