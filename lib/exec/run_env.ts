/**
 * The environment variables a job receives (reference §1.10), in order:
 * NEMO_RUN_DIR (= remote_job_dir), HF_HOME (local $HF_HOME, else <remote_job_dir>/hf), HF_TOKEN (from
 * the local Hugging Face login), WANDB_API_KEY (from the local W&B login), WANDB_* from `run.wandb`,
 * defaults for WANDB_JOB_TYPE/WANDB_NAME, then the profile's `env_vars` override everything.
 *
 * No network call is made (the Python CLI validates the W&B key online; we do not). Secret-looking
 * names are split off by the caller with `isSecretName` and never written anywhere visible.
 */
import * as path from "../path.ts";
import { secretArgs } from "../secrets.ts";
import { shellQuote } from "../shell.ts";

type Profile = Readonly<Record<string, unknown>>;

/** Read a file, or undefined when it does not exist or cannot be read. */
function readIfExists(file: string): string | undefined {
  try {
    return Deno.readTextFileSync(file);
  } catch {
    return undefined;
  }
}

/** The Hugging Face token of the local login: $HF_TOKEN, $HF_TOKEN_PATH, $HF_HOME/token, ~/.cache/huggingface/token. */
export function localHfToken(
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
): string | undefined {
  const direct = env("HF_TOKEN");
  if (direct) return direct;
  const home = env("HOME") ?? "";
  const file = env("HF_TOKEN_PATH") ??
    path.join(
      env("HF_HOME") ??
        path.join(env("XDG_CACHE_HOME") ?? path.join(home, ".cache"), "huggingface"),
      "token",
    );
  const token = readIfExists(file)?.trim();
  return token ? token : undefined;
}

/** The W&B API key of the local login: $WANDB_API_KEY, else the `api.wandb.ai` entry of ~/.netrc. */
export function localWandbKey(
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
): string | undefined {
  const direct = env("WANDB_API_KEY");
  if (direct) return direct;
  const netrc = readIfExists(env("NETRC") ?? path.join(env("HOME") ?? "", ".netrc"));
  if (!netrc) return undefined;
  const tokens = netrc.split(/\s+/).filter(Boolean);
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === "machine" && tokens[i + 1] === "api.wandb.ai") {
      for (let j = i + 2; j < tokens.length && tokens[j] !== "machine"; j += 2) {
        if (tokens[j] === "password") return tokens[j + 1];
      }
    }
  }
  return undefined;
}

function str(v: unknown): string | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (Array.isArray(v)) return v.map(String).join(",");
  return String(v);
}

/**
 * Build the job's environment variables. `wandb` is the job config's `run.wandb` (plain data),
 * `recipeName` the runspec name (e.g. `nano3/pretrain`).
 */
export function buildRunEnv(opts: {
  readonly profile?: Profile;
  readonly wandb?: Readonly<Record<string, unknown>>;
  readonly recipeName: string;
  readonly env?: (k: string) => string | undefined;
}): Record<string, string> {
  const env = opts.env ?? ((k: string) => Deno.env.get(k));
  const profile = opts.profile ?? {};
  const out: Record<string, string> = {};
  const rjd = str(profile.remote_job_dir);
  if (rjd) out.NEMO_RUN_DIR = rjd;
  const hfHome = env("HF_HOME");
  if (hfHome) out.HF_HOME = hfHome;
  else if (rjd) out.HF_HOME = path.join(rjd, "hf");
  const hfToken = localHfToken(env);
  if (hfToken) out.HF_TOKEN = hfToken;
  const wandbKey = localWandbKey(env);
  if (wandbKey) out.WANDB_API_KEY = wandbKey;
  const w = opts.wandb ?? {};
  const set = (k: string, v: unknown) => {
    const s = str(v);
    if (s !== undefined) out[k] = s;
  };
  set("WANDB_ENTITY", w.entity);
  if (str(w.project) !== undefined) {
    set("WANDB_PROJECT", w.project);
    out.WANDB_ENABLED = "true";
  }
  set("WANDB_NAME", w.run_name ?? w.name);
  set("WANDB_GROUP", w.group);
  set("WANDB_JOB_TYPE", w.job_type);
  set("WANDB_TAGS", w.tags);
  if (out.WANDB_PROJECT) {
    out.WANDB_JOB_TYPE ??= opts.recipeName;
    out.WANDB_NAME ??= opts.recipeName.replaceAll("/", "-");
  }
  const extra = profile.env_vars;
  if (extra && typeof extra === "object" && !Array.isArray(extra)) {
    for (const [k, v] of Object.entries(extra)) {
      if (v !== null && v !== undefined) {
        out[k] = typeof v === "object" ? JSON.stringify(v) : String(v);
      }
    }
  }
  return out;
}

/**
 * Secret passthrough arguments (`--password=X`, `--hf-token X`, `DB_PASS=X`: option names the one
 * rule of lib/secrets.ts calls secret) never enter a script, a job file or a launcher's argv: the
 * value moves to an environment variable `NEMOTRON_SECRET_ARG_<n>` (itself secret-named, so it goes
 * to the job's private env file, loaded with tracing off) and the token becomes a reference,
 * `--password=${NEMOTRON_SECRET_ARG_1}`, that the task expands right before it starts the script
 * (`SECRET_ARG_EXPANDER`, or the shell of a `bash -c` command line). The script still receives the
 * real value.
 */
export const SECRET_ARG_PREFIX = "NEMOTRON_SECRET_ARG_";

const SECRET_REF = /^([\s\S]*)\$\{(NEMOTRON_SECRET_ARG_[0-9]+)\}$/;

/** `tokens` with secret values replaced by `${NEMOTRON_SECRET_ARG_<n>}` references, and the values. */
export function hideSecretArgs(
  tokens: readonly string[],
): { argv: string[]; env: Record<string, string> } {
  const argv = [...tokens];
  const env: Record<string, string> = {};
  secretArgs(tokens).forEach((s, i) => {
    const name = `${SECRET_ARG_PREFIX}${i + 1}`;
    env[name] = s.value;
    argv[s.index] = `${s.prefix}\${${name}}`;
  });
  return { argv, env };
}

/** True when some token is a secret-argument reference made by `hideSecretArgs`. */
export function hasSecretArgRefs(tokens: readonly string[]): boolean {
  return tokens.some((t) => SECRET_REF.test(t));
}

/**
 * A bash program (`bash -c PROGRAM nemotron-args ARGV…`) that replaces each argument ending in a
 * `${NEMOTRON_SECRET_ARG_<n>}` reference by its prefix plus that variable's value, then execs the
 * result: the value exists only in the environment until the script's own argv.
 */
export const SECRET_ARG_EXPANDER = '_a=(); for _x in "$@"; do ' +
  "if [[ $_x =~ ^(.*)\\$\\{(NEMOTRON_SECRET_ARG_[0-9]+)\\}$ ]]; then " +
  '_a+=("${BASH_REMATCH[1]}${!BASH_REMATCH[2]}"); else _a+=("$_x"); fi; done; exec "${_a[@]}"';

/**
 * Shell words for tokens from `hideSecretArgs`, for a `bash -c` command line: a reference becomes
 * `'<prefix>'"${NEMOTRON_SECRET_ARG_<n>}"` (expanded by that shell), everything else is quoted.
 */
export function shellJoinSecretRefs(tokens: readonly string[]): string {
  return tokens.map((t) => {
    const m = SECRET_REF.exec(t);
    if (!m) return shellQuote(t);
    return `${m[1] === "" ? "" : shellQuote(m[1])}"\${${m[2]}}"`;
  }).join(" ");
}
