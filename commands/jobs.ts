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
import { formatDuration, localTime, parseSlurmDuration, relativeTime } from "../lib/cli/time.ts";

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

/**
 * The job for an ID: Slurm id, job key or job dir (from the store, else from its job.json). A job
 * dir path (any ID with a `/`) is matched against the store's job dirs first, as written or
 * normalized: a job submitted through an ssh tunnel has its job dir on the cluster, not here,
 * so its store row is the only place that path can be found.
 */
async function resolveJob(store: JobStore, id: string): Promise<ResolvedJob> {
  const path = await import("../lib/path.ts");
  const dir = path.resolve(id);
  if (id.includes("/")) {
    const rows = store.find(dir);
    if (rows.length > 1) {
      throw new UsageError(`job dir ${dir} belongs to ${rows.length} jobs in the job store`, {
        hint: `give the job key instead: ${
          rows.map((r) => `${r.key} (job ${r.slurm_job_id} on ${r.cluster})`).join(", ")
        }`,
      });
    }
    if (rows.length === 1) return { rec: rows[0], fromStore: true };
  }
  const found = store.find(id);
  // The same Slurm job id on two clusters (a login node and a tunnel, or two tunnels): ask which.
  const clusters = new Set(found.map((r) => r.cluster));
  if (clusters.size > 1 && found.every((r) => r.slurm_job_id === id)) {
    throw new UsageError(`job ${id} is on ${clusters.size} clusters in the job store`, {
      hint: `give the job key or job dir instead: ${
        found.map((r) => `${r.key} (on ${r.cluster})`).join(", ")
      }`,
    });
  }
  if (found.length) return { rec: found[0], fromStore: true };
  const { readManifest } = await import("../lib/exec/job_dir.ts");
  const { clusterName } = await import("../lib/exec/submit.ts");
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
  if (id.includes("/")) {
    throw new UsageError(
      `no job with job dir ${dir}: it is not in the job store (${store.path}) and not a job dir (with job.json) on this machine`,
      {
        hint:
          "a job dir on a cluster behind an ssh tunnel is found only through your job store: `nemotron jobs list --all --json` shows each job's job_dir",
      },
    );
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

/** Whether the job ever started an attempt (a never-run stage or pending job has no exit code). */
function ran(r: JobRecord): boolean {
  return r.started_at !== null || r.attempts > 0 || r.elapsed !== null && r.elapsed !== "0:00";
}

/** The exit column: only for jobs that ran and ended; `cancelled` for a cancelled job. */
function exitText(r: JobRecord): string {
  if (r.state === "CANCELLED") return "cancelled";
  if (!r.terminal || r.exit_code === null || !ran(r)) return "";
  return r.signal ? `${r.exit_code} (signal ${r.signal})` : String(r.exit_code);
}

/** The time column: how long it has waited or run, or when it ended. */
function timeText(r: JobRecord, now: number): string {
  if (r.terminal) {
    if (!ran(r)) return "never ran";
    return `ended ${relativeTime(r.ended_at ?? r.updated_at, now)}`;
  }
  if (betweenAttempts(r)) return `attempt ${r.attempts} next`;
  if (r.state === "PENDING") return `waiting ${formatDuration(now - Date.parse(r.submitted_at))}`;
  const ms = parseSlurmDuration(r.elapsed);
  return ms === undefined ? r.state.toLowerCase() : `running ${formatDuration(ms)}`;
}

// ---- long runs: requeued jobs between attempts, and why each attempt ended ----

/** A job Slurm requeued that waits for its next attempt (not a new pending job). */
function betweenAttempts(r: JobRecord): boolean {
  return !r.terminal && r.attempts > 0 && r.state === "PENDING";
}

function stateText(r: JobRecord): string {
  return betweenAttempts(r) ? `PENDING (requeued, attempt ${r.attempts} next)` : r.state;
}

/** The list's short state: a requeued job between attempts is `REQUEUED`, not a new PENDING. */
function listState(r: JobRecord): string {
  return betweenAttempts(r) ? "REQUEUED" : r.state;
}

type AttemptOutcome = import("../lib/exec/resume.ts").AttemptOutcome;

/** Attempt history, restart budget and (for a failed job) the end of the last attempt's log. */
interface AttemptReport {
  readonly auto_resume: boolean;
  readonly max_restarts: number | null;
  readonly restarts: number;
  readonly attempt_history: readonly AttemptOutcome[];
  readonly last_log_tail: readonly string[];
}

/**
 * The job dir's files `jobs status` reads: this machine's, or — for a job on a cluster behind an
 * ssh tunnel — what one ssh call fetched from the cluster (lib/exec/ssh_jobs.ts; the log tails
 * only for a job that ended without COMPLETED), and how to run Slurm commands there. Undefined
 * files when the cluster cannot be reached (a warning says so; the row is still shown).
 */
async function statusFiles(
  rec: JobRecord,
): Promise<{ files?: JobFiles; run?: import("../lib/exec/slurm_state.ts").CommandRunner }> {
  if (!rec.cluster.startsWith("ssh://")) {
    const { LOCAL_RAY_FILES } = await import("../lib/exec/ray.ts");
    return { files: LOCAL_RAY_FILES };
  }
  const { tunnelFor, remoteRayFiles } = await import("../lib/exec/ssh_jobs.ts");
  try {
    const tunnel = await tunnelFor(rec.cluster);
    const failed = rec.terminal && rec.state !== "COMPLETED";
    return {
      files: await remoteRayFiles(tunnel, rec.job_dir, { logs: failed }),
      run: tunnel.runner,
    };
  } catch (err) {
    console.error(
      `warning: ${
        err instanceof Error ? err.message : String(err)
      }; attempts, logs and Ray facts of the job dir not shown`,
    );
    return {};
  }
}

type JobFiles = import("../lib/exec/ray.ts").RayFiles;

async function attemptReport(
  rec: JobRecord,
  files: JobFiles | undefined,
  run?: import("../lib/exec/slurm_state.ts").CommandRunner,
): Promise<AttemptReport> {
  const jd = await import("../lib/exec/job_dir.ts");
  const { attemptOutcomes } = await import("../lib/exec/resume.ts");
  const { runStates } = await import("../lib/exec/slurm_state.ts");
  const path = await import("../lib/path.ts");
  const attempts = jd.parseAttempts(files?.read(path.join(rec.job_dir, "attempts.tsv")) ?? "");
  let manifest: import("../lib/exec/job_dir.ts").JobManifest | undefined;
  try {
    manifest = JSON.parse(files?.read(path.join(rec.job_dir, "job.json")) ?? "null") ?? undefined;
  } catch { /* unreadable job.json: no policy to show */ }
  const auto = manifest?.auto_resume === true;
  const budget = auto ? manifest?.max_restarts ?? null : manifest?.retries ?? null;
  const states = attempts.length > 1 ? await runStates(rec.slurm_job_id, { run }) : [];
  const history = attemptOutcomes(attempts, rec, states);
  let tail: string[] = [];
  const last = history[history.length - 1];
  if (rec.terminal && rec.state !== "COMPLETED" && last) {
    const log = (files?.read(
      jd.attemptLogPath(rec.job_dir, rec.slurm_name, rec.slurm_job_id, last.attempt),
    ) ?? "").replace(/\n+$/, "");
    tail = log === "" ? [] : log.split("\n").slice(-10);
  }
  return {
    auto_resume: auto,
    max_restarts: budget,
    restarts: Math.max(0, Math.max(rec.attempts, attempts.length) - 1),
    attempt_history: history,
    last_log_tail: tail,
  };
}

function attemptLines(r: JobRecord, a: AttemptReport): string[] {
  const budget = a.max_restarts === null
    ? ""
    : `, ${a.auto_resume ? "max_restarts" : "retries"} ${a.max_restarts}`;
  const lines = [`  restarts:  ${a.restarts}${budget}${a.auto_resume ? " (auto_resume)" : ""}`];
  for (const h of a.attempt_history) {
    const when = h.started_at ? localTime(h.started_at) : "-";
    lines.push(`    attempt ${h.attempt}  ${when}  ${h.text}`);
  }
  if (a.last_log_tail.length) {
    const last = a.attempt_history[a.attempt_history.length - 1];
    lines.push(`  last attempt (${last.attempt}) ended: ${last.text}; its log ends with:`);
    for (const l of a.last_log_tail) lines.push(`    | ${l}`);
    lines.push(`  full log:  nemotron jobs logs ${r.slurm_job_id} --attempt ${last.attempt}`);
  }
  return lines;
}

/**
 * Rows as aligned columns within `width`: when they do not fit, the NODES then NAME column is cut
 * (with `…`) — never the id, state, time or exit.
 */
function table(rows: string[][], width: number): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => [...r[i]].length)));
  const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
  for (const col of [4, 1]) {
    const over = total() - width;
    if (over > 0) widths[col] = Math.max(col === 4 ? 5 : 10, widths[col] - over);
  }
  const cut = (
    c: string,
    w: number,
  ) => ([...c].length > w ? [...c].slice(0, w - 1).join("") + "…" : c);
  return rows.map((r) => r.map((c, i) => cut(c, widths[i]).padEnd(widths[i])).join("  ").trimEnd());
}

