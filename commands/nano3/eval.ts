/**
 * `nemotron nano3 eval`: evaluate the final model with nemo-evaluator-launcher (stage 3). There is
 * no script: the config (stage3_eval/config) is handed to the launcher, which deploys the model and
 * runs the benchmark tasks itself (on Slurm, per `execution`). nemotron builds the job config,
 * injects the W&B variable names when results are exported to W&B, squashes the deployment and
 * proxy images for Slurm, resolves `${run.*}` and `${art:…}`, writes `job.yaml` + `eval.yaml`, and
 * runs `nemo-evaluator-launcher run --config eval.yaml [-t TASK]…`.
 *
 * With a `tunnel = "ssh"` profile the launcher still runs here (it logs in to the cluster itself,
 * as `execution.username@execution.hostname`, filled from the profile when unset), and the images
 * are the cluster's: `<remote_job_dir>/<name>.sqsh` there, reused or imported there with enroot
 * over ssh (lib/exec/ssh_squash.ts), never squashed on or uploaded from this machine.
 *
 * Script arguments: only `-t/--task NAME` (repeatable) are accepted.
 */
import { Command } from "../../lib/cli/command.ts";
import { type CliContext, leafTokens, parseRecipeArgs } from "../../lib/cli/args.ts";
import { renderRecipeHelp } from "../../lib/cli/recipe_help.ts";
import { artLookupByRef } from "../../lib/artifacts/fields.ts";
import { registryFromEnvironment } from "../../lib/artifacts/root.ts";
import { applyDotlist } from "../../lib/config/dotlist.ts";
import { resolveTree, resolveValue } from "../../lib/config/interpolate.ts";
import { buildJobConfig, extractTrainConfig, writeJobFiles } from "../../lib/config/job.ts";
import { createJobDir } from "../../lib/config/jobdir.ts";
import { configNames, findConfigFile, loadConfig } from "../../lib/config/load.ts";
import { artResolver } from "../../lib/config/resolvers.ts";
import { type ConfigMap, getPath } from "../../lib/config/tree.ts";
import {
  loadEnvFile,
  loadEnvFileForHelp,
  type Profile,
  profileFrom,
  profileNames,
  specialSection,
} from "../../lib/env_toml.ts";
import { RuntimeFailure, type SourceLocation, UsageError } from "../../lib/errors.ts";
import { runLocal } from "../../lib/exec/local_run.ts";
import { profileLocator } from "../../lib/exec/slurm.ts";
import { SshTunnel, tunnelLabel, type TunnelSpec, tunnelSpecOf } from "../../lib/exec/ssh.ts";
import {
  clusterFileExists,
  clusterSqshPath,
  ensureClusterSqsh,
  isSqshPath,
} from "../../lib/exec/ssh_squash.ts";
import { buildRunEnv } from "../../lib/exec/run_env.ts";
import * as path from "../../lib/path.ts";
import { unpackRecipes } from "../../lib/recipe_files.ts";
import {
  executorFor,
  localJobsBase,
  localRunFailed,
  plannedJobDir,
  printDryRun,
  runSettingsOf,
  scriptArgsNote,
} from "../../lib/recipe_run.ts";
import { ensureSquashedImage, squashMode } from "../../lib/squash/ensure.ts";
import { nano3Eval } from "../../recipes/index.ts";

const COMMAND = "nemotron nano3 eval";
const LAUNCHER = "nemo-evaluator-launcher";
/** Config keys holding container images the launcher deploys (squashed for Slurm). */
const IMAGE_KEYS = ["deployment.image", "execution.proxy.image"];

export function nano3EvalCommand(cli: CliContext): Command {
  return new Command("eval")
    .description("Evaluate the model with nemo-evaluator-launcher (stage3)")
    .allowUnknownOption().allowExcessArguments().helpOption(false)
    .action(async () => {
      const code = await runNano3Eval(cli, leafTokens(cli, 2));
      if (code !== 0) Deno.exitCode = code;
    });
}

