/**
 * Ray clusters on Slurm: the settings of `templates/ray.sub.j2` (ports, timeouts, GPUs and CPUs
 * per node) read from the profile, and the files the template leaves in the job dir, read back for
 * `nemotron jobs status` (did the cluster come up, which node did not join) and `jobs logs --role`.
 *
 * One sbatch job per cluster: the head on the first node, one worker per other node, the driver
 * (the runspec's command) once on the head node with RAY_ADDRESS. Per attempt (`<job id>_<attempt>`)
 * the template writes a fresh `ray/<tag>/events.tsv` and `logs/ray_<tag>/ray-{head,worker-<i>,
 * driver}.log`; the attempt's task log `logs/log-<name>_<tag>.out` links to the driver's log.
 * `ray_cluster_info.json` (head ip, ports) sits in the job dir while the cluster is up.
 *
 * Differences from NeMo-Run's ray.sub on purpose: every wait has a timeout and names the node that
 * did not come up; nothing is hard-coded (GPUs per node from the profile/runspec, CPUs from
 * `cpus_per_task`, ports from the profile); cluster files are per attempt; the driver's end (or a
 * head/worker dying under it) tears the cluster down at once.
 */
import * as path from "../path.ts";
import builtinRayTemplate from "../../templates/ray.sub.j2" with { type: "text" };

/** The built-in Ray cluster template (`templates/ray.sub.j2`). */
export const RAY_TEMPLATE: string = builtinRayTemplate;

/** Profile keys for Ray clusters, with their defaults (ports as in NeMo-Run's ray.sub). */
export const RAY_DEFAULTS = {
  ray_port: 6379,
  ray_dashboard_port: 8265,
  ray_client_server_port: 10001,
  ray_node_manager_port: 53001,
  ray_object_manager_port: 53003,
  ray_min_worker_port: 54001,
  ray_max_worker_port: 54257,
  /** Seconds until the head must answer `ray status`. */
  ray_head_timeout: 300,
  /** Seconds (after the head is up) until every worker must have joined. */
  ray_join_timeout: 300,
  /** Seconds one `ray status` call may take before it counts as "no answer". */
  ray_status_timeout: 30,
  /** Seconds the teardown waits for the head and workers to stop before SIGKILL. */
  ray_stop_timeout: 10,
} as const;

/** The `ray` object of the template context. */
export interface RaySettings {
  readonly port: number;
  readonly dashboard_port: number;
  readonly client_server_port: number;
  readonly node_manager_port: number;
  readonly object_manager_port: number;
  readonly min_worker_port: number;
  readonly max_worker_port: number;
  readonly head_timeout: number;
  readonly join_timeout: number;
  readonly stop_timeout: number;
  readonly status_timeout: number;
  /** `--num-gpus` per node; null lets Ray detect them. 0 for CPU-only clusters (data prep). */
  readonly gpus_per_node: number | null;
  /**
   * `--num-cpus` per node (= the profile's `cpus_per_task`: one task per node, which also goes on
   * the sruns through the sbatch context's `srun_flags`); null = Ray detects them.
   */
  readonly cpus_per_node: number | null;
}

/**
 * Read the Ray settings. `readInt(key, min)` is the profile reader's integer accessor (it throws a
 * UsageError naming the key); `fail(key, message)` reports a bad combination.
 */
export function raySettings(opts: {
  readonly readInt: (key: string, min: number) => number | undefined;
  readonly fail: (key: string, message: string) => never;
  readonly gpusPerNode: number | "gpu" | undefined;
  readonly cpusPerTask: number | undefined;
}): RaySettings {
  const get = (key: keyof typeof RAY_DEFAULTS, min: number) =>
    opts.readInt(key, min) ?? RAY_DEFAULTS[key];
  const s: RaySettings = {
    port: get("ray_port", 1),
    dashboard_port: get("ray_dashboard_port", 1),
    client_server_port: get("ray_client_server_port", 1),
    node_manager_port: get("ray_node_manager_port", 1),
    object_manager_port: get("ray_object_manager_port", 1),
    min_worker_port: get("ray_min_worker_port", 1),
    max_worker_port: get("ray_max_worker_port", 1),
    head_timeout: get("ray_head_timeout", 1),
    join_timeout: get("ray_join_timeout", 1),
    stop_timeout: get("ray_stop_timeout", 1),
    status_timeout: get("ray_status_timeout", 1),
    gpus_per_node: typeof opts.gpusPerNode === "number" ? opts.gpusPerNode : null,
    cpus_per_node: opts.cpusPerTask ?? null,
  };
  for (
    const k of [
      "ray_port",
      "ray_dashboard_port",
      "ray_client_server_port",
      "ray_node_manager_port",
      "ray_object_manager_port",
      "ray_min_worker_port",
      "ray_max_worker_port",
    ] as const
  ) {
    if (get(k, 1) > 65535) opts.fail(k, `must be a port number (1-65535), got ${get(k, 1)}`);
  }
  if (s.min_worker_port > s.max_worker_port) {
    opts.fail("ray_min_worker_port", "must not be above ray_max_worker_port");
  }
  return s;
}

