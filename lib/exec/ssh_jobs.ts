/**
 * Jobs on a cluster behind an ssh tunnel (job store `cluster` = `ssh://…`, see lib/exec/ssh.ts):
 * refreshing their states (one `squeue` per refresh per cluster, through the tunnel), following
 * and printing their logs incrementally (a remote `tail -c +OFFSET`, never the whole file again),
 * cancelling them, removing their secrets files on the cluster once they ended, listing their
 * Ray files (`jobs logs --role`, the `ray:` line of `jobs status`), and the `doctor PROFILE`
 * checks of a tunnel profile. The login-node code paths hand over to these
 * functions when a record's cluster is a tunnel (small hooks in tracking.ts, follow.ts,
 * commands/jobs.ts and commands/doctor.ts).
 */
import * as path from "../path.ts";
import { RuntimeFailure, UsageError } from "../errors.ts";
import type { JobRecord, JobStore } from "../jobs/store.ts";
import { type AttemptRecord, type JobManifest, parseAttempts } from "./job_dir.ts";
import {
  askDetachOrCancel,
  exitCodeOf,
  type FollowOptions,
  type FollowResult,
  type FollowTarget,
  liveWriter,
  pendingStatusLine,
} from "./follow.ts";
import type { RayFiles } from "./ray.ts";
import { cancelSlurmJobs, jobState, type SlurmJobStatus } from "./slurm_state.ts";
import type { RefreshOptions } from "./tracking.ts";
import {
  isTunnelCluster,
  parseTunnelClusterKey,
  SshTunnel,
  tunnelLabel,
  tunnelSpecOf,
} from "./ssh.ts";

const dec = new TextDecoder();

/** Clusters this command could not connect to, with why: not tried again (each try may wait). */
const unreachable = new Map<string, unknown>();

/**
 * The tunnel of a job store cluster value. A cluster that could not be reached is not tried
 * again within the same command (`jobs status` would otherwise wait for the connect timeout once
 * for the refresh and once more for the Ray files): the same error comes back at once.
 */
export async function tunnelFor(cluster: string): Promise<SshTunnel> {
  if (unreachable.has(cluster)) throw unreachable.get(cluster);
  try {
    return await SshTunnel.open(parseTunnelClusterKey(cluster));
  } catch (err) {
    unreachable.set(cluster, err);
    throw err;
  }
}

/**
 * `refreshJobs` for records some of which are on tunnel clusters: login-node records go to
 * `refreshLocal` as before; each tunnel cluster gets one refresh through its tunnel. A cluster
 * that cannot be reached keeps its rows as last known, with a warning.
 */
export async function refreshTunnelJobs(
  store: JobStore,
  records: readonly JobRecord[],
  opts: RefreshOptions,
  refreshLocal: (s: JobStore, r: readonly JobRecord[], o: RefreshOptions) => Promise<JobRecord[]>,
): Promise<JobRecord[]> {
  const byKey = new Map<string, JobRecord>();
  const local = records.filter((r) => !isTunnelCluster(r.cluster));
  if (local.length) { for (const r of await refreshLocal(store, local, opts)) byKey.set(r.key, r); }
  const groups = new Map<string, JobRecord[]>();
  for (const r of records) {
    if (!isTunnelCluster(r.cluster)) continue;
    groups.set(r.cluster, [...(groups.get(r.cluster) ?? []), r]);
  }
  for (const [cluster, recs] of groups) {
    if (recs.every((r) => r.terminal)) continue;
    let tunnel: SshTunnel;
    try {
      tunnel = await tunnelFor(cluster);
    } catch (err) {
      console.error(
        `warning: ${
          err instanceof Error ? err.message : String(err)
        }; showing the last known states`,
      );
      continue;
    }
    const files = await remoteJobFiles(tunnel, recs.filter((r) => !r.terminal));
    const fresh = await refreshLocal(store, recs, {
      ...opts,
      run: tunnel.runner,
      cluster,
      jobFiles: (r) => files.get(r.key) ?? { attempts: [], manifest: undefined },
    });
    const ended = fresh.filter((r) => r.terminal && !recs.find((o) => o.key === r.key)?.terminal);
    await finishRemoteJobs(tunnel, ended);
    for (const r of fresh) byKey.set(r.key, r);
  }
  return records.map((r) => byKey.get(r.key) ?? r);
}