/** `-t/--task` values of the script arguments; anything else is a usage error. */
export function taskFlags(passthrough: readonly string[]): string[] {
  const tasks: string[] = [];
  const unknown: string[] = [];
  for (let i = 0; i < passthrough.length; i++) {
    const t = passthrough[i];
    if ((t === "-t" || t === "--task") && passthrough[i + 1] !== undefined) {
      tasks.push(passthrough[++i]);
    } else if (t.startsWith("--task=")) tasks.push(t.slice(7));
    else unknown.push(t);
  }
  if (unknown.length) {
    throw new UsageError(
      `Unknown arguments: ${
        unknown.join(" ")
      }. Only -t/--task flags are supported for passthrough.`,
      { hint: "select tasks with -t NAME (repeatable); change settings with key=value overrides" },
    );
  }
  return tasks;
}

/**
 * W&B export configured: `execution.auto_export.destinations` has wandb, or `export.wandb` is set
 * (`export: {wandb: null}` switches it off, as in the original).
 */
function needsWandb(cfg: ConfigMap): boolean {
  const dest = getPath(cfg, "execution.auto_export.destinations");
  const wandb = getPath(cfg, "export.wandb");
  return (Array.isArray(dest) && dest.includes("wandb")) || (wandb !== undefined && wandb !== null);
}

/** Add `NAME: NAME` mappings (the launcher forwards these variables) without overwriting. */
function injectEnvNames(cfg: ConfigMap, dotted: string, names: readonly string[]): void {
  let node: ConfigMap = cfg;
  for (const key of dotted.split(".")) {
    let next = node.get(key);
    if (!(next instanceof Map)) {
      next = new Map();
      node.set(key, next);
    }
    node = next;
  }
  for (const n of names) if (!node.has(n)) node.set(n, n);
}

/** The eval config as the launcher gets it: `${art:…}` and every interpolation resolved, no `run`. */
function resolveForLauncher(withRefs: ConfigMap): ConfigMap {
  const registry = registryFromEnvironment();
  const resolved = resolveTree(withRefs, {
    resolvers: { art: artResolver(artLookupByRef(registry)) },
  });
  resolved.delete("run");
  return resolved;
}

/** Replace the image at the dotted `key` (an existing string value) with its `.sqsh` path. */
function setImage(job: ConfigMap, key: string, sqsh: string): void {
  const parts = key.split(".");
  (getPath(job, parts.slice(0, -1).join(".")) as ConfigMap).set(parts.at(-1)!, sqsh);
}

/** A launcher setting nobody set: absent, null, empty or OmegaConf's `???`. */
function unset(v: unknown): boolean {
  return v === undefined || v === null || v === "" || v === "???";
}

/** What `ssh -G HOST` (no connection) says: the user, port and identity files ssh would use. */
async function sshConfigFor(host: string): Promise<
  { user?: string; port?: number; identities: string[] } | undefined
