/**
 * The one table of env.toml profile keys nemotron knows, and the check that rejects the others.
 *
 * A profile key that is not in this table is a typo until proven otherwise (`partiton = "x"` must
 * not be dropped silently): `checkProfileKeys` raises a UsageError with the file, the line, the
 * source line and a "did you mean". Keys of executors nemotron does not run (docker, lepton,
 * dgxcloud) are known keys: those profiles are refused for what they ask,
 * not as typos. A key that another value of the same profile interpolates (`${base}/jobs`) is a
 * variable, not a typo. The README's env.toml reference lists exactly these keys
 * (tests/cli_validate.test.ts checks both directions).
 */
import { closestMatch, UsageError } from "./errors.ts";
import { locateKey } from "./toml.ts";

/** Who reads a key. */
export type ProfileKeyGroup =
  | "profile" // every executor
  | "slurm"
  | "squash"
  | "ssh" // tunnel = "ssh" (lib/exec/ssh.ts)
  | "docker"
  | "dgxcloud"
  | "lepton"
  | "original"; // read by the Python original, accepted and not used by nemotron

/** One known profile key: who reads it and what it means (one line, for the README). */
export interface ProfileKey {
  readonly key: string;
  readonly group: ProfileKeyGroup;
  readonly meaning: string;
}

const k = (key: string, group: ProfileKeyGroup, meaning: string): ProfileKey =>
  Object.freeze({ key, group, meaning });

