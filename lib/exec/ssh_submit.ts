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
import { clusterFileExists, clusterSqshPath, ensureClusterSqsh } from "./ssh_squash.ts";
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
import { preflightSbatch } from "./slurm_preflight.ts";
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
}

/**
 * The probe script: prints `U uid`, `H home`, `D remote_job_dir`, `B sbatch`, `Q 0|1` (the .sqsh
 * exists), then `S path uid hexmode` for every existing component of each target and its real path
 * (`R path realpath`). Arguments: remote_job_dir as written, the .sqsh to test (or "").
 */
const PROBE = String.raw`
rjd=$1; sqsh=$2
case $rjd in "~") rjd=$HOME;; "~/"*) rjd=$HOME/@{rjd#??};; esac
uid=$(id -u) || exit 90
printf 'U	%s
H	%s
D	%s
B	%s
' "$uid" "$HOME" "$rjd" "$(command -v sbatch 2>/dev/null)"
if [ -n "$sqsh" ] && [ -f "$sqsh" ]; then printf 'Q	1
'; else printf 'Q	0
'; fi
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

/** Ask the cluster about `remote_job_dir` (as written in the profile) in one ssh call. */
export async function probeRemote(
  tunnel: Pick<SshTunnel, "exec" | "spec">,
  rjd: string,
  sqsh = "",
): Promise<RemoteProbe> {
  const out = await tunnel.exec(`${PROBE}`.replace(/^\n/, "") + "\n", undefined, [rjd, sqsh]);
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
  const recent: string[] = [];
  const gathered = new Set<string>();
  for (const line of dec.decode(out.stdout).split("\n")) {
    const f = line.split("\t");
    if (f[0] === "U") uid = Number(f[1]);
    else if (f[0] === "H") home = f[1] ?? "";
    else if (f[0] === "D") remoteJobDir = f[1] ?? "";
    else if (f[0] === "B") sbatch = f[1] ?? "";
    else if (f[0] === "Q") sqshExists = f[1] === "1";
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
  return { uid, home, remoteJobDir, sbatch, sqshExists, recentJobDirs, inspector };
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
  if (input.gitMounts.length) {
    throw new UsageError(
      `\${auto_mount:git+…} is not supported with tunnel = "ssh" yet (profile '${args.profile}')`,
      { hint: "clone the repository on the cluster yourself and use a plain mount of that path" },
    );
  }
  if (args.stage) {
    throw new UsageError(
      `--stage is not supported with tunnel = "ssh" yet (profile '${args.profile}')`,
      {
        hint: "run nemotron with --stage on the cluster's login node",
      },
    );
  }
  if (profile.job_dir_group !== undefined && profile.job_dir_group !== null) {
    throw new UsageError(
      `job_dir_group is not supported with tunnel = "ssh" yet (profile '${args.profile}')`,
      { hint: "remove job_dir_group; job dirs on the cluster are private (0700)" },
    );
  }
  const rjd = typeof profile.remote_job_dir === "string" ? profile.remote_job_dir : "";
  // Check the profile keys (remote_job_dir required, resources, …) before connecting.
  buildSlurmJob({ ...base, image: null });
  const isSqsh = image !== null && image.endsWith(".sqsh") && !image.includes("://");
  const notes = [`tunnel: ssh ${label}`];
  if (args.dryRun) {
    let sqsh: string | null = image;
    if (image !== null && !isSqsh) {
      sqsh = path.join(rjd, sqshName(image));
      notes.push(`container: ${image} → ${sqsh} (must exist on the cluster, or squash = "enroot")`);
    }
    const job = buildSlurmJob({ ...base, env: clusterEnv(base.env, rjd), image: sqsh });
    return { job, script: await renderSbatch(job), notes };
  }

  const tunnel = await SshTunnel.open(spec);
  const wantSqsh = image !== null && !isSqsh ? path.join(rjd, sqshName(image)) : "";
  const probe = await probeRemote(tunnel, rjd, wantSqsh);
  checkRemoteJobDirOverSsh(probe, label);
  if (probe.sbatch === "") {
    throw new RuntimeFailure(`sbatch not found on ${label}`, {
      hint:
        "the cluster's non-interactive shell has no Slurm on PATH: check `ssh HOST command -v sbatch`, or add Slurm's bin directory to PATH in the cluster's ~/.bashrc",
    });
  }
  const remoteProfile = { ...profile, remote_job_dir: probe.remoteJobDir };
  // As on a login node: ask Slurm (there) whether it would take the job before anything costly.
  const pre = await preflightSbatch(
    buildSlurmJob({ ...base, profile: remoteProfile, image: null, uid: probe.uid }).directives,
    tunnel.runner,
  );
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
      // The probe tested the path as written: with `~` in remote_job_dir, test the expanded one.
      exists: rjd === probe.remoteJobDir
        ? probe.sqshExists
        : () => clusterFileExists(tunnel, clusterSqshPath(image, probe.remoteJobDir)),
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
  const registry = spec2.env?.NEMOTRON_ARTIFACTS_ROOT;
  // pyxis refuses a mount whose source does not exist: create the registry there first.
  if (sqsh && registry) await tunnel.exec(`mkdir -p -- ${shellQuote(registry)}`);
  const job = buildSlurmJob({
    ...spec2,
    jobKey: draft.key,
    mounts: sqsh && registry ? [`${registry}:${registry}`] : [],
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
 * One remote script: write the secrets file from stdin, run sbatch, and on success put the job id
 * into job.json (copied with a placeholder). The secret values never appear in an argv or on this
 * machine's disk. The secrets dir must be a real directory of the remote user's (0700); the file
 * is created with noclobber and umask 077, and removed again if sbatch fails.
 */
function secretsThenSbatch(
  job: SlurmJob,
  tunnel: SshTunnel,
): import("./slurm_state.ts").CommandRunner {
  return async (cmd, args) => {
    const file = job.secretsFile;
    const values = secretValues(job);
    const text = Object.keys(values).sort()
      .map((k) => `export ${k}=${shellQuote(values[k])}\n`).join("");
    const write = file === null ? ":" : [
      `d=${shellQuote(path.dirname(file))}; f=${shellQuote(file)}`,
      `umask 077`,
      `mkdir -- "$d" 2>/dev/null || true`,
      `if [ -L "$d" ] || [ ! -d "$d" ] || [ "$(stat -c %u -- "$d")" != "$(id -u)" ]; then echo "nemotron: $d is not your private secrets directory" >&2; exit 97; fi`,
      `chmod 700 -- "$d"`,
      `set -C; cat > "$f" || exit 98; set +C`,
    ].join("\n");
    const m = shellQuote(job.manifestPath);
    const script = [
      write,
      `out=$(${shellJoin([cmd, ...args])}); rc=$?`,
      `printf '%s\\n' "$out"`,
      `if [ "$rc" -eq 0 ]; then`,
      `  id=$(printf '%s\\n' "$out" | tail -n 1 | cut -d ';' -f 1)`,
      `  case $id in *[!0-9]*|'') ;; *) sed "s/${ID_PLACEHOLDER}/$id/" ${m} > ${m}.tmp && mv -f -- ${m}.tmp ${m};; esac`,
      file === null ? "" : `else rm -f -- "$f"`,
      `fi`,
      `exit "$rc"`,
    ].join("\n");
    const out = await tunnel.exec(script, file === null ? undefined : enc.encode(text));
    if (out.code === 97 || out.code === 98) {
      throw new RuntimeFailure(
        `cannot write the secrets file on ${tunnelLabel(tunnel.spec)}: ${out.stderr.trim()}`,
        { hint: "check free space and permissions of remote_job_dir on the cluster" },
      );
    }
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
      await tunnel.exec(`rm -rf -- ${shellQuote(job.jobDir)}`);
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

function withNote(err: unknown, note: string): unknown {
  if (err instanceof RuntimeFailure || err instanceof UsageError) {
    const Ctor = err instanceof UsageError ? UsageError : RuntimeFailure;
    return new Ctor(err.message, { hint: [err.hint, note].filter(Boolean).join("; ") });
  }
  return err;
}