> {
  try {
    const out = await new Deno.Command("ssh", {
      args: ["-G", "--", host],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) return undefined;
    const text = new TextDecoder().decode(out.stdout);
    const home = Deno.env.get("HOME") ?? "";
    return {
      user: /^user (.+)$/m.exec(text)?.[1],
      port: Number(/^port (\d+)$/m.exec(text)?.[1]) || undefined,
      identities: [...text.matchAll(/^identityfile (.+)$/gm)].map((m) =>
        m[1].startsWith("~/") ? path.join(home, m[1].slice(2)) : m[1]
      ),
    };
  } catch {
    return undefined; // no ssh here: connecting says so
  }
}

/**
 * nemo-evaluator-launcher's Slurm executor logs in to the cluster itself (`ssh USER@HOSTNAME` with
 * `execution.hostname` / `execution.username`). Through a tunnel profile, unset ones are filled so
 * it reaches the cluster nemotron reaches: hostname = the profile's `host` (a Host alias of
 * ~/.ssh/config works for both), username = the profile's `user`, else the user ssh logs in as
 * for that host (`ssh -G`, which does not connect). The launcher passes no port or key to ssh: a
 * profile `port` / `identity` that ~/.ssh/config does not also give for the host is a warning.
 */
async function fillLauncherLogin(job: ConfigMap, spec: TunnelSpec): Promise<string[]> {
  const type = getPath(job, "execution.type");
  if (type !== undefined && type !== "slurm") return [];
  let execution = job.get("execution");
  if (!(execution instanceof Map)) job.set("execution", execution = new Map());
  const needUser = spec.user === undefined && unset(execution.get("username"));
  const cfg = needUser || spec.port !== undefined || spec.identity !== undefined
    ? await sshConfigFor(spec.host)
    : undefined;
  const filled: string[] = [];
  if (unset(execution.get("hostname"))) {
    execution.set("hostname", spec.host);
    filled.push(`execution.hostname=${spec.host}`);
  }
  const user = spec.user ?? cfg?.user;
  if (unset(execution.get("username")) && user !== undefined) {
    execution.set("username", user);
    filled.push(`execution.username=${user}`);
  }
  const login = `ssh ${execution.get("username") ?? "$USER"}@${execution.get("hostname")}`;
  if (spec.port !== undefined && cfg?.port !== spec.port) {
    console.error(
      `warning: nemo-evaluator-launcher logs in with \`${login}\`, which does not use the profile's port ${spec.port}: add \`Port ${spec.port}\` under \`Host ${spec.host}\` in ~/.ssh/config`,
    );
  }
  if (spec.identity !== undefined && !cfg?.identities.includes(spec.identity)) {
    console.error(
      `warning: nemo-evaluator-launcher logs in with \`${login}\`, which does not use the profile's identity ${spec.identity}: add \`IdentityFile ${spec.identity}\` under \`Host ${spec.host}\` in ~/.ssh/config (or load the key with ssh-add)`,
    );
  }
  return filled.length ? [`launcher login (from the profile): ${filled.join(" ")}`] : [];
}

/**
 * The launcher creates `execution.output_dir` on the cluster: the recipe's default
 * (`${oc.env:PWD}/output/…`) is a path of this machine there. Say so (a warning: the same path may
 * exist on the cluster too).
 */
function warnLaptopOutputDir(job: ConfigMap, spec: TunnelSpec): void {
  let dir: unknown;
  try {
    dir = resolveValue(job, "execution.output_dir");
  } catch {
    return; // unresolvable here: the launcher says so
  }
  const cwd = Deno.cwd();
  if (typeof dir === "string" && (dir === cwd || dir.startsWith(cwd + "/"))) {
    console.error(
      `warning: execution.output_dir ${dir} is in this machine's working directory; nemo-evaluator-launcher creates it on ${
        tunnelLabel(spec)
      }: set execution.output_dir=/path/on/the/cluster`,
    );
  }
}

/**
 * The launcher's images on a cluster behind an ssh tunnel: each registry image (not a `.sqsh`)
 * becomes `<remote_job_dir>/<name>.sqsh` there — an existing one, or one `enroot import` made
 * there (`squash = "enroot"`, lib/exec/ssh_squash.ts); never squashed or uploaded from here. A
 * dry run does not connect and only says where they are looked for. Before any image, one ssh
 * call expands `~` in remote_job_dir on the cluster and checks that no other user there could
 * swap it. Nothing is written on this machine.
 */
async function clusterImages(
  job: ConfigMap,
  spec: TunnelSpec,
  profile: Profile,
  args: { profile?: string; dryRun: boolean; forceSquash: boolean },
  locate: ((key: string) => SourceLocation | undefined) | undefined,
  notes: string[],
): Promise<void> {
  const wanted = IMAGE_KEYS.flatMap((key) => {
    const image = getPath(job, key);
    return typeof image === "string" && !isSqshPath(image) && !image.includes("${")
      ? [{ key, image }]
      : [];
  });
  if (!wanted.length) return;
  const label = tunnelLabel(spec);
  const rjd = profile.remote_job_dir;
  if (typeof rjd !== "string" || rjd === "") {
    throw new UsageError(
      `profile '${args.profile}': remote_job_dir is required with tunnel = "ssh" (the .sqsh of ${
        wanted.map((w) => w.key).join(" and ")
      } is looked for there on the cluster)`,
      {
        location: locate?.("remote_job_dir"),
        hint:
          "set remote_job_dir to a directory on the cluster's shared filesystem, or set the image to a .sqsh path on the cluster",
      },
    );
  }
  if (!(rjd.startsWith("/") || rjd === "~" || rjd.startsWith("~/"))) {
    throw new UsageError(`profile '${args.profile}': remote_job_dir ${rjd} is not absolute`, {
      location: locate?.("remote_job_dir"),
      hint: "remote_job_dir must be an absolute path (or start with ~/) on the cluster",
    });
  }
  squashMode(profile); // a bad `squash` value is an error before connecting
  if (args.dryRun) {
    for (const { key, image } of wanted) {
      notes.push(
        `${key}: ${image} → ${
          clusterSqshPath(image, rjd)
        } on ${label} (not checked in a dry run: ` +
          `must exist there, or squash = "enroot" imports it there)`,
      );
    }
    return;
  }
  const { checkRemoteJobDirOverSsh, probeRemote } = await import(
    "../../lib/exec/ssh_submit.ts"
  );
  const tunnel = await SshTunnel.open(spec);
  const probe = await probeRemote(tunnel, rjd);
  checkRemoteJobDirOverSsh(probe, label);
  const remoteProfile = { ...profile, remote_job_dir: probe.remoteJobDir };
  for (const { key, image } of wanted) {
    const sqsh = await ensureClusterSqsh(tunnel, {
      image,
      remoteJobDir: probe.remoteJobDir,
      profile: remoteProfile,
      force: args.forceSquash,
      exists: () => clusterFileExists(tunnel, clusterSqshPath(image, probe.remoteJobDir)),
      setting: key,
    });
    notes.push(`${key}: ${image} → ${sqsh} on ${label}`);
    setImage(job, key, sqsh);
  }
}

async function runNano3Eval(cli: CliContext, tokens: readonly string[]): Promise<number> {
  // 1. Arguments: --stage is rejected, script arguments are -t/--task only.
  const args = parseRecipeArgs(tokens, cli);
  const envFile = args.help ? loadEnvFileForHelp() : loadEnvFile();
  const files = Object.fromEntries(
    Object.entries(nano3Eval.configs).map(([n, t]) => [`${nano3Eval.configDir}/${n}`, t]),
  );
  const unpacked = await unpackRecipes(files, { temporary: args.dryRun || args.help });
  try {
    const configDir = path.join(unpacked.dir, nano3Eval.configDir);
    if (args.help) {
      console.log(
        renderRecipeHelp({
          command: COMMAND,
          description:
            "Evaluate the final model with nemo-evaluator-launcher. Script arguments: -t/--task NAME (repeatable). " +
            'With a tunnel = "ssh" profile the images are looked for (or squashed with enroot) on the cluster, ' +
            "and an unset execution.hostname / execution.username is the profile's host / user.",
          configNames: configNames(configDir),
          artifacts: [{ key: "model", description: "Model checkpoint artifact to evaluate" }],
          profiles: envFile ? { file: envFile.path, names: profileNames(envFile) } : undefined,
          dotlistExample: "deployment.tensor_parallel_size=4",
        }).trimEnd(),
      );
      return 0;
    }
    if (args.stage) {
      throw new UsageError("--stage is not supported for evaluator commands", {
        hint: "drop --stage",
      });
    }
    const tasks = taskFlags(args.passthrough);
    const profile = profileFrom(envFile, args.profile);
    const executor = executorFor(args, profile, envFile?.path);
    // 2. Config and job config.
    const configName = args.config ?? "default";
    const config = applyDotlist(loadConfig(findConfigFile(configName, configDir)), args.dotlist);
    const wandb = specialSection(envFile, "wandb");
    const job = buildJobConfig({
      config,
      args,
      profile,
      wandb,
      artifacts: specialSection(envFile, "artifacts"),
      recipeName: "nano3/eval",
      scriptPath: `nano3/${nano3Eval.configDir}`,
      configName,
    });
    const runEnv = runSettingsOf(job).env;
    if (needsWandb(job)) {
      const names = ["WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY"];
      injectEnvNames(job, "evaluation.env_vars", names);
      injectEnvNames(job, "execution.env_vars.export", names);
    }

    // Bad input (an unknown artifact, an unresolvable value) stops the command before any image is
    // squashed or looked for on a cluster: resolve once now (step 5 resolves the final config).
    if (!args.dryRun) resolveForLauncher(extractTrainConfig(job, { forRemote: false }));

    // 3. Images the launcher deploys: squashed for Slurm (a dry run only says so). Through an ssh
    //    tunnel they are looked for (or squashed with enroot) on the cluster, never here; the
    //    launcher, which logs in to the cluster itself, gets the profile's host and user.
    const notes: string[] = [];
    const locate = envFile && args.profile ? profileLocator(envFile, args.profile) : undefined;
    const tunnel = executor === "slurm"
      ? tunnelSpecOf(runEnv, { profileName: args.profile, locate })
      : undefined;
    if (tunnel) {
      notes.push(`tunnel: ssh ${tunnelLabel(tunnel)}`);
      notes.push(...await fillLauncherLogin(job, tunnel));
      warnLaptopOutputDir(job, tunnel);
      await clusterImages(job, tunnel, runEnv, args, locate, notes);
    } else if (executor === "slurm") {
      for (const key of IMAGE_KEYS) {
        const image = getPath(job, key);
        if (typeof image !== "string" || image.endsWith(".sqsh") || image.includes("${")) continue;
        const sqsh = await ensureSquashedImage(runEnv, image, {
          force: args.forceSquash,
          dryRun: args.dryRun,
        });
        notes.push(`${key}: ${image} → ${sqsh}`);
        if (!args.dryRun) setImage(job, key, sqsh);
      }
    }

    // 4. The eval config: `${run.*}` resolved, `run` stripped (the launcher has no use for it and
    //    the original strips it; `${art:…}` is resolved below from the job config's run refs);
    //    a dry run stops here.
    const withRefs = extractTrainConfig(job, { forRemote: false });
    const evalConfig = new Map(withRefs);
    evalConfig.delete("run");
    const env = { ...buildRunEnv({ profile: runEnv, wandb, recipeName: "nano3/eval" }) };
    const jobsBase = localJobsBase();
    if (args.dryRun) {
      const planned = plannedJobDir(jobsBase, "nano3/eval");
      printDryRun({
        job,
        train: evalConfig,
        env,
        command: [
          LAUNCHER,
          "run",
          "--config",
          path.join(planned, "eval.yaml"),
          ...tasks.flatMap((t) => ["-t", t]),
        ],
        executor,
        jobDir: planned,
        forRemote: false,
        notes,
      }, args.json);
      return 0;
    }

    // 5. Resolve artifacts and every interpolation for the launcher, which knows neither.
    const resolved = resolveForLauncher(withRefs);

    // 6. Job dir with job.yaml and eval.yaml; run the launcher.
    const jobDir = createJobDir(jobsBase, "nano3/eval");
    const written = writeJobFiles(jobDir, job, resolved, "yaml");
    const evalPath = path.join(jobDir, "eval.yaml");
    Deno.renameSync(written.trainConfig, evalPath);
    const argv = [LAUNCHER, "run", "--config", evalPath, ...tasks.flatMap((t) => ["-t", t])];
    console.error(`[nemotron] nano3/eval: job dir ${jobDir}${scriptArgsNote(args.passthrough)}`);
    const logPath = path.join(jobDir, "run.log");
    let code: number;
    try {
      code = await runLocal({ argv, env, cwd: jobDir, logPath, record: "nano3/eval" });
    } catch (err) {
      if (err instanceof RuntimeFailure && err.message.includes("not found")) {
        throw new RuntimeFailure(`${LAUNCHER} not found on PATH`, {
          hint: `install it (pip install ${LAUNCHER}); the eval config is ready in ${evalPath}`,
        });
      }
      throw err;
    }
    if (code !== 0) localRunFailed("nano3/eval", code, jobDir, logPath);
    else console.error(`✓ Evaluation submitted; config ${evalPath}`);
    return code;
  } finally {
    unpacked.cleanup();
  }
}