/**
 * attempts.tsv and job.json of each job dir on the cluster, in one ssh call (what a refresh needs
 * when slurmctld has forgotten a job and there is no accounting).
 */
export async function remoteJobFiles(
  tunnel: Pick<SshTunnel, "exec">,
  recs: readonly JobRecord[],
): Promise<Map<string, { attempts: AttemptRecord[]; manifest: JobManifest | undefined }>> {
  const out = new Map<string, { attempts: AttemptRecord[]; manifest: JobManifest | undefined }>();
  if (recs.length === 0) return out;
  const r = await tunnel.exec(
    `for d in "$@"; do printf '\\036%s\\n' "$d"; cat "$d/job.json" 2>/dev/null; printf '\\035'; cat "$d/attempts.tsv" 2>/dev/null; done; exit 0`,
    undefined,
    recs.map((x) => x.job_dir),
  );
  for (const chunk of dec.decode(r.stdout).split("\x1e").slice(1)) {
    const nl = chunk.indexOf("\n");
    const dir = chunk.slice(0, nl);
    const [json, tsv = ""] = chunk.slice(nl + 1).split("\x1d");
    const rec = recs.find((x) => x.job_dir === dir);
    if (!rec) continue;
    let manifest: JobManifest | undefined;
    try {
      manifest = json.trim() ? JSON.parse(json) as JobManifest : undefined;
    } catch { /* not readable: as if missing */ }
    out.set(rec.key, { attempts: parseAttempts(tsv), manifest });
  }
  return out;
}

/**
 * What the login node does when it sees a job end, on the cluster: the secrets file goes and
 * job.json gets the final state and exit code (top-level `"state"`/`"exit_code"` lines of the
 * pretty-printed manifest, only in a regular job.json of the remote account's).
 */
export async function finishRemoteJobs(
  tunnel: Pick<SshTunnel, "exec">,
  recs: readonly JobRecord[],
): Promise<void> {
  await removeRemoteSecrets(tunnel, recs);
  const args: string[] = [];
  for (const r of recs) {
    if (!/^[A-Z_]+$/.test(r.state)) continue;
    const exit = r.exit_code === null ? "null" : String(Math.trunc(r.exit_code));
    args.push(path.join(r.job_dir, "job.json"), r.state, exit);
  }
  if (args.length === 0) return;
  await tunnel.exec(
    [
      `me=$(id -u)`,
      `while [ $# -ge 3 ]; do`,
      `  m=$1; st=$2; ec=$3; shift 3`,
      `  [ -f "$m" ] && [ ! -L "$m" ] && [ "$(stat -c %u -- "$m")" = "$me" ] || continue`,
      `  sed -e "s/^  \\"state\\": \\".*\\",$/  \\"state\\": \\"$st\\",/" ` +
      `-e "s/^  \\"exit_code\\": .*,$/  \\"exit_code\\": $ec,/" "$m" > "$m.tmp" && mv -f -- "$m.tmp" "$m"`,
      `done`,
      `exit 0`,
    ].join("\n"),
    undefined,
    args,
  ).catch(() => {/* best effort: the store has the state */});
}

/** Remove the secrets files of ended jobs on the cluster (only files at a job's own path). */
export async function removeRemoteSecrets(
  tunnel: Pick<SshTunnel, "exec">,
  recs: readonly JobRecord[],
): Promise<void> {
  const files = recs.map((r) => r.secrets_file)
    .filter((f, i): f is string => f !== null && isRemoteSecretsFilePath(f, recs[i].job_dir));
  if (files.length === 0) return;
  await tunnel.exec(
    `me=$(id -u); for f in "$@"; do [ -f "$f" ] && [ ! -L "$f" ] && [ "$(stat -c %u -- "$f")" = "$me" ] && rm -f -- "$f"; done; exit 0`,
    undefined,
    files,
  ).catch(() => {/* the job script removes it too */});
}

/**
 * Whether `file` is where nemotron put the secrets file of the job in `jobDir` on the cluster:
 * `<remote_job_dir>/.nemotron-secrets-<uid>/<32 hex>.env` with `jobDir` =
 * `<remote_job_dir>/jobs/<key>` (the uid is the cluster account's; the remote removal checks
 * that the file is a regular file owned by that account).
 */