/** Every profile key nemotron knows, in README order. */
export const PROFILE_KEYS: readonly ProfileKey[] = Object.freeze([
  // ---- every executor ----
  k("extends", "profile", "name of the parent profile this one is merged over"),
  k("executor", "profile", "`slurm` (default with --run/--batch) or `local`; others are refused"),
  k(
    "container_image",
    "profile",
    'container image (or `.sqsh` path) for the job; `""` = bare metal',
  ),
  k("container", "profile", "legacy name of `container_image` (used when that is unset)"),
  k("nodes", "profile", "number of nodes (default: the recipe's `resources.nodes`)"),
  k("gpus_per_node", "profile", "GPUs per node (`--gpus-per-node`; default: the recipe's)"),
  k(
    "ntasks_per_node",
    "profile",
    "default of `nproc_per_node`; Slurm runs one task per node for every launch",
  ),
  k("nproc_per_node", "profile", "torchrun worker processes per node"),
  k("env_vars", "profile", "table of environment variables for the script (literal strings)"),
  k("startup_commands", "profile", "list of shell commands run before the script (each task)"),
  k("mounts", "profile", "list of container mounts `SRC[:DST[:FLAGS]]`"),
  k(
    "remote_job_dir",
    "profile",
    "directory on the shared filesystem for job dirs (required on Slurm)",
  ),
  k("squash", "squash", "`native` (default) or `enroot`: how images become `.sqsh`"),
  // ---- Slurm ----
  k("account", "slurm", "`--account`"),
  k("partition", "slurm", "`--partition`"),
  k("run_partition", "slurm", "partition used with `--run` (wins over `partition`)"),
  k("batch_partition", "slurm", "partition used with `--batch` (wins over `partition`)"),
  k("time", "slurm", "`--time` (default `04:00:00`)"),
  k("qos", "slurm", "`--qos`"),
  k("cpus_per_task", "slurm", "`--cpus-per-task`, on the `#SBATCH` line and the `srun` line"),
  k("cpus_per_gpu", "slurm", "`--cpus-per-gpu`"),
  k("gpus_per_task", "slurm", "`--gpus-per-task`"),
  k("mem", "slurm", "`--mem`"),
  k("mem_per_gpu", "slurm", "`--mem-per-gpu`"),
  k("mem_per_cpu", "slurm", "`--mem-per-cpu`"),
  k("exclusive", "slurm", "`true` → `--exclusive`, a string → `--exclusive=VALUE`"),
  k("gres", "slurm", "`--gres`"),
  k("constraint", "slurm", "`--constraint`"),
  k("exclude", "slurm", "`--exclude` (nodes not to use)"),
  k("nodelist", "slurm", "`--nodelist` (nodes to use)"),
  k("reservation", "slurm", "`--reservation`"),
  k("comment", "slurm", "`--comment`"),
  k("signal", "slurm", "`--signal` (e.g. `B:USR1@300`)"),
  k("network", "slurm", "`--network` (e.g. `sharp`)"),
  k("dependency", "slurm", "`--dependency` as `TYPE:ID[:ID…]` (e.g. `afterany:123`)"),
  k("array", "slurm", "`--array`: refused for recipes (one job dir per recipe run)"),
  k("job_name_prefix", "slurm", "prefix of the Slurm job name"),
  k("additional_parameters", "slurm", 'table of extra `#SBATCH` flags (`{ mail_type = "END" }`)'),
  k("srun_args", "slurm", "list of extra `srun` arguments (each quoted as one word)"),
  k(
    "srun_wait",
    "slurm",
    "`srun --wait=N`: seconds to wait for the other tasks after one ends (default 60, 0 = off)",
  ),
  k("lustre_mount", "slurm", "extra container mount for shared storage (default none)"),
  k("setup_lines", "slurm", "raw shell lines in the batch script before `srun`"),
  k("retries", "slurm", "requeue a failed job up to N times (default 0)"),
  k("rdzv_port", "slurm", "torchrun rendezvous port on multi-node jobs (default 29500)"),
  k("sbatch_template", "slurm", "your own Jinja sbatch template (relative to env.toml)"),
  k(
    "tunnel",
    "slurm",
    "`local` (default) or `ssh`: submit through OpenSSH (see ## Submit from a laptop)",
  ),
  k(
    "auto_resume",
    "slurm",
    "resume a long run after a time limit or preemption (see ## Long runs)",
  ),
  k("max_restarts", "slurm", "how often a long run is restarted at most (see ## Long runs)"),
  k(
    "signal_before",
    "slurm",
    "how long before the time limit the job is signalled (see ## Long runs)",
  ),
  k("max_package_mb", "slurm", "size limit of the code package in MB (see ## Packaging)"),
  k("job_dir_group", "slurm", "group that owns job dirs, for shared job dirs (see ## Slurm)"),
  k("python", "slurm", "interpreter for torchrun (`<python> -m torch.distributed.run`)"),
  k("torchrun_args", "slurm", "list of extra torchrun flags, after nemotron's"),
  // ---- Ray clusters (launch = "ray" on several nodes; see ## Slurm, Ray clusters) ----
  k("ray_port", "slurm", "Ray head (GCS) port (default 6379)"),
  k("ray_dashboard_port", "slurm", "Ray dashboard port (default 8265)"),
  k("ray_client_server_port", "slurm", "Ray client server port (default 10001)"),
  k("ray_node_manager_port", "slurm", "Ray node manager port, every node (default 53001)"),
  k("ray_object_manager_port", "slurm", "Ray object manager port, every node (default 53003)"),
  k("ray_min_worker_port", "slurm", "lowest Ray worker port (default 54001)"),
  k("ray_max_worker_port", "slurm", "highest Ray worker port (default 54257)"),
  k("ray_head_timeout", "slurm", "seconds until the Ray head must answer (default 300)"),
  k("ray_join_timeout", "slurm", "seconds until every Ray worker must join (default 300)"),
  k("ray_status_timeout", "slurm", "seconds one `ray status` call may take (default 30)"),
  k("ray_stop_timeout", "slurm", "seconds between SIGTERM and SIGKILL at teardown (default 10)"),
  k("ray_template", "slurm", "your own Jinja Ray cluster template (relative to env.toml)"),
  // ---- image squashing (squash = "enroot") ----
  k("build_partition", "squash", "partition of the `salloc` that runs `enroot import`"),
  k("build_time", "squash", "time limit of that `salloc`"),
  k("build_image", "squash", "image used to build (kit builds)"),
  k("build_cache_dir", "squash", "enroot cache directory for builds"),
  k("build_include_gpus", "squash", "request GPUs for the build allocation"),
  k("build_gpus_per_node", "squash", "GPUs requested when `build_include_gpus`"),
  k("build_registry", "squash", "registry that kit builds push to (original; not used)"),
  // ---- tunnel = "ssh" (## Submit from a laptop (SSH tunnel)) ----
  k("host", "ssh", "login host name or `Host` alias of ~/.ssh/config (required)"),
  k("user", "ssh", "`ssh -l` (default: ~/.ssh/config)"),
  k("port", "ssh", "`ssh -p` (default: ~/.ssh/config)"),
  k("identity", "ssh", "private key file, `ssh -i` (default: ~/.ssh/config, the agent)"),
  k("pre_command", "ssh", "run before every remote command, e.g. `module load slurm`"),
  // ---- docker executor (refused) ----
  k("runtime", "docker", "container runtime (default `nvidia`)"),
  k("ipc_mode", "docker", "IPC mode"),
  k("shm_size", "docker", "shared memory size"),
  // ---- dgxcloud executor (refused) ----
  k("base_url", "dgxcloud", "DGX Cloud API URL"),
  k("kube_apiserver_url", "dgxcloud", "Kubernetes API server URL"),
  k("client_id", "dgxcloud", "API client id (`app_id` is the legacy name)"),
  k("app_id", "dgxcloud", "legacy name of `client_id`"),
  k("client_secret", "dgxcloud", "API client secret (`app_secret` is the legacy name)"),
  k("app_secret", "dgxcloud", "legacy name of `client_secret`"),
  k("project_name", "dgxcloud", "project"),
  k("pvc_nemo_run_dir", "dgxcloud", "job dir on a PVC"),
  k("nprocs_per_node", "dgxcloud", "processes per node"),
  k("pvcs", "dgxcloud", "PVCs to mount"),
  k("distributed_framework", "dgxcloud", "distributed framework"),
  k("dgxcloud_max_args_chars", "dgxcloud", "argument length limit"),
  // ---- lepton executor (refused) ----
  k("nemo_run_dir", "lepton", "job dir on Lepton storage"),
  k("resource_shape", "lepton", "resource shape"),
  k("node_group", "lepton", "node group"),
  k("node_reservation", "lepton", "node reservation"),
  k("shared_memory_size", "lepton", "shared memory size"),
  k("image_pull_secrets", "lepton", "image pull secrets"),
  k("ray_version", "lepton", "Ray version"),
  k("pre_launch_commands", "lepton", "commands before launch"),
  k("existing_ray_cluster", "lepton", "Ray cluster to reuse"),
  k("custom_spec", "lepton", "custom spec (also dgxcloud)"),
  k("launcher", "lepton", "launcher (also dgxcloud)"),
  // ---- read by the Python original, accepted and not used ----
  k(
    "run_command",
    "original",
    "original's command override (not used: use the runspec's `run.cmd`)",
  ),
  k("workdir", "original", "original's working directory (not used: the runspec's `run.workdir`)"),
  k("pre_ray_start_commands", "original", "original's Ray start hooks (not used)"),
  k("repo_root", "original", "original's repository root for packaging (not used)"),
  k("workspace", "original", "original's workspace (not used)"),
  k("pip_extras", "original", "original's extra pip packages (not used)"),
]);

