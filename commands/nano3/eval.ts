/**
 * `nemotron nano3 eval`: evaluate the final model with nemo-evaluator-launcher (stage 3). There is
 * no script: the config (stage3_eval/config) is handed to the launcher, which deploys the model and
 * runs the benchmark tasks itself (on Slurm, per `execution`). nemotron builds the job config,
 * injects the W&B variable names when results are exported to W&B, squashes the deployment and
 * proxy images for Slurm, resolves `${run.*}` and `${art:…}`, writes `job.yaml` + `eval.yaml`, and
 * runs `nemo-evaluator-launcher run --config eval.yaml [-t TASK]…`.
 *
 * Script arguments: only `-t/--task NAME` (repeatable) are accepted.
 */
import { Command } from "../../lib/cli/command.ts";
import { type CliContext, leafTokens, parseRecipeArgs } from "../../lib/cli/args.ts";
import { renderRecipeHelp } from "../../lib/cli/recipe_help.ts";
import { artLookupByRef } from "../../lib/artifacts/fields.ts";
import { registryFromEnvironment } from "../../lib/artifacts/root.ts";
import { applyDotlist } from "../../lib/config/dotlist.ts";
import { resolveTree } from "../../lib/config/interpolate.ts";
import { buildJobConfig, extractTrainConfig, writeJobFiles } from "../../lib/config/job.ts";
import { createJobDir } from "../../lib/config/jobdir.ts";
import { configNames, findConfigFile, loadConfig } from "../../lib/config/load.ts";
import { artResolver } from "../../lib/config/resolvers.ts";
import { type ConfigMap, getPath } from "../../lib/config/tree.ts";
import {
  loadEnvFile,
  loadEnvFileForHelp,
  profileFrom,
  profileNames,
  specialSection,
} from "../../lib/env_toml.ts";
import { RuntimeFailure, UsageError } from "../../lib/errors.ts";
import { runLocal } from "../../lib/exec/local_run.ts";
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
import { ensureSquashedImage } from "../../lib/squash/ensure.ts";
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
            "Evaluate the final model with nemo-evaluator-launcher. Script arguments: -t/--task NAME (repeatable).",
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
    // ssh tunnel (issue 12): the evaluator launcher runs here and would squash and write locally.
    if (executor === "slurm" && profile?.tunnel === "ssh") {
      throw new UsageError(
        `nano3 eval does not support tunnel = "ssh" yet (profile '${args.profile}')`,
        {
          hint: "run nemotron nano3 eval on the cluster's login node",
        },
      );
    }

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

    // 3. Images the launcher deploys: squashed for Slurm (a dry run only says so).
    const notes: string[] = [];
    if (executor === "slurm") {
      for (const key of IMAGE_KEYS) {
        const image = getPath(job, key);
        if (typeof image !== "string" || image.endsWith(".sqsh") || image.includes("${")) continue;
        const sqsh = await ensureSquashedImage(runEnv, image, {
          force: args.forceSquash,
          dryRun: args.dryRun,
        });
        notes.push(`${key}: ${image} → ${sqsh}`);
        if (!args.dryRun) {
          const parts = key.split(".");
          (getPath(job, parts.slice(0, -1).join(".")) as ConfigMap).set(parts.at(-1)!, sqsh);
        }
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
    const registry = registryFromEnvironment();
    const resolved = resolveTree(withRefs, {
      resolvers: { art: artResolver(artLookupByRef(registry)) },
    });
    resolved.delete("run");

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