export function isRemoteSecretsFilePath(file: string, jobDir: string): boolean {
  const dir = path.dirname(file);
  return /^[0-9a-f]{32}\.env$/.test(path.basename(file)) &&
    /^\.nemotron-secrets-\d+$/.test(path.basename(dir)) &&
    path.dirname(dir) === path.dirname(path.dirname(path.resolve(jobDir))) &&
    path.resolve(file) === file;
}

/** Cancel jobs, each through its own cluster's tunnel (login-node ones with the local scancel). */
export async function cancelTunnelJobs(recs: readonly JobRecord[]): Promise<void> {
  const groups = new Map<string, JobRecord[]>();
  for (const r of recs) groups.set(r.cluster, [...(groups.get(r.cluster) ?? []), r]);
  for (const [cluster, group] of groups) {
    if (!isTunnelCluster(cluster)) {
      await cancelSlurmJobs(group.map((r) => r.slurm_job_id));
      continue;
    }
    const tunnel = await tunnelFor(cluster);
    await cancelSlurmJobs(group.map((r) => r.slurm_job_id), tunnel.runner);
    await removeRemoteSecrets(tunnel, group);
  }
}

/**
 * Reads growing log files of one job dir on the cluster: each call is one ssh call that lists
 * the attempt logs and returns only the bytes of `file` past what was read before. The size is
 * the file's behind a symlink (`stat -L`): a Ray cluster job's task log links to the driver's log.
 */
export class RemoteLogReader {
  private offsets = new Map<string, number>();
  constructor(
    private readonly tunnel: Pick<SshTunnel, "exec" | "spec">,
    private readonly jobDir: string,
    private readonly attemptPrefix: string,
  ) {}

