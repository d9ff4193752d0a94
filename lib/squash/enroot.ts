/**
 * The enroot path: `enroot import` run on a compute node through `salloc … srun`, the way the
 * reference CLI does it (nemotron-features §1.9), with the `build_*` profile keys.
 */
import { shellJoin, shellQuote } from "../shell.ts";
import type { Profile } from "../env_toml.ts";
import { normalizeContainerSource } from "./reference.ts";

export const DEFAULT_BUILD_TIME = "04:00:00";
export const DEFAULT_BUILD_IMAGE = "quay.io/podman/stable:v5.3";

function str(profile: Profile | undefined, key: string): string | undefined {
  const v = profile?.[key];
  if (v === undefined || v === null || v === "" || v === false) return undefined;
  return String(v);
}

/** `build_partition` > `run_partition` > `partition`. */
export function resolveBuildPartition(profile: Profile | undefined): string | undefined {
  return str(profile, "build_partition") ?? str(profile, "run_partition") ??
    str(profile, "partition");
}

/** `build_time` > `time` > default (04:00:00). */
export function resolveBuildTime(
  profile: Profile | undefined,
  fallback = DEFAULT_BUILD_TIME,
): string {
  return str(profile, "build_time") ?? str(profile, "time") ?? fallback;
}

/** `build_image` > default (empty falls back). */
export function resolveBuildImage(
  profile: Profile | undefined,
  fallback = DEFAULT_BUILD_IMAGE,
): string {
  return str(profile, "build_image") ?? fallback;
}

/** `build_cache_dir` > default (empty or missing falls back). */
export function resolveBuildCacheDir(profile: Profile | undefined, fallback: string): string {
  return str(profile, "build_cache_dir") ?? fallback;
}

/**
 * salloc arguments: `[--account=A] [--partition=P] --nodes=1 --ntasks-per-node=1
 * [--gpus-per-node=G] --time=T`. GPUs only when `includeGpus`: `build_gpus_per_node` if the key
 * exists, else `gpus_per_node` (a falsy value omits the flag).
 */
export function buildSallocArgs(profile: Profile | undefined, includeGpus = true): string[] {
  const args: string[] = [];
  const account = str(profile, "account");
  if (account) args.push(`--account=${account}`);
  const partition = resolveBuildPartition(profile);
  if (partition) args.push(`--partition=${partition}`);
  args.push("--nodes=1", "--ntasks-per-node=1");
  if (includeGpus) {
    const g = profile && "build_gpus_per_node" in profile
      ? profile.build_gpus_per_node
      : profile?.gpus_per_node;
    if (g) args.push(`--gpus-per-node=${g}`);
  }
  args.push(`--time=${resolveBuildTime(profile)}`);
  return args;
}

/** The command that imports `image` into `output` with enroot on a compute node. */
export interface EnrootImport {
  /** argv to execute (starts with `salloc`). */
  readonly argv: readonly string[];
  /** The same as one shell command line, for display and dry runs. */
  readonly display: string;
}

/**
 * `salloc ARGS srun --export=ALL bash -c 'export ENROOT_RUNTIME_PATH=D/.enroot
 * ENROOT_CACHE_PATH=D/.enroot/cache ENROOT_DATA_PATH=D/.enroot/data && mkdir -p … && enroot import
 * --output OUT SOURCE'` with D = `workDir` (the profile's remote_job_dir). GPUs only when the
 * profile sets `build_include_gpus`.
 */
export function renderEnrootImport(
  image: string,
  output: string,
  workDir: string,
  profile: Profile | undefined,
): EnrootImport {
  const e = `${workDir}/.enroot`;
  const inner = [
    `export ENROOT_RUNTIME_PATH=${shellQuote(e)} ENROOT_CACHE_PATH=${shellQuote(`${e}/cache`)}` +
    ` ENROOT_DATA_PATH=${shellQuote(`${e}/data`)}`,
    `mkdir -p ${shellQuote(`${e}/cache`)} ${shellQuote(`${e}/data`)}`,
    `enroot import --output ${shellQuote(output)} ${shellQuote(normalizeContainerSource(image))}`,
  ].join(" && ");
  const includeGpus = Boolean(profile?.build_include_gpus);
  const argv = [
    "salloc",
    ...buildSallocArgs(profile, includeGpus),
    "srun",
    "--export=ALL",
    "bash",
    "-c",
    inner,
  ];
  return { argv, display: shellJoin(argv) };
}