/** The known key names. */
export const PROFILE_KEY_NAMES: readonly string[] = Object.freeze(PROFILE_KEYS.map((x) => x.key));

/** Names that `${name}` / `${name.x}` interpolations in `value` refer to (sibling keys). */
function referencedNames(value: unknown, into: Set<string>): void {
  if (typeof value === "string") {
    for (const m of value.matchAll(/\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*[.}\[]/g)) into.add(m[1]);
  } else if (Array.isArray(value)) { for (const v of value) referencedNames(v, into); }
  else if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    for (const v of Object.values(value)) referencedNames(v, into);
  }
}

/**
 * Check the keys of one profile's tables (the `extends` chain, child first, as raw TOML tables):
 * the first unknown key is a UsageError at its env.toml line, with the source line and the closest
 * known key. `lines` is the env.toml text split into lines.
 */
export function checkProfileKeys(
  file: string,
  lines: readonly string[],
  chain: readonly { readonly name: string; readonly table: Readonly<Record<string, unknown>> }[],
): void {
  const referenced = new Set<string>();
  for (const { table } of chain) referencedNames(table, referenced);
  for (const { name, table } of chain) {
    for (const key of Object.keys(table)) {
      if (PROFILE_KEY_NAMES.includes(key) || referenced.has(key)) continue;
      const line = locateKey(lines, name, key);
      const near = closestMatch(key, PROFILE_KEY_NAMES);
      const source = line !== undefined ? `\n  ${line} | ${lines[line - 1]}` : "";
      throw new UsageError(`unknown key '${key}' in profile [${name}]${source}`, {
        location: { file, line },
        hint: near !== undefined
          ? `did you mean ${near}? (the env.toml reference in the README lists every key)`
          : "remove it, or see the env.toml reference in the README for the keys nemotron knows",
      });
    }
  }
}

/**
 * Keys of `profile` that the chosen executor does not read (another executor's, an ssh tunnel's
 * without `tunnel = "ssh"`, the original's unused ones, Slurm keys in a local profile), each with
 * who reads it: a warning for the user, so nothing is dropped silently.
 */
export function ignoredProfileKeys(
  profile: Readonly<Record<string, unknown>>,
  executor: "local" | "slurm",
): { key: string; reader: string }[] {
  const out: { key: string; reader: string }[] = [];
  for (const key of Object.keys(profile)) {
    const known = PROFILE_KEYS.find((k) => k.key === key);
    if (!known) continue;
    const g = known.group;
    const reader = g === "docker" || g === "dgxcloud" || g === "lepton"
      ? `the ${g} executor`
      : g === "ssh" && profile.tunnel !== "ssh"
      ? 'an ssh tunnel (tunnel = "ssh")'
      : g === "original"
      ? "the Python original only"
      : (g === "slurm" || g === "squash") && executor === "local"
      ? "the slurm executor"
      : undefined;
    if (reader !== undefined) out.push({ key, reader });
  }
  return out;
}
