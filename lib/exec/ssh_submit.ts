/**
 * Submitting through an ssh tunnel (`tunnel = "ssh"`): the job dir is built on this machine
 * exactly as on a login node (script, job.json, configs, code package) but in a private staging
 * dir under `$NEMOTRON_HOME/ssh/stage/`, then copied to `<remote_job_dir>/jobs/<key>` on the
 * cluster (rsync hard-links files that an earlier job dir there already has), the secrets file is
 * written there from stdin (umask 077, never in an argv, never on this machine's disk), and
 * `sbatch --parsable` runs there. Only then is the job recorded, with the tunnel as its cluster.
 *
 * Before anything is written, one ssh call checks the cluster side: the remote uid and home,
 * `sbatch` on PATH, and `remote_job_dir` with the same StrictModes-style check as on a login node
 * (lib/trusted_path.ts, fed with facts gathered by a small remote shell snippet).
 */
import * as path from "../path.ts";
import { RuntimeFailure, UsageError } from "../errors.ts";
import { shellJoin, shellQuote } from "../shell.ts";
import { type PathFacts, type PathInspector, untrustedPathComponent } from "../trusted_path.ts";
import { JobStore } from "../jobs/store.ts";
import { writeFileAtomic } from "../atomic.ts";
import { nemotronHome } from "../home.ts";
import type { RecipeArgs } from "../cli/args.ts";
import type { AutoMount } from "../config/resolvers.ts";
import { sqshName } from "../squash/reference.ts";
import { ensureClusterSqsh, isSqshPath } from "./ssh_squash.ts";
import {
  buildSlurmJob,
  renderSbatch,
  secretsDirName,
  secretValues,
  type SlurmJob,
  type SlurmJobSpec,
} from "./slurm.ts";
import type { JobManifest } from "./job_dir.ts";
import { newJobRecord, type SubmitJobOptions, submitSbatch, type SubmittedJob } from "./submit.ts";
import { preflightArgs, readPreflight } from "./slurm_preflight.ts";
import { syncGitMounts, syncGitMountsRemote } from "./git_mounts.ts";
import {
  registerTunnelJob,
  SshTunnel,
  tunnelClusterKey,
  tunnelDir,
  tunnelJobOf,
  tunnelLabel,
  type TunnelSpec,
} from "./ssh.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();

/** What one ssh call learned about the cluster side of a profile. */
export interface RemoteProbe {
  readonly uid: number;
  readonly home: string;
  /** `remote_job_dir` with `~` expanded on the cluster. */
  readonly remoteJobDir: string;
  /** `command -v sbatch` on the cluster, or "" when missing. */
  readonly sbatch: string;
  /** Whether the `.sqsh` asked about exists there. */
  readonly sqshExists: boolean;
  /** The newest job dirs in `<remote_job_dir>/jobs` (up to 3), for rsync `--link-dest`. */
  readonly recentJobDirs: readonly string[];
  /** Facts about every component of the paths nemotron uses in `remote_job_dir`. */
  readonly inspector: PathInspector;
  /** `job_dir_group` on the cluster: its gid (null: no such group) and whether you are in it. */
  readonly group?: { readonly gid: number | null; readonly member: boolean };
  /** What `sbatch --test-only` (asked for with `testOnly`) answered there. */
  readonly preflight?: { readonly code: number; readonly stdout: string; readonly stderr: string };
}

/**
 * The probe script: prints `U uid`, `H home`, `D remote_job_dir`, `B sbatch`, `Q 0|1` (the .sqsh
 * exists), `G gid 0|1` (job_dir_group's gid, or empty, and whether you are in it), `T code` and
 * `O line`s (what `sbatch --test-only` said), then `S path uid hexmode` for every existing
 * component of each target and its real path (`R path realpath`). Arguments: remote_job_dir as
 * written, the .sqsh to test (or ""), the group (or ""), then the `sbatch --test-only` argv (if
 * any) — so the cluster checks and Slurm's preflight cost one round trip.
 */
