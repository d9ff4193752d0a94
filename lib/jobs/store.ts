/**
 * The job store: one SQLite database (`node:sqlite`, WAL journal) at `$NEMOTRON_HOME/jobs.db`
 * (default `~/.nemotron/jobs.db`) with one row per submitted Slurm job. Safe for several CLI
 * processes at once: WAL lets readers run beside a writer, and writers wait (busy timeout) instead
 * of failing. Rows never hold secret values — only names, paths, ids and states.
 *
 * The job dir's `job.json` on the shared filesystem is the other record of a job; the store is the
 * fast local index used by `nemotron jobs`.
 */
import * as path from "../path.ts";
import { ensureNemotronHome, nemotronHome } from "../home.ts";
import type { DatabaseSync } from "node:sqlite";

/** One job as the store knows it. */
export interface JobRecord {
  /** Slurm job id (as printed by `sbatch --parsable`). */
  readonly slurm_job_id: string;
  /** Slurm cluster name (jobs of other clusters are shown but not queried). */
  readonly cluster: string;
  /** Unique job key = job dir base name. */
  readonly key: string;
  readonly name: string;
  readonly slurm_name: string;
  readonly profile: string | null;
  readonly mode: string;
  readonly job_dir: string;
  readonly pipeline: string | null;
  readonly stage: number | null;
  readonly stages: number | null;
  /** e.g. `afterok:123`, or null. */
  readonly dependency: string | null;
  /** Slurm state as shown (e.g. `PENDING`, `COMPLETED`, `CANCELLED`), or `UNKNOWN`. */
  readonly state: string;
  /** True once the state can no longer change. */
  readonly terminal: boolean;
  readonly exit_code: number | null;
  readonly signal: number | null;
  readonly attempts: number;
  readonly nodes: string | null;
  readonly reason: string | null;
  readonly elapsed: string | null;
  readonly secrets_file: string | null;
  readonly submitted_at: string;
  readonly started_at: string | null;
  readonly ended_at: string | null;
  readonly updated_at: string;
  /** Free-text note, e.g. why a pipeline stage was cancelled. */
  readonly note: string | null;
}

/** The fields a status refresh may change. */
export type JobStateUpdate = Partial<
  Pick<
    JobRecord,
    | "state"
    | "terminal"
    | "exit_code"
    | "signal"
    | "attempts"
    | "nodes"
    | "reason"
    | "elapsed"
    | "started_at"
    | "ended_at"
    | "note"
  >
>;