/**
 * `jobs list` text: single jobs, then each pipeline under a header line of its own (the pipeline
 * id is not a column, so it never widens the table). Fits `width` columns.
 */
function listText(records: readonly JobRecord[], width: number, now = Date.now()): string {
  if (records.length === 0) return "no jobs (use --all to include older ones)";
  const header = ["JOB ID", "NAME", "STATE", "TIME", "NODES", "EXIT"];
  const row = (r: JobRecord, indent = "") => [
    indent + r.slurm_job_id,
    r.name,
    listState(r),
    timeText(r, now),
    r.nodes ?? "",
    exitText(r),
  ];
  // Rows of the table, and pipeline headers placed before the row at that index.
  const rows: string[][] = [header];
  const headers = new Map<number, string>();
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
    headers.set(rows.length, `pipeline ${r.pipeline} (${stages.length} stages)`);
    for (const s of stages) rows.push(row(s, "  "));
  }
  const lines = table(rows, width);
  return lines.flatMap((l, i) => headers.has(i) ? [headers.get(i)!, l] : [l]).join("\n");
}

/** Multi-node facts for `jobs status`: the Ray cluster's state, the task/node that failed. */
interface NodeFacts {
  readonly ray?: string;
  readonly failed?: string;
}

async function nodeFacts(r: JobRecord, files: JobFiles | undefined): Promise<NodeFacts> {
  const { rayClusterSummary } = await import("../lib/exec/ray.ts");
  const ray = files ? rayClusterSummary(r.job_dir, r.slurm_job_id, files) : undefined;
  let failed: string | undefined;
  if (r.terminal && r.state !== "COMPLETED" && files) {
    const { sbatchLogPath, attemptsWithLogs, attemptLogPath } = await import(
      "../lib/exec/job_dir.ts"
    );
    const { firstTaskFailure, firstRankFailure } = await import("../lib/exec/task_failures.ts");
    const log = files.read(sbatchLogPath(r.job_dir, r.slurm_name, r.slurm_job_id)) ?? "";
    const f = firstTaskFailure(log);
    if (f) failed = `${f.node} (task ${f.tasks}: ${f.how})`;
    // torchrun says which rank failed first; srun only knows which agent exited first
    const attempts = attemptsWithLogs(r.job_dir, r.slurm_name, r.slurm_job_id, files.list);
    if (attempts.length) {
      const taskLog = files.read(
        attemptLogPath(r.job_dir, r.slurm_name, r.slurm_job_id, attempts[attempts.length - 1]),
      ) ?? "";
      const rank = firstRankFailure(taskLog);
      if (rank) {
        failed = `${rank.host} (rank ${rank.rank}: exit code ${rank.exitCode ?? "?"}, ` +
          `torchrun's first observed failure)`;
      }
    }
  }
  return { ray, failed };
}