const PROBE = String.raw`
rjd=$1; sqsh=$2; grp=$3
case $rjd in "~") rjd=$HOME;; "~/"*) rjd=$HOME/@{rjd#??};; esac
case $sqsh in "~/"*) sqsh=$HOME/@{sqsh#??};; esac
uid=$(id -u) || exit 90
printf 'U	%s
H	%s
D	%s
B	%s
' "$uid" "$HOME" "$rjd" "$(command -v sbatch 2>/dev/null)"
if [ -n "$sqsh" ] && [ -f "$sqsh" ]; then printf 'Q	1
'; else printf 'Q	0
'; fi
if [ -n "$grp" ]; then
  gid=$(getent group "$grp" | cut -d: -f3)
  case $grp in *[!0-9]*) ;; *) [ -n "$gid" ] || gid=$grp;; esac
  m=0; for g in $(id -G); do [ "$g" = "$gid" ] && m=1; done
  printf 'G\t%s\t%s\n' "$gid" "$m"
fi
if [ $# -gt 3 ] && command -v sbatch >/dev/null 2>&1; then
  shift 3
  o=$(sbatch "$@" 2>&1); c=$?
  printf 'T\t%s\n' "$c"
  printf '%s\n' "$o" | while IFS= read -r l; do printf 'O\t%s\n' "$l"; done
fi
if cd -- "$rjd/jobs" 2>/dev/null; then ls -1t | head -n 3 | sed 's/^/L	/'; cd /; fi
set -f
nl='
'
old=$IFS
list=/
add() {
  p=; IFS=/
  for c in $1; do IFS=$old; [ -n "$c" ] && { p=$p/$c; list=$list$nl$p; }; done
  IFS=$old
}
for t in "$rjd/jobs" "$rjd/git-cache" "$rjd/.nemotron-secrets-$uid"; do
  add "$t"
  e=$t
  while [ "$e" != / ] && ! [ -e "$e" ]; do e=@{e%/*}; [ -n "$e" ] || e=/; done
  r=$(cd -P -- "$e" 2>/dev/null && pwd -P) && { printf 'R	%s	%s
' "$e" "$r"; add "$r"; }
done
IFS=$nl
stat --printf 'S	%n	%u %f
' -- $list 2>/dev/null
IFS=$old
exit 0
`.replaceAll("@{", "${"); // "@{": a shell "$" + "{" that the JS template must not read

/**
 * Ask the cluster about `remote_job_dir` (as written in the profile) in one ssh call; with
 * `group`, about job_dir_group there; with `testOnly` (`preflightArgs`), Slurm's answer too.
 */