/** `<job id>_<attempt>`: the name of one attempt's Ray files. */
export function rayTag(slurmJobId: string, attempt: number): string {
  return `${slurmJobId}_${attempt}`;
}

/** The log of one role (`head`, `worker-<i>`, `driver`) of one attempt. */
export function rayLogPath(
  jobDir: string,
  slurmJobId: string,
  attempt: number,
  role: string,
): string {
  return path.join(jobDir, "logs", `ray_${rayTag(slurmJobId, attempt)}`, `ray-${role}.log`);
}

/**
 * How the Ray files of a job dir are read: `list` gives a directory's entry names (none when it
 * is missing), `read` a file's text (undefined when missing). `LOCAL_RAY_FILES` reads this
 * machine's; for a job on a cluster behind an ssh tunnel, `remoteRayFiles` (lib/exec/ssh_jobs.ts)
 * answers from one listing made on the cluster.
 */
export interface RayFiles {
  list(dir: string): readonly string[];
  read(file: string): string | undefined;
}

export const LOCAL_RAY_FILES: RayFiles = {
  list(dir) {
    try {
      return [...Deno.readDirSync(dir)].map((e) => e.name);
    } catch {
      return [];
    }
  },
  read(file) {
    try {
      return Deno.readTextFileSync(file);
    } catch {
      return undefined;
    }
  },
};

/** The roles that have a log in one attempt, e.g. `["driver", "head", "worker-1"]`. */
export function rayRoles(
  jobDir: string,
  slurmJobId: string,
  attempt: number,
  files: RayFiles = LOCAL_RAY_FILES,
): string[] {
  const out: string[] = [];
  for (const name of files.list(path.join(jobDir, "logs", `ray_${rayTag(slurmJobId, attempt)}`))) {
    const m = /^ray-(.+)\.log$/.exec(name);
    if (m) out.push(m[1]);
  }
  return out.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

/** Attempts of a job that ran the Ray template (have `ray/<job id>_<n>/`), ascending. */
export function rayAttempts(
  jobDir: string,
  slurmJobId: string,
  files: RayFiles = LOCAL_RAY_FILES,
): number[] {
  const out: number[] = [];
  for (const name of files.list(path.join(jobDir, "ray"))) {
    const m = /^(\d+)_(\d+)$/.exec(name);
    if (m && m[1] === slurmJobId) out.push(Number(m[2]));
  }
  return out.sort((a, b) => a - b);
}

/** One line of `ray/<tag>/events.tsv`. */
export interface RayEvent {
  readonly time: number;
  readonly event: string;
  readonly node: string;
  readonly detail: string;
}

/** The events the template recorded for one attempt. */
export function readRayEvents(
  jobDir: string,
  slurmJobId: string,
  attempt: number,
  files: RayFiles = LOCAL_RAY_FILES,
): RayEvent[] {
  const text = files.read(path.join(jobDir, "ray", rayTag(slurmJobId, attempt), "events.tsv"));
  if (text === undefined) return [];
  const out: RayEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [time, event, node, detail] = line.split("\t");
    out.push({ time: Number(time), event, node: node ?? "", detail: detail ?? "" });
  }
  return out;
}

/**
 * One line for `jobs status` about the Ray cluster of the latest attempt: up (all nodes joined),
 * still starting, or which node did not come up. Undefined for jobs without Ray files.
 */
export function rayClusterSummary(
  jobDir: string,
  slurmJobId: string,
  files: RayFiles = LOCAL_RAY_FILES,
): string | undefined {
  const attempts = rayAttempts(jobDir, slurmJobId, files);
  if (attempts.length === 0) return undefined;
  const attempt = attempts[attempts.length - 1];
  const events = readRayEvents(jobDir, slurmJobId, attempt, files);
  const find = (name: string) => events.find((e) => e.event === name);
  const failed = events.find((e) =>
    ["head_not_up", "not_joined", "role_died", "bad_allocation"].includes(e.event)
  );
  const joined = find("all_joined");
  const driver = find("driver_exit");
  const parts: string[] = [];
  if (joined) parts.push(`up: all ${joined.detail} nodes joined (${joined.node})`);
  if (failed) {
    if (failed.event === "head_not_up") parts.push(`the head on ${failed.node} never answered`);
    else if (failed.event === "not_joined") parts.push(`did not join: ${failed.node}`);
    else if (failed.event === "role_died") {
      parts.push(`a Ray process died on ${failed.node} (${failed.detail})`);
    } else parts.push(failed.detail);
  }
  if (driver) parts.push(`driver exited with code ${driver.detail}`);
  if (parts.length === 0) {
    parts.push(find("head_up") ? "starting: head up, waiting for workers" : "starting");
  }
  return `attempt ${attempt}: ${parts.join("; ")}`;
}