const COLUMNS = [
  "slurm_job_id",
  "cluster",
  "key",
  "name",
  "slurm_name",
  "profile",
  "mode",
  "job_dir",
  "pipeline",
  "stage",
  "stages",
  "dependency",
  "state",
  "terminal",
  "exit_code",
  "signal",
  "attempts",
  "nodes",
  "reason",
  "elapsed",
  "secrets_file",
  "submitted_at",
  "started_at",
  "ended_at",
  "updated_at",
  "note",
] as const;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  key TEXT PRIMARY KEY,
  slurm_job_id TEXT NOT NULL,
  cluster TEXT NOT NULL,
  name TEXT NOT NULL,
  slurm_name TEXT NOT NULL,
  profile TEXT,
  mode TEXT NOT NULL,
  job_dir TEXT NOT NULL,
  pipeline TEXT,
  stage INTEGER,
  stages INTEGER,
  dependency TEXT,
  state TEXT NOT NULL,
  terminal INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER,
  signal INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  nodes TEXT,
  reason TEXT,
  elapsed TEXT,
  secrets_file TEXT,
  submitted_at TEXT NOT NULL,
  started_at TEXT,
  ended_at TEXT,
  updated_at TEXT NOT NULL,
  note TEXT
);
CREATE INDEX IF NOT EXISTS jobs_slurm_id ON jobs (slurm_job_id);
CREATE INDEX IF NOT EXISTS jobs_pipeline ON jobs (pipeline);
CREATE INDEX IF NOT EXISTS jobs_submitted ON jobs (submitted_at);
`;

/** Default database path: `$NEMOTRON_HOME/jobs.db`. */
export function defaultStorePath(): string {
  return path.join(nemotronHome(), "jobs.db");
}

type Row = Record<string, unknown>;

function toRecord(row: Row): JobRecord {
  const out: Record<string, unknown> = {};
  for (const c of COLUMNS) out[c] = row[c] ?? null;
  out.terminal = Boolean(row.terminal);
  out.attempts = Number(row.attempts ?? 0);
  for (const c of ["stage", "stages", "exit_code", "signal"]) {
    if (out[c] !== null) out[c] = Number(out[c]);
  }
  return Object.freeze(out) as unknown as JobRecord;
}

/** An open job store. Close it when done (each CLI process opens, works, closes). */
export class JobStore {
  private readonly statements = new Map<string, ReturnType<DatabaseSync["prepare"]>>();
  private constructor(private readonly db: DatabaseSync, readonly path: string) {}

  /** A prepared statement, cached per SQL text. */
  private stmt(sql: string): ReturnType<DatabaseSync["prepare"]> {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** Open (and create if needed) the store at `file` (default `$NEMOTRON_HOME/jobs.db`). */
  static async open(file?: string): Promise<JobStore> {
    const { DatabaseSync } = await import("node:sqlite");
    if (file === undefined) file = path.join(ensureNemotronHome(), "jobs.db"); // private (0700)
    else Deno.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const db = new DatabaseSync(file, { timeout: 15000 });
    db.exec("PRAGMA busy_timeout = 15000");
    // journal_mode=WAL needs a write lock the first time; the busy timeout covers concurrent opens.
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec(SCHEMA);
    return new JobStore(db, file);
  }

  close(): void {
    this.db.close();
  }

  /** Insert a newly submitted job. */
  insert(rec: JobRecord): void {
    const cols = COLUMNS.join(", ");
    const marks = COLUMNS.map(() => "?").join(", ");
    const values = COLUMNS.map((c) => {
      const v = rec[c];
      if (typeof v === "boolean") return v ? 1 : 0;
      return v ?? null;
    });
    this.stmt(`INSERT INTO jobs (${cols}) VALUES (${marks})`).run(
      ...(values as (string | number | null)[]),
    );
  }

  /** Apply a state refresh to the job with `key`. */
  update(key: string, patch: JobStateUpdate): void {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return;
    const sets = entries.map(([k]) => `${k} = ?`).join(", ");
    const values = entries.map(([, v]) => typeof v === "boolean" ? (v ? 1 : 0) : v ?? null);
    this.stmt(`UPDATE jobs SET ${sets}, updated_at = ? WHERE key = ?`).run(
      ...(values as (string | number | null)[]),
      new Date().toISOString(),
      key,
    );
  }

  /**
   * Find jobs by Slurm job id, job key, or job dir path. Several rows can share a Slurm id (other
   * clusters); newest first.
   */
  find(idOrKey: string): JobRecord[] {
    const rows = this.stmt(
      "SELECT * FROM jobs WHERE slurm_job_id = ? OR key = ? OR job_dir = ? ORDER BY submitted_at DESC",
    ).all(idOrKey, idOrKey, idOrKey.replace(/\/+$/, "")) as Row[];
    return rows.map(toRecord);
  }

  /** All stages of a pipeline, in stage order. */
  pipeline(id: string): JobRecord[] {
    const rows = this.db.prepare(
      "SELECT * FROM jobs WHERE pipeline = ? ORDER BY stage, submitted_at",
    ).all(id) as Row[];
    return rows.map(toRecord);
  }

  /**
   * Jobs for `jobs list`: all of them with `all`, otherwise the ones still live plus those that
   * ended within `recentHours`. Newest first.
   */
  list(opts: { all?: boolean; recentHours?: number } = {}): JobRecord[] {
    if (opts.all) {
      return (this.db.prepare("SELECT * FROM jobs ORDER BY submitted_at DESC").all() as Row[])
        .map(toRecord);
    }
    const since = new Date(Date.now() - (opts.recentHours ?? 24) * 3600_000).toISOString();
    const rows = this.db.prepare(
      "SELECT * FROM jobs WHERE terminal = 0 OR updated_at >= ? OR submitted_at >= ? ORDER BY submitted_at DESC",
    ).all(since, since) as Row[];
    return rows.map(toRecord);
  }

  /** Run `fn` in one write transaction (BEGIN IMMEDIATE, so writers queue instead of deadlocking). */
  transaction<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.db.exec("COMMIT");
      return out;
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
  }
}