export async function probeRemote(
  tunnel: Pick<SshTunnel, "exec" | "spec">,
  rjd: string,
  sqsh = "",
  opts: { readonly group?: string; readonly testOnly?: readonly string[] } = {},
): Promise<RemoteProbe> {
  const out = await tunnel.exec(`${PROBE}`.replace(/^\n/, "") + "\n", undefined, [
    rjd,
    sqsh,
    opts.group ?? "",
    ...(opts.testOnly ?? []),
  ]);
  if (out.code !== 0) {
    throw new RuntimeFailure(
      `cannot inspect remote_job_dir on ${tunnelLabel(tunnel.spec)}: ${
        out.stderr.trim() || `exit ${out.code}`
      }`,
    );
  }
  const facts = new Map<string, PathFacts | undefined>();
  const reals = new Map<string, string>();
  let uid = NaN, home = "", remoteJobDir = "", sbatch = "", sqshExists = false;
  let group: RemoteProbe["group"];
  let testCode: number | undefined;
  const testLines: string[] = [];
  const recent: string[] = [];
  const gathered = new Set<string>();
  for (const line of dec.decode(out.stdout).split("\n")) {
    const f = line.split("\t");
    if (f[0] === "U") uid = Number(f[1]);
    else if (f[0] === "H") home = f[1] ?? "";
    else if (f[0] === "D") remoteJobDir = f[1] ?? "";
    else if (f[0] === "B") sbatch = f[1] ?? "";
    else if (f[0] === "Q") sqshExists = f[1] === "1";
    else if (f[0] === "G") {
      group = { gid: /^\d+$/.test(f[1] ?? "") ? Number(f[1]) : null, member: f[2] === "1" };
    } else if (f[0] === "T") testCode = Number(f[1]);
    else if (f[0] === "O") testLines.push(f.slice(1).join("\t"));
    else if (f[0] === "L" && /^[A-Za-z0-9_.-]+$/.test(f[1] ?? "")) recent.push(f[1]);
    else if (f[0] === "S") {
      const [u, hex] = (f[2] ?? "").split(" ");
      const mode = parseInt(hex, 16);
      facts.set(f[1], { uid: Number(u), mode, isSymlink: (mode & 0o170000) === 0o120000 });
    } else if (f[0] === "R") reals.set(f[1], f[2]);
  }
  if (!Number.isInteger(uid) || !remoteJobDir.startsWith("/")) {
    throw new RuntimeFailure(
      `unexpected answer from ${tunnelLabel(tunnel.spec)} while checking remote_job_dir`,
      { hint: "remote_job_dir must be an absolute path (or start with ~/) on the cluster" },
    );
  }
  const prefixesOf = (p: string) => {
    const out = ["/"];
    let cur = "";
    for (const part of p.split("/").filter((x) => x)) out.push(cur += "/" + part);
    return out;
  };
  const targets = ["jobs", "git-cache", secretsDirName(uid)].map((s) => path.join(remoteJobDir, s));
  for (const t of targets) {
    for (const p of prefixesOf(t)) gathered.add(p);
    // Below its deepest existing component e (real path r) nothing of t exists: r + the rest.
    for (const [e, r] of reals) {
      if (e === "/" || t === e || t.startsWith(e + "/")) {
        for (const p of prefixesOf(path.join(r, path.relative(e, t)))) gathered.add(p);
      }
    }
  }
  const inspector: PathInspector = {
    lstat(p) {
      if (!gathered.has(p)) throw new Error(`remote path check: ${p} was not inspected`);
      return facts.get(p);
    },
    realPath(p) {
      if (!gathered.has(p)) throw new Error(`remote path check: ${p} was not inspected`);
      return facts.has(p) ? reals.get(p) ?? p : undefined;
    },
  };
  const recentJobDirs = recent.map((n) => path.join(remoteJobDir, "jobs", n));
  const preflight = testCode === undefined
    ? undefined
    : { code: testCode, stdout: testLines.join("\n"), stderr: "" };
  return {
    uid,
    home,
    remoteJobDir,
    sbatch,
    sqshExists,
    recentJobDirs,
    inspector,
    group,
    preflight,
  };
}

/** Refuse (exit 2) a `remote_job_dir` on the cluster that other users there could swap. */
export function checkRemoteJobDirOverSsh(probe: RemoteProbe, label: string): void {
  for (const sub of ["jobs", "git-cache", secretsDirName(probe.uid)]) {
    const p = untrustedPathComponent(
      path.join(probe.remoteJobDir, sub),
      probe.uid,
      probe.inspector,
    );
    if (p) {
      throw new UsageError(
        `remote_job_dir ${label}:${probe.remoteJobDir} is not safe: ${p.dir}: ${p.reason}`,
        {
          hint:
            `another user on the cluster could replace your job dir there and run code as you. ${p.fix} (on the cluster), and point remote_job_dir there`,
        },
      );
    }
  }
}

/**
 * Refuse (exit 2) a `job_dir_group` the cluster does not know or the cluster account is not in
 * (chgrp would fail after the copy); `probe` asked about it.
 */
export function checkRemoteGroup(group: string, probe: RemoteProbe, label: string): void {
  if (probe.group?.gid === null || probe.group === undefined) {
    throw new UsageError(`job_dir_group: no group '${group}' on ${label}`, {
      hint:
        "`id -Gn` on the cluster lists your groups there; remove job_dir_group to keep job dirs private (0700)",
    });
  }
  if (!probe.group.member && probe.uid !== 0) {
    throw new UsageError(
      `job_dir_group: your account on ${label} is not in group '${group}' (gid ${probe.group.gid})`,
      { hint: "`id -Gn` on the cluster lists your groups there; use one of them" },
    );
  }
}