function statusText(
  r: JobRecord,
  stages: readonly JobRecord[],
  attempts: AttemptReport,
  facts: NodeFacts = {},
): string {
  const lines = [
    `job ${r.slurm_job_id}  ${r.name}`,
    `  state:     ${stateText(r)}${r.reason && !r.terminal ? ` (${r.reason})` : ""}`,
    `  exit code: ${exitText(r) || "-"}`,
    `  attempts:  ${r.attempts}`,
    ...attemptLines(r, attempts),
    `  nodes:     ${r.nodes ?? "-"}`,
    `  elapsed:   ${r.elapsed ?? "-"}`,
    `  submitted: ${localTime(r.submitted_at)} (${relativeTime(r.submitted_at)})`,
    ...(r.ended_at ? [`  ended:     ${localTime(r.ended_at)} (${relativeTime(r.ended_at)})`] : []),
    `  job dir:   ${r.job_dir}`,
  ];
  if (facts.ray) lines.push(`  ray:       ${facts.ray}`);
  if (facts.failed) lines.push(`  failed on: ${facts.failed}`);
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

/**
 * The log of one Ray role (`driver`, `head`, `worker-N`; checked by the caller) of a Ray cluster
 * job's attempt. `files` reads the job dir: this machine's, or for a job behind an ssh tunnel a
 * listing made on the cluster.
 */
async function rayRoleLog(
  rec: JobRecord,
  role: string,
  attempt?: number,
  files?: import("../lib/exec/ray.ts").RayFiles,
): Promise<string> {
  const ray = await import("../lib/exec/ray.ts");
  const attempts = ray.rayAttempts(rec.job_dir, rec.slurm_job_id, files);
  if (attempts.length === 0) {
    throw new UsageError(`job ${rec.slurm_job_id} is not a Ray cluster job (no Ray files yet)`, {
      hint: `the job is ${rec.state}; --role applies to launch = "ray" jobs on more than one node`,
    });
  }
  const a = attempt ?? attempts[attempts.length - 1];
  const roles = ray.rayRoles(rec.job_dir, rec.slurm_job_id, a, files);
  if (!roles.includes(role)) {
    throw new UsageError(`job ${rec.slurm_job_id} attempt ${a} has no ${role} log`, {
      hint: roles.length ? `roles with logs: ${roles.join(", ")}` : "no Ray role has started yet",
    });
  }
  return ray.rayLogPath(rec.job_dir, rec.slurm_job_id, a, role);
}

/** The stage of a pipeline whose log a person wants: the failed one, else the running one, else the last that ran. */
function stageToShow(stages: readonly JobRecord[]): JobRecord {
  return stages.find((s) => s.terminal && ran(s) && s.state !== "COMPLETED") ??
    stages.find((s) => !s.terminal && s.state !== "PENDING") ??
    [...stages].reverse().find(ran) ?? stages[0];
}

/** `jobs status PIPELINE`: one line a stage. */
function pipelineText(id: string, stages: readonly JobRecord[], now = Date.now()): string {
  const lines = [`pipeline ${id}  ${stages.length} stages`];
  for (const s of stages) {
    const exit = exitText(s);
    lines.push(
      `  ${s.stage}: ${s.name}  job ${s.slurm_job_id}  ${listState(s)}  ${timeText(s, now)}` +
        (exit ? `  exit ${exit}` : "") + (s.note ? `  (${s.note})` : ""),
    );
  }
  const shown = stageToShow(stages);
  lines.push(`  logs:      nemotron jobs logs ${id}   (stage ${shown.stage}: ${shown.name})`);
  if (stages.some((s) => !s.terminal)) lines.push(`  cancel:    nemotron jobs cancel ${id}`);
  return lines.join("\n");
}

/**
 * Why a job that has no log will never get one (dependency never satisfied, cancelled before it
 * started), or undefined when it may still run.
 */
function neverRunsReason(r: JobRecord): string | undefined {
  if (r.terminal && !ran(r)) {
    return `it ended ${r.state} before it started` + (r.note ? ` (${r.note})` : "");
  }
  if (!r.terminal && /DependencyNeverSatisfied/i.test(r.reason ?? "")) {
    return `its dependency (${r.dependency ?? "an earlier job"}) failed, so Slurm will never ` +
      `start it; cancel it with: nemotron jobs cancel ${r.pipeline ?? r.slurm_job_id}`;
  }
  return undefined;
}

export function jobsCommand(_cli: CliContext): Command {
  const group = new Command("jobs").description(
    "List, inspect, follow and cancel jobs (Slurm jobs and local runs)",
  )
    .examples([
      ["nemotron jobs list", "Live jobs and those that ended in the last 24 h"],
      ["nemotron jobs status 4711", "State, exit code, attempts, nodes"],
      ["nemotron jobs logs 4711 -f", "Follow the log until the job ends"],
      ["nemotron jobs cancel demo-pipe-20261130-120000-ab12cd", "Every unfinished stage"],
    ]);

  group.command("list")
    .description("jobs still running or ended in the last 24 hours (--all: every job)")
    .examples([
      ["nemotron jobs list --all --json", "Every job in the store, as JSON"],
    ])
    .option("--all", "include all jobs in the store")
    .option("--json", "print JSON")
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      const { withStore, refreshJobs } = await import("../lib/exec/tracking.ts");
      const records = await withStore(async (store) =>
        await refreshJobs(store, store.list({ all: opts.all }))
      );
      if (opts.json) {
        const rows = records.map((r) => ({ ...r, between_attempts: betweenAttempts(r) }));
        console.log(JSON.stringify(rows, null, 2));
      } else {
        const { helpWidth } = await import("../lib/cli/layout.ts");
        console.log(listText(records, Deno.stdout.isTerminal() ? helpWidth() : 80));
      }
    });

  group.command("status")
    .description("state, exit code, attempts, nodes and elapsed time of a job")
    .examples([
      ["nemotron jobs status 4711", "One job"],
      ["nemotron jobs status demo-pipe-\u2026", "Every stage of a pipeline"],
    ])
    .argument("<id>", "Slurm job id, pipeline id, job key or job dir")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }) => {
      const { withStore } = await import("../lib/exec/tracking.ts");
      await withStore(async (store) => {
        // A pipeline id (as `jobs list` shows it): every stage.
        const pipeline = store.find(id).length ? [] : store.pipeline(id);
        if (pipeline.length) {
          const { refreshJobs } = await import("../lib/exec/tracking.ts");
          const stages = await refreshJobs(store, pipeline);
          if (opts.json) console.log(JSON.stringify({ pipeline: id, stages }, null, 2));
          else console.log(pipelineText(id, stages));
          return;
        }
        const job = await resolveJob(store, id);
        const rec = await refreshOne(store, job);
        const stages = rec.pipeline && job.fromStore ? store.pipeline(rec.pipeline) : [];
        const { files, run } = await statusFiles(rec);
        const attempts = await attemptReport(rec, files, run); // long runs
        const facts = await nodeFacts(rec, files);
        if (opts.json) {
          console.log(JSON.stringify(
            {
              ...rec,
              between_attempts: betweenAttempts(rec),
              ...attempts,
              pipeline_stages: stages,
              ray_cluster: facts.ray ?? null,
              failed_on: facts.failed ?? null,
            },
            null,
            2,
          ));
        } else console.log(statusText(rec, stages, attempts, facts));
      });
    });

  group.command("logs")
    .description("print a job's log (latest attempt; --attempt N, --sbatch for the batch log)")
    .examples([
      ["nemotron jobs logs 4711 -f", "Follow until the job ends"],
      ["nemotron jobs logs 4711 --attempt 0", "The first attempt's log"],
      ["nemotron jobs logs L3f2a1c", "A local run's log"],
    ])
    .argument("<id>", "Slurm job id, pipeline id, job key or job dir")
    .option("-f, --follow", "keep printing as the log grows, until the job ends")
    .option("--attempt <n>", "attempt number (0 = first run)")
    .option("--sbatch", "the batch shell's log instead of the task log")
    .option("--role <role>", "Ray cluster jobs: driver (default), head or worker-N")
    .action(
      async (
        id: string,
        opts: { follow?: boolean; attempt?: string; sbatch?: boolean; role?: string },
      ) => {
        let attempt: number | undefined;
        if (opts.attempt !== undefined) {
          attempt = Number(opts.attempt);
          if (!/^\d+$/.test(opts.attempt)) {
            throw new UsageError(`--attempt must be a number >= 0, got '${opts.attempt}'`);
          }
        }
        if (opts.role !== undefined && opts.sbatch) {
          throw new UsageError("give --role or --sbatch, not both");
        }
        if (opts.role !== undefined && !/^(driver|head|worker-[1-9][0-9]*)$/.test(opts.role)) {
          throw new UsageError(`--role must be driver, head or worker-N, got '${opts.role}'`);
        }
        const { withStore } = await import("../lib/exec/tracking.ts");
        const jd = await import("../lib/exec/job_dir.ts");
        const { LogTail, followJob } = await import("../lib/exec/follow.ts");
        await withStore(async (store) => {
          // A pipeline id: the stage a person wants to read (failed, else running, else last).
          const pipeline = store.find(id).length ? [] : store.pipeline(id);
          if (pipeline.length) {
            const { refreshJobs } = await import("../lib/exec/tracking.ts");
            const shown = stageToShow(await refreshJobs(store, pipeline));
            console.error(
              `[nemotron] pipeline ${id}: stage ${shown.stage} (${shown.name}, job ${shown.slurm_job_id})`,
            );
            id = shown.slurm_job_id;
          }
          const job = await resolveJob(store, id);
          const rec = await refreshOne(store, job);
          // ssh tunnel (issue 12): the logs of a job behind a tunnel are read through it; a Ray
          // role's log is looked up as below, in a listing of the job dir made on the cluster.
          if (rec.cluster.startsWith("ssh://")) {
            const { tunnelJobLogs, tunnelFor, remoteRayFiles } = await import(
              "../lib/exec/ssh_jobs.ts"
            );
            const file = opts.role === undefined ? undefined : await rayRoleLog(
              rec,
              opts.role,
              attempt,
              await remoteRayFiles(await tunnelFor(rec.cluster), rec.job_dir),
            );
            await tunnelJobLogs(rec, { ...opts, attempt, store, file });
            return;
          }
          const out = (b: Uint8Array) => Deno.stdout.writeSync(b);
          // A local run: its run.log, followed (-f) until the run's row says it ended.
          if (rec.cluster === "local" && rec.mode === "local") {
            if (opts.role !== undefined || opts.sbatch || attempt !== undefined) {
              throw new UsageError(
                `${
                  opts.role !== undefined ? "--role" : opts.sbatch ? "--sbatch" : "--attempt"
                } applies to Slurm jobs; ${id} is a local run (one log, run.log)`,
                { hint: `nemotron jobs logs ${id}` },
              );
            }
            const tail = new LogTail(`${rec.job_dir}/run.log`);
            out(tail.readNew());
            if (!opts.follow) return;
            const { refreshJobs } = await import("../lib/exec/tracking.ts");
            let cur = rec;
            while (!cur.terminal) {
              await new Promise((r) => setTimeout(r, 500));
              out(tail.readNew());
              cur = (await refreshJobs(store, store.find(rec.key)))[0] ?? cur;
            }
            out(tail.readNew());
            return;
          }
          if (opts.follow && !opts.sbatch && opts.role === undefined) {
            await followJob(rec, { attempt, store: job.fromStore ? store : undefined });
            return;
          }
          let file: string;
          if (opts.role !== undefined) file = await rayRoleLog(rec, opts.role, attempt);
          else if (opts.sbatch) {
            file = jd.sbatchLogPath(rec.job_dir, rec.slurm_name, rec.slurm_job_id);
          } else {
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
              const never = neverRunsReason(rec);
              console.error(
                never
                  ? `[nemotron] job ${rec.slurm_job_id} has no log and never will: ${never}`
                  : `[nemotron] job ${rec.slurm_job_id} is ${rec.state}` +
                    `${
                      rec.reason && rec.reason !== "None" ? ` (${rec.reason})` : ""
                    }; no task log yet`,
              );
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
    .examples([
      ["nemotron jobs cancel 4711", "One job (scancel)"],
      ["nemotron jobs cancel demo-pipe-\u2026", "Every unfinished stage of a pipeline"],
    ])
    .argument("[id]", "Slurm job id, pipeline id, job key or job dir")
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
        } else if (!store.find(id!).length && store.pipeline(id!).length) {
          targets = store.pipeline(id!); // a pipeline id: every unfinished stage
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
        // A local run on this host: stop its script as a second Ctrl-C would (SIGTERM to the
        // nemotron process, which passes it on and records the end).
        const { localPid } = await import("../lib/exec/local_jobs.ts");
        for (const t of targets.filter((t) => t.cluster === "local" && !t.terminal)) {
          const pid = localPid(t);
          if (pid === undefined) {
            throw new UsageError(`local job ${t.slurm_job_id} runs on ${t.nodes}, not here`, {
              hint: `cancel it on ${t.nodes}`,
            });
          }
          Deno.kill(pid, "SIGTERM");
          console.log(`sent SIGTERM to local job ${t.slurm_job_id} (nemotron pid ${pid})`);
        }
        targets = targets.filter((t) => t.cluster !== "local");
        if (targets.length === 0) return;
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