  /** New bytes of `logs/<file>`, and the attempt numbers that have a task log. */
  async read(file: string): Promise<{ bytes: Uint8Array; attempts: number[] }> {
    const off = this.offsets.get(file) ?? 0;
    const script = [
      `cd -- "$1/logs" 2>/dev/null || { printf 'Z\\t-1\\n'; exit 0; }`,
      `for f in "$2"*.out; do [ -e "$f" ] && printf 'A\\t%s\\n' "$f"; done`,
      `s=$(stat -L -c %s -- "$3" 2>/dev/null) || s=-1`,
      `printf 'Z\\t%s\\n' "$s"`,
      `if [ "$s" -gt "$4" ]; then tail -c +$(($4 + 1)) -- "$3" | head -c $((s - $4)); fi`,
    ].join("\n");
    const out = await this.tunnel.exec(script, undefined, [
      this.jobDir,
      this.attemptPrefix,
      file,
      String(off),
    ]);
    if (out.code !== 0) {
      throw new RuntimeFailure(
        `cannot read ${this.jobDir}/logs/${file} on ${
          tunnelLabel(this.tunnel.spec)
        }: ${out.stderr.trim()}`,
      );
    }
    const attempts: number[] = [];
    let pos = 0;
    let size = -1;
    const buf = out.stdout;
    while (pos < buf.length) {
      const nl = buf.indexOf(10, pos);
      if (nl < 0) break;
      const line = dec.decode(buf.subarray(pos, nl));
      pos = nl + 1;
      if (line.startsWith("A\t")) {
        const n = Number(line.slice(2 + this.attemptPrefix.length, -4));
        if (Number.isInteger(n) && n >= 0) attempts.push(n);
      } else if (line.startsWith("Z\t")) {
        size = Number(line.slice(2));
        break;
      }
    }
    let bytes = buf.subarray(pos);
    if (size >= 0 && size < off) { // truncated: start over next time
      this.offsets.set(file, 0);
      bytes = new Uint8Array(0);
    } else this.offsets.set(file, off + bytes.length);
    return { bytes, attempts: attempts.sort((a, b) => a - b) };
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/**
 * `followJob` for a job on a tunnel cluster: per poll one `squeue` and one log read through the
 * tunnel; the current attempt's log streams from where the last read stopped, a requeue switches
 * to the next attempt's log. Ctrl-C detaches (the job keeps running).
 */
export async function followTunnelJob(
  target: FollowTarget & { readonly cluster: string },
  opts: FollowOptions = {},
): Promise<FollowResult> {
  const write = opts.write ?? ((b: Uint8Array) => Deno.stdout.writeSync(b));
  const note = opts.note ?? ((l: string) => console.error(l));
  const pollMs = opts.pollMs ?? 1000;
  const tunnel = await tunnelFor(target.cluster);
  const run = tunnel.runner;
  const id = target.slurm_job_id;
  const prefix = `log-${target.slurm_name}_${id}_`;
  const reader = new RemoteLogReader(tunnel, target.job_dir, prefix);
  const interrupt = new AbortController();
  let sigint = false;
  const onSigint = () => {
    sigint = true;
    interrupt.abort();
  };
  if (opts.handleSigint ?? true) Deno.addSignalListener("SIGINT", onSigint);
  opts.signal?.addEventListener("abort", () => interrupt.abort(), { once: true });
  let attempt = opts.attempt ?? -1;
  let sawLog = false;
  let status: SlurmJobStatus | undefined;
  const live = opts.live ?? liveWriter(note);
  const now = opts.now ?? Date.now;
  const started = now();
  let pendingShown = false;
  const drain = async (n: number) => {
    const r = await reader.read(`${prefix}${n}.out`);
    if (r.bytes.length) {
      sawLog = true;
      write(r.bytes);
    }
    return r.attempts;
  };
  try {
    while (true) {
      status = (await jobState([id], { run })).get(id);
      // Waiting to start: one live status line, replaced by the log once the job runs.
      if (status && status.phase === "pending" && !status.terminal) {
        live(pendingStatusLine(id, status, now() - started));
        pendingShown = true;
      } else if (pendingShown) {
        live(null);
        pendingShown = false;
      }
      const onDisk = await drain(Math.max(attempt, 0));
      const current = Math.max(
        status && status.phase !== "pending" ? status.restarts : 0,
        onDisk.length ? onDisk[onDisk.length - 1] : 0,
      );
      if (attempt < 0) {
        attempt = opts.attempt ?? current;
        if (attempt !== 0) await drain(attempt);
      }
      while (attempt < current) {
        attempt++;
        note(`[nemotron] job ${id}: attempt ${attempt} (requeued)`);
        await drain(attempt);
      }
      if (!status || status.terminal) break;
      if (interrupt.signal.aborted) break;
      await sleep(pollMs, interrupt.signal);
      if (interrupt.signal.aborted) break;
    }
    if (pendingShown) live(null);
    if (interrupt.signal.aborted && !(status?.terminal)) {
      if (sigint && (opts.interactive ?? Deno.stdin.isTerminal())) {
        if (await askDetachOrCancel() === "cancel") {
          const rec = opts.store?.find(id).find((r) => r.cluster === target.cluster);
          await cancelSlurmJobs([id], run);
          if (rec) await removeRemoteSecrets(tunnel, [rec]);
          note(`[nemotron] cancelled job ${id}`);
          return { exitCode: 130, status, detached: false, cancelled: true };
        }
      }
      note(
        `[nemotron] detached; job ${id} keeps running. Follow again: nemotron jobs logs ${id} -f`,
      );
      return { exitCode: 0, status, detached: true, cancelled: false };
    }
    await drain(Math.max(attempt, 0));
    if (!sawLog) {
      const batch = await reader.read(`sbatch-${target.slurm_name}_${id}.out`);
      if (batch.bytes.length) {
        note(`[nemotron] job ${id} produced no task log; its batch log:`);
        write(batch.bytes);
      }
    }
    if (!status) {
      note(`[nemotron] job ${id} is no longer known to Slurm; see nemotron jobs status ${id}`);
    } else {
      note(
        `[nemotron] job ${id} ${status.state}` +
          (status.exitCode !== null ? ` (exit code ${status.exitCode})` : ""),
      );
    }
    if (opts.store) {
      const { refreshJobs } = await import("./tracking.ts");
      const recs = opts.store.find(id).filter((r) => r.cluster === target.cluster);
      if (recs.length) await refreshJobs(opts.store, recs);
    }
    return { exitCode: exitCodeOf(status), status, detached: false, cancelled: false };
  } finally {
    if (opts.handleSigint ?? true) Deno.removeSignalListener("SIGINT", onSigint);
  }
}

/** How much of the end of each log `remoteRayFiles` sends with `logs` (256 KiB). */
const LOG_TAIL_BYTES = 262144;

/**
 * The files of a job dir on the cluster that `jobs status` and `jobs logs --role` read, in one ssh
 * call: the entries of `ray/` and `logs/` and of their subdirectories, each attempt's
 * `ray/<tag>/events.tsv`, `attempts.tsv` and `job.json`, and with `logs` the last 256 KiB of each
 * `logs/*.out` (enough to find the failed node and show the end of the log). What `rayAttempts`,
 * `rayRoles` and `rayClusterSummary` (lib/exec/ray.ts) and `jobs status` read a job behind the
 * tunnel with; `read` of anything else is undefined.
 */
export async function remoteRayFiles(
  tunnel: Pick<SshTunnel, "exec" | "spec">,
  jobDir: string,
  opts: { readonly logs?: boolean } = {},
): Promise<RayFiles> {
  const r = await tunnel.exec(
    [
      `cd -- "$1" 2>/dev/null || exit 0`,
      `find ray logs -mindepth 1 -maxdepth 2 -print0 2>/dev/null`,
      `for f in ray/*/events.tsv attempts.tsv job.json; do [ -f "$f" ] && printf '\\036%s\\n' "$f" && cat -- "$f"; done`,
      // The end of each log (what `jobs status` scans for the failed node and shows the tail of).
      `[ "$2" = 1 ] && for f in logs/*.out; do [ -f "$f" ] && printf '\\036%s\\n' "$f" && tail -c ${LOG_TAIL_BYTES} -- "$f"; done`,
      `exit 0`,
    ].join("\n"),
    undefined,
    [jobDir, opts.logs ? "1" : "0"],
  );
  if (r.code !== 0) {
    throw new RuntimeFailure(
      `cannot list ${jobDir} on ${tunnelLabel(tunnel.spec)}: ${r.stderr.trim()}`,
    );
  }
  const [listing, ...texts] = dec.decode(r.stdout).split("\x1e");
  const byDir = new Map<string, string[]>();
  for (const p of listing.split("\0")) {
    if (p === "") continue;
    const dir = path.resolve(jobDir, path.dirname(p));
    byDir.set(dir, [...(byDir.get(dir) ?? []), path.basename(p)]);
  }
  const byFile = new Map<string, string>();
  for (const t of texts) {
    const nl = t.indexOf("\n");
    byFile.set(path.resolve(jobDir, t.slice(0, nl)), t.slice(nl + 1));
  }
  return {
    list: (dir) => byDir.get(path.resolve(dir)) ?? [],
    read: (file) => byFile.get(path.resolve(file)),
  };
}

/**
 * `jobs logs ID [--attempt N] [--sbatch] [-f]` for a job on a tunnel cluster; `file` (a path on
 * the cluster under the job dir's `logs/`, e.g. a Ray role's log) instead of the task log.
 */
export async function tunnelJobLogs(
  rec: JobRecord,
  opts: { follow?: boolean; attempt?: number; sbatch?: boolean; file?: string; store?: JobStore },
): Promise<void> {
  const out = (b: Uint8Array) => Deno.stdout.writeSync(b);
  if (opts.follow && !opts.sbatch && opts.file === undefined) {
    await followTunnelJob(rec, { attempt: opts.attempt, store: opts.store });
    return;
  }
  const tunnel = await tunnelFor(rec.cluster);
  const prefix = `log-${rec.slurm_name}_${rec.slurm_job_id}_`;
  const reader = new RemoteLogReader(tunnel, rec.job_dir, prefix);
  let file: string;
  if (opts.file !== undefined) file = path.relative(path.join(rec.job_dir, "logs"), opts.file);
  else if (opts.sbatch) file = `sbatch-${rec.slurm_name}_${rec.slurm_job_id}.out`;
  else {
    const { attempts } = await reader.read(`${prefix}0.out`);
    if (opts.attempt !== undefined && !attempts.includes(opts.attempt)) {
      throw new UsageError(`job ${rec.slurm_job_id} has no log for attempt ${opts.attempt}`, {
        hint: attempts.length
          ? `attempts with logs: ${attempts.join(", ")}`
          : `the job is ${rec.state}; no attempt has written a log yet`,
      });
    }
    if (opts.attempt === undefined && attempts.length === 0) {
      console.error(`[nemotron] job ${rec.slurm_job_id} is ${rec.state}; no task log yet`);
      return;
    }
    file = `${prefix}${opts.attempt ?? attempts[attempts.length - 1]}.out`;
  }
  const fresh = new RemoteLogReader(tunnel, rec.job_dir, prefix);
  out((await fresh.read(file)).bytes);
  if (!opts.follow) return;
  while (true) {
    const st = (await jobState([rec.slurm_job_id], { run: tunnel.runner })).get(rec.slurm_job_id);
    out((await fresh.read(file)).bytes);
    if (!st || st.terminal) break;
    await sleep(1000);
  }
  out((await fresh.read(file)).bytes);
}

/** One line of `nemotron doctor`. */
export interface TunnelCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly required: boolean;
}

/**
 * `doctor PROFILE` for a tunnel profile: connect (and how long the handshake took), the remote
 * `sbatch`/`squeue` versions, and whether `remote_job_dir` on the cluster is safe from other
 * users there and writable.
 */
export async function tunnelDoctorChecks(
  profile: Readonly<Record<string, unknown>>,
  name: string,
): Promise<TunnelCheck[]> {
  const checks: TunnelCheck[] = [];
  const spec = tunnelSpecOf(profile, { profileName: name })!;
  const label = tunnelLabel(spec);
  let tunnel: SshTunnel;
  try {
    tunnel = await SshTunnel.open(spec);
    if (!tunnel.started) {
      // A live master from an earlier command: close it to time a real handshake.
      await tunnel.close();
      tunnel = await SshTunnel.open(spec);
    }
  } catch (err) {
    const e = err as RuntimeFailure;
    checks.push({
      name: `profile ${name}: ssh ${label}`,
      ok: false,
      detail: `${e.message}${e.hint ? ` (hint: ${e.hint})` : ""}`,
      required: true,
    });
    return checks;
  }
  checks.push({
    name: `profile ${name}: ssh ${label}`,
    ok: true,
    detail: `connected in ${Math.round(tunnel.handshakeMs)} ms (handshake); control socket in ${
      path.dirname(tunnel.controlPath)
    }`,
    required: true,
  });
  for (const tool of ["sbatch", "squeue"]) {
    const v = await tunnel.exec(`command -v ${tool} >/dev/null && ${tool} --version`);
    checks.push({
      name: `profile ${name}: remote ${tool}`,
      ok: v.code === 0,
      detail: v.code === 0
        ? dec.decode(v.stdout).trim()
        : `not found on ${label} (the non-interactive shell's PATH)`,
      required: true,
    });
  }
  const rjd = typeof profile.remote_job_dir === "string" ? profile.remote_job_dir : "";
  if (rjd === "") {
    checks.push({
      name: `profile ${name}: remote_job_dir`,
      ok: false,
      detail: "no remote_job_dir",
      required: true,
    });
    return checks;
  }
  const { probeRemote, checkRemoteJobDirOverSsh } = await import("./ssh_submit.ts");
  try {
    const probe = await probeRemote(tunnel, rjd);
    checkRemoteJobDirOverSsh(probe, label);
    const w = await tunnel.exec(
      `umask 077 && mkdir -p -- "$1" && f="$1/.nemotron-doctor-$$" && echo ok > "$f" && rm -f -- "$f"`,
      undefined,
      [probe.remoteJobDir],
    );
    checks.push({
      name: `profile ${name}: remote_job_dir`,
      ok: w.code === 0,
      detail: w.code === 0
        ? `${label}:${probe.remoteJobDir} is safe (only you or root can write the path) and writable`
        : `${label}:${probe.remoteJobDir}: ${w.stderr.trim()}`,
      required: true,
    });
  } catch (err) {
    const e = err as UsageError;
    checks.push({
      name: `profile ${name}: remote_job_dir`,
      ok: false,
      detail: `${e.message}${e.hint ? `; ${e.hint}` : ""}`,
      required: true,
    });
  }
  return checks;
}
