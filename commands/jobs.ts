/**
 * `nemotron jobs list|status|logs|cancel`: the Slurm jobs this user submitted with nemotron.
 *
 * Rows come from the job store ($NEMOTRON_HOME/jobs.db); states are refreshed from Slurm with one
 * squeue call (sacct for jobs slurmctld forgot, when accounting is on). A job dir path also works
 * as ID, so a job submitted from another login node can be inspected through its job.json.
 * Pipeline stages are listed together; a failed stage cancels the stages that can never run.
 *
 * Trust: only the user's own job store is acted on. A job dir that is not in the store is read
 * (status, logs) only when it and its job.json are the user's own and no other user can swap it;
 * it never changes a store row, never deletes a file and is never cancelled.
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { RuntimeFailure, UsageError } from "../lib/errors.ts";

type JobRecord = import("../lib/jobs/store.ts").JobRecord;
type JobStore = import("../lib/jobs/store.ts").JobStore;

/** A job found for an ID: from the store (trusted), or read-only from a job dir's job.json. */
interface ResolvedJob {
  readonly rec: JobRecord;
  readonly fromStore: boolean;
}

/** Why the job dir `dir` (not in the store) cannot be read as the user's own, or undefined. */
async function untrustedJobDir(dir: string): Promise<string | undefined> {
  const { untrustedPathComponent } = await import("../lib/exec/job_dir.ts");
  const uid = Deno.uid();
  try {
    const d = Deno.lstatSync(dir);
    const m = Deno.lstatSync(`${dir}/job.json`);
    if (!d.isDirectory) return `${dir} is not a directory`;
    if (!m.isFile) return `${dir}/job.json is not a regular file`;
    if (uid !== null && (d.uid !== uid || m.uid !== uid)) {
      return `${d.uid !== uid ? dir : `${dir}/job.json`} belongs to another user (uid ${
        d.uid !== uid ? d.uid : m.uid
      })`;
    }
    if (((d.mode ?? 0) & 0o022) !== 0) return `${dir} is writable by others`;
  } catch {
    return undefined; // not a job dir at all: the caller says "no job"
  }
  const p = untrustedPathComponent(dir);
  return p ? `${p.dir}: ${p.reason}` : undefined;
}

/** The job for an ID: Slurm id, job key or job dir (from the store, else from its job.json). */
async function resolveJob(store: JobStore, id: string): Promise<ResolvedJob> {
  const found = store.find(id);
  if (found.length) return { rec: found[0], fromStore: true };
  const { readManifest } = await import("../lib/exec/job_dir.ts");
  const { clusterName } = await import("../lib/exec/submit.ts");
  const path = await import("../lib/path.ts");
  const dir = path.resolve(id);
  const distrust = await untrustedJobDir(dir);
  if (distrust) {
    throw new UsageError(`refusing to act on job dir ${dir}: ${distrust}`, {
      hint:
        "nemotron only reads job dirs that are yours and that no other user can write; your own jobs are in `nemotron jobs list --all`",
    });
  }
  let manifest;
  try {
    manifest = readManifest(dir);
  } catch { /* not a job dir */ }
  if (manifest && manifest.slurm_job_id && manifest.job_dir === dir) {
    const now = new Date().toISOString();
    const rec: JobRecord = {
      slurm_job_id: manifest.slurm_job_id,
      cluster: await clusterName(),
      key: manifest.key,
      name: manifest.name,
      slurm_name: manifest.slurm_name,
      profile: manifest.profile,
      mode: manifest.mode,
      job_dir: manifest.job_dir,
      pipeline: manifest.pipeline?.id ?? null,
      stage: manifest.pipeline?.stage ?? null,
      stages: manifest.pipeline?.stages ?? null,
      dependency: manifest.dependency,
      state: manifest.state,
      terminal: false,
      exit_code: manifest.exit_code,
      signal: null,
      attempts: manifest.attempts.length,
      nodes: null,
      reason: null,
      elapsed: null,
      secrets_file: null, // never delete a file named by a job.json
      submitted_at: manifest.submitted_at ?? now,
      started_at: null,
      ended_at: null,
      updated_at: now,
      note: null,
    };
    return { rec, fromStore: false };
  }
  throw new UsageError(`no job '${id}' in the job store (${store.path})`, {
    hint: "`nemotron jobs list --all` lists known jobs; a job dir path (with job.json) works too",
  });
}