/** Input of `planTunnelJob`: what `planSlurmJob` has, plus the tunnel. */
export interface TunnelPlanInput {
  readonly args: RecipeArgs;
  readonly spec: TunnelSpec;
  /** The `buildSlurmJob` spec without image and mounts. */
  readonly base: Omit<SlurmJobSpec, "image" | "mounts">;
  readonly image: string | null;
  readonly gitMounts: readonly AutoMount[];
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Plan a Slurm job for a cluster behind an ssh tunnel. A dry run does not connect (`~` in
 * remote_job_dir is shown with this machine's home and the secrets dir with this uid; both are
 * the cluster's at submit time). Otherwise one ssh call checks the cluster side first; the
 * image must already be a `.sqsh` on the cluster, or is squashed there with enroot
 * (`squash = "enroot"`) — never uploaded from here.
 */
export async function planTunnelJob(
  input: TunnelPlanInput,
): Promise<{ job: SlurmJob; script: string; notes: string[] }> {
  const { args, spec, base, image } = input;
  const label = tunnelLabel(spec);
  const profile = base.profile;
  const rjd = typeof profile.remote_job_dir === "string" ? profile.remote_job_dir : "";
  // Check the profile keys (remote_job_dir required, resources, …) before connecting.
  const bare = buildSlurmJob({ ...base, image: null });
  const isSqsh = image !== null && isSqshPath(image);
  const notes = [`tunnel: ssh ${label}`];
  if (args.dryRun) {
    if (rjd === "~" || rjd.startsWith("~/")) {
      notes.push(
        `remote_job_dir ${rjd}: paths below show this machine's home and uid; on ${label} they are yours there (a dry run does not connect)`,
      );
    }
    let sqsh: string | null = image;
    if (image !== null && !isSqsh) {
      sqsh = path.join(rjd, sqshName(image));
      notes.push(`container: ${image} → ${sqsh} (must exist on the cluster, or squash = "enroot")`);
    }
    const mounts = await syncGitMounts(input.gitMounts, rjd, {
      dryRun: true,
      note: (l) => notes.push(`${l} on ${label}`),
    });
    const job = buildSlurmJob({ ...base, env: clusterEnv(base.env, rjd), image: sqsh, mounts });
    return { job, script: await renderSbatch(job), notes };
  }

  const tunnel = await SshTunnel.open(spec);
  const wantSqsh = image !== null && !isSqsh ? path.join(rjd, sqshName(image)) : "";
  // One round trip: the cluster side of remote_job_dir, job_dir_group and Slurm's preflight (as on
  // a login node, Slurm is asked whether it would take the job before anything costly).
  const probe = await probeRemote(tunnel, rjd, wantSqsh, {
    group: bare.jobDirGroup ?? undefined,
    testOnly: preflightArgs(bare.directives),
  });
  checkRemoteJobDirOverSsh(probe, label);
  if (bare.jobDirGroup !== null) checkRemoteGroup(bare.jobDirGroup, probe, label);
  if (probe.sbatch === "" || !probe.preflight) {
    throw new RuntimeFailure(`sbatch not found on ${label}`, {
      hint:
        "the cluster's non-interactive shell has no Slurm on PATH: check `ssh HOST command -v sbatch`, add Slurm's bin directory to PATH in the cluster's ~/.bashrc, or set the profile's pre_command (e.g. `module load slurm`)",
    });
  }
  const remoteProfile = { ...profile, remote_job_dir: probe.remoteJobDir };
  const pre = readPreflight(probe.preflight);
  if (!pre.ok) {
    throw new UsageError(`Slurm on ${label} would refuse this job: ${pre.message}`, {
      hint: `fix partition, account, qos, time or resources in profile '${args.profile}'; ` +
        `\`nemotron doctor ${args.profile ?? "PROFILE"}\` checks the profile`,
    });
  }
  let sqsh: string | null = image;
  if (image !== null && !isSqsh) {
    sqsh = await ensureClusterSqsh(tunnel, {
      image,
      remoteJobDir: probe.remoteJobDir,
      profile: remoteProfile,
      force: args.forceSquash,
      exists: probe.sqshExists, // the probe expanded `~` there as in remote_job_dir
    });
  }
  const spec2: SlurmJobSpec = {
    ...base,
    env: clusterEnv(base.env, probe.remoteJobDir),
    profile: remoteProfile,
    image: sqsh,
    uid: probe.uid,
  };
  const draft = buildSlurmJob(spec2);
  // ${auto_mount:git+…}: cloned or updated by git on the cluster, into <remote_job_dir>/git-cache.
  const gitMounts = await syncGitMountsRemote(
    input.gitMounts,
    probe.remoteJobDir,
    (script, scriptArgs) => tunnel.exec(script, undefined, scriptArgs),
    label,
  );
  const registry = spec2.env?.NEMOTRON_ARTIFACTS_ROOT;
  // pyxis refuses a mount whose source does not exist: create the registry there first.
  if (sqsh && registry) await tunnel.exec(`mkdir -p -- ${shellQuote(registry)}`);
  const job = buildSlurmJob({
    ...spec2,
    jobKey: draft.key,
    mounts: [...gitMounts, ...(sqsh && registry ? [`${registry}:${registry}`] : [])],
  });
  const script = await renderSbatch(job);
  registerTunnelJob(job, {
    tunnel,
    stageDir: path.join(tunnelDir(), "stage", job.key),
    linkDest: probe.recentJobDirs,
  });
  for (const w of job.warnings) console.error(`warning: ${w}`);
  return { job, script, notes };
}

/**
 * The job's environment on the cluster: the artifact registry it writes to must be there — the
 * default one (this machine's `$NEMOTRON_HOME/artifacts`) becomes `<remote_job_dir>/artifacts`; a
 * configured root (env.toml `[artifacts] root`, `NEMOTRON_ARTIFACTS_ROOT`) is taken as a cluster
 * path. `NEMO_RUN_DIR` is remote_job_dir as the cluster sees it, `HF_HOME` `<remote_job_dir>/hf`.
 */
function clusterEnv(
  env: Readonly<Record<string, string>> | undefined,
  remoteJobDir: string,
): Record<string, string> {
  const out = { ...(env ?? {}) };
  if (out.NEMOTRON_ARTIFACTS_ROOT === path.join(nemotronHome(), "artifacts")) {
    out.NEMOTRON_ARTIFACTS_ROOT = path.join(remoteJobDir, "artifacts");
  }
  // This machine's $HF_HOME means nothing there (profile env_vars still win over these).
  if ("NEMO_RUN_DIR" in out) out.NEMO_RUN_DIR = remoteJobDir;
  if ("HF_HOME" in out) out.HF_HOME = path.join(remoteJobDir, "hf");
  return out;
}

/** Stands for the Slurm job id in the staged job.json until sbatch has given one. */
const ID_PLACEHOLDER = "@@NEMOTRON_SLURM_JOB_ID@@";

/**
 * The cluster side of a copied job dir, before sbatch: with `job_dir_group`, the job dir is given
 * to the group (0750, as on a login node); then the secrets file is written from stdin (see
 * `secretsText`). The secret values never appear in an argv or on this machine's disk. The secrets
 * dir must be a real directory of the remote user's (0700); the file is created with noclobber
 * and umask 077. Exit 96: chgrp failed; 97/98: the secrets file could not be written.
 */
function clusterSideLines(job: SlurmJob): string {
  const lines: string[] = [];
  if (job.jobDirGroup !== null) {
    const jd = shellQuote(job.jobDir);
    lines.push(
      `chgrp -R -- ${shellQuote(job.jobDirGroup)} ${jd} && chmod -R g+rX,o-rwx -- ${jd} && ` +
        `chmod g+rx -- ${shellQuote(path.dirname(job.jobDir))} || exit 96`,
    );
  }
  const file = job.secretsFile;
  if (file !== null) {
    lines.push(
      `d=${shellQuote(path.dirname(file))}; f=${shellQuote(file)}`,
      `umask 077`,
      `mkdir -- "$d" 2>/dev/null || true`,
      `if [ -L "$d" ] || [ ! -d "$d" ] || [ "$(stat -c %u -- "$d")" != "$(id -u)" ]; then echo "nemotron: $d is not your private secrets directory" >&2; exit 97; fi`,
      `chmod 700 -- "$d"`,
      `set -C; cat > "$f" || exit 98; set +C`,
    );
  }
  return lines.length ? lines.join("\n") : ":";
}

/** The secrets file's text (sent on stdin), or undefined when the job has none. */
function secretsText(job: SlurmJob): Uint8Array | undefined {
  if (job.secretsFile === null) return undefined;
  const values = secretValues(job);
  return enc.encode(
    Object.keys(values).sort().map((k) => `export ${k}=${shellQuote(values[k])}\n`).join(""),
  );
}

/** Undo a half-done copy on the cluster: the job dir and the secrets file (if it was written). */
function removeRemoteLines(job: SlurmJob): string {
  const secrets = job.secretsFile === null ? "" : `; rm -f -- ${shellQuote(job.secretsFile)}`;
  return `rm -rf -- ${shellQuote(job.jobDir)}${secrets}`;
}

/** A failed `clusterSideLines` as the error a person reads. */
function clusterSideFailure(
  out: { readonly code: number; readonly stderr: string },
  job: SlurmJob,
  label: string,
): RuntimeFailure | undefined {
  if (out.code === 96) {
    return new RuntimeFailure(
      `cannot give the job dir to group '${job.jobDirGroup}' on ${label}: ${out.stderr.trim()}`,
      { hint: "check job_dir_group (`id -Gn` on the cluster lists your groups there)" },
    );
  }
  if (out.code === 97 || out.code === 98) {
    return new RuntimeFailure(`cannot write the secrets file on ${label}: ${out.stderr.trim()}`, {
      hint: "check free space and permissions of remote_job_dir on the cluster",
    });
  }
  return undefined;
}

/**
 * One remote script: the cluster side (`clusterSideLines`), sbatch, and on success the job id
 * into job.json (copied with a placeholder); the secrets file is removed again if sbatch fails.
 */
function secretsThenSbatch(
  job: SlurmJob,
  tunnel: SshTunnel,
): import("./slurm_state.ts").CommandRunner {
  return async (cmd, args) => {
    const file = job.secretsFile;
    const m = shellQuote(job.manifestPath);
    const script = [
      clusterSideLines(job),
      `out=$(${shellJoin([cmd, ...args])}); rc=$?`,
      `printf '%s\\n' "$out"`,
      `if [ "$rc" -eq 0 ]; then`,
      `  id=$(printf '%s\\n' "$out" | tail -n 1 | cut -d ';' -f 1)`,
      `  case $id in *[!0-9]*|'') ;; *) sed "s/${ID_PLACEHOLDER}/$id/" ${m} > ${m}.tmp && mv -f -- ${m}.tmp ${m};; esac`,
      file === null ? "" : `else rm -f -- "$f"`,
      `fi`,
      `exit "$rc"`,
    ].join("\n");
    const out = await tunnel.exec(script, secretsText(job));
    const failure = clusterSideFailure(out, job, tunnelLabel(tunnel.spec));
    if (failure) throw failure;
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: out.stderr };
  };
}

/**
 * Submit a staged tunnel job: copy the staging dir to the cluster, write the secrets file there,
 * `sbatch --parsable`, update job.json there, and record the job with the tunnel as its cluster.
 * A failure at any step leaves no store row and no Slurm job; the partial job dir on the cluster
 * is removed when the cluster is still reachable.
 */
export async function submitTunnelJob(
  job: SlurmJob,
  opts: SubmitJobOptions = {},
): Promise<SubmittedJob & { readonly cluster: string }> {
  const t = tunnelJobOf(job);
  if (!t) throw new Error("submitTunnelJob: not a tunnel job");
  const { tunnel, stageDir } = t;
  const dependency = opts.after && opts.after.length ? `afterok:${opts.after.join(":")}` : null;
  const removeRemote = async () => {
    try {
      await tunnel.exec(removeRemoteLines(job));
    } catch { /* unreachable: say so below */ }
  };
  // 1. job.json as it will be once submitted (sbatch's job id is filled in on the cluster), then
  //    the copy; earlier job dirs of this remote_job_dir lend their unchanged files.
  const now = new Date().toISOString();
  const manifestFile = path.join(stageDir, "job.json");
  const staged: JobManifest = JSON.parse(Deno.readTextFileSync(manifestFile));
  writeFileAtomic(
    manifestFile,
    JSON.stringify(
      {
        ...staged,
        slurm_job_id: ID_PLACEHOLDER,
        submitted_at: now,
        dependency,
        state: "SUBMITTED",
      },
      null,
      2,
    ) + "\n",
  );
  const failed = async (err: unknown) => {
    await removeRemote();
    writeFileAtomic(
      manifestFile,
      JSON.stringify(
        {
          ...staged,
          dependency,
          state: "SUBMIT_FAILED",
          submit_error: err instanceof Error ? err.message : String(err),
        },
        null,
        2,
      ) + "\n",
    );
    return withNote(err, `nothing was submitted; the staged job dir is kept in ${stageDir}`);
  };
  try {
    await tunnel.upload(stageDir, job.jobDir, {
      linkDest: t.linkDest,
      exclude: ["/code.tar.gz"],
      mkdirParent: path.dirname(job.jobDir),
    });
  } catch (err) {
    throw await failed(err);
  }
  // 2. Secrets from stdin + sbatch + the id into job.json, in one remote script (retried like a
  //    local sbatch while slurmctld is unreachable).
  let id: string;
  try {
    id = await submitSbatch(job.scriptPath, {
      ...opts,
      dependency: dependency ?? undefined,
      run: secretsThenSbatch(job, tunnel),
    });
  } catch (err) {
    throw await failed(err);
  }
  // 4. The store row; the staging dir is no longer needed.
  const cluster = tunnelClusterKey(tunnel.spec);
  const store = opts.store ?? await JobStore.open();
  try {
    store.insert(newJobRecord(job, id, cluster, dependency, now));
  } finally {
    if (!opts.store) store.close();
  }
  try {
    Deno.removeSync(stageDir, { recursive: true });
  } catch { /* best effort */ }
  return {
    slurm_job_id: id,
    name: job.name,
    key: job.key,
    job_dir: job.jobDir,
    script: job.scriptPath,
    cluster,
  };
}

/**
 * `--stage` through a tunnel: the job dir is copied to the cluster complete (job.json says
 * STAGED; job_dir_group and the secrets file applied as for a submit), and nothing is submitted.
 * A failure removes the partial job dir there and keeps the local staging dir.
 */
export async function stageTunnelJob(job: SlurmJob): Promise<void> {
  const t = tunnelJobOf(job);
  if (!t) throw new Error("stageTunnelJob: not a tunnel job");
  const { tunnel, stageDir } = t;
  const label = tunnelLabel(tunnel.spec);
  const manifestFile = path.join(stageDir, "job.json");
  const staged: JobManifest = JSON.parse(Deno.readTextFileSync(manifestFile));
  writeFileAtomic(manifestFile, JSON.stringify({ ...staged, state: "STAGED" }, null, 2) + "\n");
  try {
    await tunnel.upload(stageDir, job.jobDir, {
      linkDest: t.linkDest,
      exclude: ["/code.tar.gz"],
      mkdirParent: path.dirname(job.jobDir),
    });
    const out = await tunnel.exec(clusterSideLines(job), secretsText(job));
    const failure = clusterSideFailure(out, job, label) ??
      (out.code === 0 ? undefined : new RuntimeFailure(
        `staging on ${label} failed: ${out.stderr.trim() || `exit ${out.code}`}`,
      ));
    if (failure) throw failure;
  } catch (err) {
    try {
      await tunnel.exec(removeRemoteLines(job));
    } catch { /* unreachable: the note says what is kept */ }
    throw withNote(err, `nothing was staged there; the local staging dir is kept in ${stageDir}`);
  }
  try {
    Deno.removeSync(stageDir, { recursive: true });
  } catch { /* best effort */ }
}

function withNote(err: unknown, note: string): unknown {
  if (err instanceof RuntimeFailure || err instanceof UsageError) {
    const Ctor = err instanceof UsageError ? UsageError : RuntimeFailure;
    return new Ctor(err.message, { hint: [err.hint, note].filter(Boolean).join("; ") });
  }
  return err;
}