/** Refresh one job (store row, or manifest-only: read-only) and return it. */
async function refreshOne(store: JobStore, job: ResolvedJob): Promise<JobRecord> {
  const { rec } = job;
  const { refreshJobs } = await import("../lib/exec/tracking.ts");
  if (job.fromStore) return (await refreshJobs(store, [rec]))[0];
  const { jobState } = await import("../lib/exec/slurm_state.ts");
  const st = (await jobState([rec.slurm_job_id])).get(rec.slurm_job_id);
  if (!st) return rec;
  return {
    ...rec,
    state: st.state,
    terminal: st.terminal,
    exit_code: st.exitCode,
    signal: st.signal,
    attempts: st.phase === "pending" ? 0 : st.restarts + 1,
    nodes: st.nodes,
    reason: st.reason,
    elapsed: st.elapsed,
  };
}

function exitText(r: JobRecord): string {
  if (r.exit_code === null) return "-";
  return r.signal ? `${r.exit_code}:${r.signal}` : String(r.exit_code);
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

/** `jobs list` text: single jobs, then each pipeline's stages grouped under it. */
function listText(records: readonly JobRecord[]): string {
  if (records.length === 0) return "no jobs (use --all to include older ones)";
  const header = ["JOB ID", "NAME", "STATE", "EXIT", "ATTEMPTS", "ELAPSED", "SUBMITTED"];
  const row = (r: JobRecord, indent = "") => [
    indent + r.slurm_job_id,
    r.name,
    r.state,
    exitText(r),
    String(r.attempts),
    r.elapsed ?? "-",
    r.submitted_at.replace("T", " ").slice(0, 19),
  ];
  const rows: string[][] = [header];
  const seen = new Set<string>();
  for (const r of records) {
    if (r.pipeline === null) {
      rows.push(row(r));
      continue;
    }
    if (seen.has(r.pipeline)) continue;
    seen.add(r.pipeline);
    const stages = records.filter((s) => s.pipeline === r.pipeline)
      .sort((a, b) => (a.stage ?? 0) - (b.stage ?? 0));
    rows.push([`pipeline ${r.pipeline}`, "", "", "", "", "", ""]);
    for (const s of stages) rows.push(row(s, "  "));
  }
  return table(rows);
}

function statusText(r: JobRecord, stages: readonly JobRecord[]): string {
  const lines = [
    `job ${r.slurm_job_id}  ${r.name}`,
    `  state:     ${r.state}${r.reason && !r.terminal ? ` (${r.reason})` : ""}`,
    `  exit code: ${exitText(r)}`,
    `  attempts:  ${r.attempts}`,
    `  nodes:     ${r.nodes ?? "-"}`,
    `  elapsed:   ${r.elapsed ?? "-"}`,
    `  submitted: ${r.submitted_at}`,
    `  job dir:   ${r.job_dir}`,
  ];
  if (r.dependency) lines.push(`  depends:   ${r.dependency}`);
  if (r.note) lines.push(`  note:      ${r.note}`);
  if (stages.length) {
    lines.push(`  pipeline:  ${r.pipeline} (stage ${r.stage} of ${r.stages})`);
    const failed = stages.find((s) => s.terminal && s.state !== "COMPLETED" && !s.note);
    for (const s of stages) {
      lines.push(`    ${s.stage}: ${s.name}  job ${s.slurm_job_id}  ${s.state}`);
    }
    if (failed) lines.push(`  failed stage: ${failed.stage} (${failed.name}), ${failed.state}`);
  }
  lines.push(`  logs:      nemotron jobs logs ${r.slurm_job_id}${r.terminal ? "" : " -f"}`);
  return lines.join("\n");
}

export function jobsCommand(_cli: CliContext): Command {
  const group = new Command("jobs").description("List, inspect, follow and cancel Slurm jobs");

  group.command("list")
    .description("jobs still running or ended in the last 24 hours (--all: every job)")
    .option("--all", "include all jobs in the store")
    .option("--json", "print JSON")
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      const { withStore, refreshJobs } = await import("../lib/exec/tracking.ts");
      const records = await withStore(async (store) =>
        await refreshJobs(store, store.list({ all: opts.all }))
      );
      if (opts.json) console.log(JSON.stringify(records, null, 2));
      else console.log(listText(records));
    });

  group.command("status")
    .description("state, exit code, attempts, nodes and elapsed time of a job")
    .argument("<id>", "Slurm job id, job key or job dir")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }) => {
      const { withStore } = await import("../lib/exec/tracking.ts");
      await withStore(async (store) => {
        const job = await resolveJob(store, id);
        const rec = await refreshOne(store, job);
        const stages = rec.pipeline && job.fromStore ? store.pipeline(rec.pipeline) : [];
        if (opts.json) console.log(JSON.stringify({ ...rec, pipeline_stages: stages }, null, 2));
        else console.log(statusText(rec, stages));
      });
    });

  group.command("logs")
    .description("print a job's log (latest attempt; --attempt N, --sbatch for the batch log)")
    .argument("<id>", "Slurm job id, job key or job dir")
    .option("-f, --follow", "keep printing as the log grows, until the job ends")
    .option("--attempt <n>", "attempt number (0 = first run)")
    .option("--sbatch", "the batch shell's log instead of the task log")
    .action(
      async (id: string, opts: { follow?: boolean; attempt?: string; sbatch?: boolean }) => {
        let attempt: number | undefined;
        if (opts.attempt !== undefined) {
          attempt = Number(opts.attempt);
          if (!/^\d+$/.test(opts.attempt)) {
            throw new UsageError(`--attempt must be a number >= 0, got '${opts.attempt}'`);
          }
        }
        const { withStore } = await import("../lib/exec/tracking.ts");
        const jd = await import("../lib/exec/job_dir.ts");
        const { LogTail, followJob } = await import("../lib/exec/follow.ts");
        await withStore(async (store) => {
          const job = await resolveJob(store, id);
          const rec = await refreshOne(store, job);
          // ssh tunnel (issue 12): the logs of a job behind a tunnel are read through it.
          if (rec.cluster.startsWith("ssh://")) {
            const { tunnelJobLogs } = await import("../lib/exec/ssh_jobs.ts");
            await tunnelJobLogs(rec, { ...opts, attempt, store });
            return;
          }
          const out = (b: Uint8Array) => Deno.stdout.writeSync(b);
          if (opts.follow && !opts.sbatch) {
            await followJob(rec, { attempt, store: job.fromStore ? store : undefined });
            return;
          }
          let file: string;
          if (opts.sbatch) file = jd.sbatchLogPath(rec.job_dir, rec.slurm_name, rec.slurm_job_id);
          else {
            const onDisk = jd.attemptsWithLogs(rec.job_dir, rec.slurm_name, rec.slurm_job_id);
            if (attempt !== undefined && !onDisk.includes(attempt)) {
              throw new UsageError(
                `job ${rec.slurm_job_id} has no log for attempt ${attempt}`,
                {
                  hint: onDisk.length
                    ? `attempts with logs: ${onDisk.join(", ")}`
                    : `the job is ${rec.state}; no attempt has written a log yet`,
                },
              );
            }
            if (attempt === undefined && onDisk.length === 0) {
              console.error(`[nemotron] job ${rec.slurm_job_id} is ${rec.state}; no task log yet`);
              return;
            }
            file = jd.attemptLogPath(
              rec.job_dir,
              rec.slurm_name,
              rec.slurm_job_id,
              attempt ?? onDisk[onDisk.length - 1],
            );
          }
          const tail = new LogTail(file);
          out(tail.readNew());
          if (!opts.follow) return;
          const { jobState } = await import("../lib/exec/slurm_state.ts");
          while (true) {
            const st = (await jobState([rec.slurm_job_id])).get(rec.slurm_job_id);
            out(tail.readNew());
            if (!st || st.terminal) break;
            await new Promise((r) => setTimeout(r, 1000));
          }
          out(tail.readNew());
        });
      },
    );

  group.command("cancel")
    .description("cancel a job, or every unfinished stage of a pipeline (--all-of)")
    .argument("[id]", "Slurm job id, job key or job dir")
    .option("--all-of <pipeline>", "cancel all unfinished stages of this pipeline")
    .action(async (id: string | undefined, opts: { allOf?: string }) => {
      if ((id === undefined) === (opts.allOf === undefined)) {
        throw new UsageError("give a job ID or --all-of PIPELINE (one of them)");
      }
      const { withStore, refreshJobs } = await import("../lib/exec/tracking.ts");
      const { cancelSlurmJobs } = await import("../lib/exec/slurm_state.ts");
      const { removeSecretsFile } = await import("../lib/exec/job_dir.ts");
      await withStore(async (store) => {
        let targets: JobRecord[];
        if (opts.allOf !== undefined) {
          targets = store.pipeline(opts.allOf);
          if (targets.length === 0) {
            throw new UsageError(`no pipeline '${opts.allOf}' in the job store`, {
              hint: "`nemotron jobs list --all` shows pipeline ids",
            });
          }
        } else {
          const job = await resolveJob(store, id!);
          if (!job.fromStore) {
            throw new UsageError(
              `job ${job.rec.slurm_job_id} (${job.rec.job_dir}) is not in your job store (${store.path})`,
              {
                hint:
                  "nemotron cancels only jobs it submitted for you from this NEMOTRON_HOME; check the job with `squeue -j ID` and cancel it with `scancel ID`",
              },
            );
          }
          targets = [job.rec];
        }
        targets = await refreshJobs(store, targets, { settlePipelines: false });
        const live = targets.filter((t) => !t.terminal);
        if (live.length === 0) {
          console.log(
            `nothing to cancel: ${targets.map((t) => `${t.slurm_job_id} ${t.state}`).join(", ")}`,
          );
          return;
        }
        if (live.some((t) => t.cluster.startsWith("ssh://"))) {
          // ssh tunnel (issue 12): each job is cancelled through its own cluster's tunnel.
          const { cancelTunnelJobs } = await import("../lib/exec/ssh_jobs.ts");
          await cancelTunnelJobs(live);
        } else await cancelSlurmJobs(live.map((t) => t.slurm_job_id));
        for (const t of live) {
          if (!t.cluster.startsWith("ssh://")) removeSecretsFile(t.secrets_file, t.job_dir);
        }
        let after = await refreshJobs(store, live, { settlePipelines: false });
        for (let i = 0; i < 20 && after.some((t) => !t.terminal); i++) {
          await new Promise((r) => setTimeout(r, 250));
          after = await refreshJobs(store, after, { settlePipelines: false });
        }
        for (const t of after) {
          store.update(t.key, { note: "cancelled with nemotron jobs cancel" });
          console.log(`cancelled job ${t.slurm_job_id} (${t.name}): ${t.state}`);
        }
        const stuck = after.filter((t) => !t.terminal);
        if (stuck.length) {
          throw new RuntimeFailure(
            `Slurm still shows ${stuck.map((t) => `${t.slurm_job_id} ${t.state}`).join(", ")}`,
            { hint: "it may take a moment; check with nemotron jobs status ID" },
          );
        }
      });
    });
  return group;
}
