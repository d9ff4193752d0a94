/**
 * `nemotron nano3 rl`: Nemotron 3 Nano reinforcement learning (GRPO) with NeMo-RL on Ray (stage 2).
 * The runspec's `run.cmd` (`uv run python {script} --config {config}`) runs in `run.workdir`
 * (`/opt/nemo-rl` in the NeMo-RL container), locally or as a Slurm job through pyxis. On Slurm the
 * script ships as one self-contained `main.py` next to `config.yaml`. With `nodes = N > 1` (profile
 * or runspec) the Slurm job is a Ray cluster (templates/ray.sub.j2, lib/exec/ray.ts): the head on
 * the first node, a worker on each other node with `gpus_per_node` GPUs, and the command as the
 * driver, once, on the head node with RAY_ADDRESS. With one node the command runs directly and
 * NeMo-RL starts Ray in-process.
 *
 * The whole flow is here: arguments → runspec → profile → config → job config → (dry run stops)
 * → job dir → run locally, or submit to Slurm.
 */
import { Command } from "../../lib/cli/command.ts";
import { type CliContext, leafTokens, parseRecipeArgs } from "../../lib/cli/args.ts";
import { renderRecipeHelp } from "../../lib/cli/recipe_help.ts";
import { applyDotlist } from "../../lib/config/dotlist.ts";
import {
  buildJobConfig,
  extractTrainConfig,
  renderConfig,
  writeJobFiles,
} from "../../lib/config/job.ts";
import { createJobDir } from "../../lib/config/jobdir.ts";
import { configNames, findConfigFile, loadConfig } from "../../lib/config/load.ts";
import { getPath } from "../../lib/config/tree.ts";
import {
  loadEnvFile,
  loadEnvFileForHelp,
  profileFrom,
  profileNames,
  specialSection,
} from "../../lib/env_toml.ts";
import {
  launchArgv,
  runLocal,
  runStartupLocal,
  startupCommands,
} from "../../lib/exec/local_run.ts";
import * as path from "../../lib/path.ts";
import { unpackRecipes } from "../../lib/recipe_files.ts";
import {
  checkRecipeInput,
  copyRecipeCode,
  executorFor,
  extractTarball,
  localJobsBase,
  localRunFailed,
  plannedJobDir,
  planSlurmJob,
  printDryRun,
  recipeEnv,
  type RecipeOutcome,
  runSettingsOf,
  scriptArgsNote,
  type StageOptions,
  submitRecipeJob,
  trainConfigName,
  workdirCommand,
} from "../../lib/recipe_run.ts";
import { parseRunspecText } from "../../lib/runspec.ts";
import { prepareJobDir } from "../../lib/exec/job_dir.ts";
import { packageSelfContained } from "../../lib/packaging/inline.ts";
import { builtinConfigNames, nano3Rl, recipeFiles } from "../../recipes/index.ts";

const COMMAND = "nemotron nano3 rl";
const SCRIPT = "train.py";

export function nano3RlCommand(cli: CliContext): Command {
  return new Command("rl")
    .description("Run reinforcement learning (GRPO) with NeMo-RL on Ray (stage2)")
    .allowUnknownOption().allowExcessArguments().helpOption(false)
    .action(async () => {
      const outcome = await runNano3Rl(cli, leafTokens(cli, 2));
      if (outcome.code !== 0) Deno.exitCode = outcome.code;
    });
}

/** Run `nano3 rl` with the tokens after the leaf. */
export async function runNano3Rl(
  cli: CliContext,
  tokens: readonly string[],
  opts: StageOptions = {},
): Promise<RecipeOutcome> {
  // 1. Arguments, env.toml, the profile, the config name and the overrides' syntax: bad input
  //    fails here, before anything is written.
  const args = parseRecipeArgs(tokens, cli);
  const envFile = args.help ? loadEnvFileForHelp() : loadEnvFile();
  const profile = args.help ? undefined : profileFrom(envFile, args.profile);
  const executor = executorFor(args, profile, envFile?.path);
  if (!args.help) checkRecipeInput(args, builtinConfigNames(nano3Rl), COMMAND);

  // 2. The recipe: unpack the embedded files (a temp dir for dry runs and help), parse the runspec.
  const unpacked = await unpackRecipes(recipeFiles(nano3Rl), {
    temporary: args.dryRun || args.help,
  });
  try {
    const { runspec } = parseRunspecText(nano3Rl.script, path.join(unpacked.dir, SCRIPT));
    if (args.help) {
      console.log(
        renderRecipeHelp({
          command: COMMAND,
          description: runspec.docs,
          configNames: configNames(runspec.config_dir),
          artifacts: [{ key: "model", description: "SFT model checkpoint artifact" }, {
            key: "data",
            description: "RL prompt data artifact (from nano3 data prep rl)",
          }],
          profiles: envFile ? { file: envFile.path, names: profileNames(envFile) } : undefined,
          dotlistExample: "grpo.max_num_steps=10",
        }).trimEnd(),
      );
      return { code: 0 };
    }

    // 3. Config: a name in the recipe's config dir or a path; `defaults:`; the dotlist.
    const configName = args.config ?? runspec.config.default;
    const config = applyDotlist(
      loadConfig(findConfigFile(configName, runspec.config_dir)),
      args.dotlist,
    );

    // 4. The job config (provenance under `run`) and the environment the script receives.
    const wandb = specialSection(envFile, "wandb");
    const job = buildJobConfig({
      config,
      args,
      profile,
      wandb,
      artifacts: specialSection(envFile, "artifacts"),
      recipeName: runspec.name,
      scriptPath: nano3Rl.scriptPath,
      configName,
    });
    // From here on the effective settings are the job config's `run.env`: the YAML's run.env, the
    // profile over it, and `run.env.*` overrides from the command line.
    const settings = runSettingsOf(job);
    const runEnv = settings.env;
    const env = recipeEnv({ runEnv, wandb, envFile, recipeName: runspec.name, argv: args.argv });
    const artifact = getPath(job, "artifact.name");
    const codeFiles = [SCRIPT, ...Object.keys(nano3Rl.files)];

    if (executor === "slurm") {
      // 5s. Slurm: the train config with remote paths, the command run in the job's code dir, and
      // the job (image squashed for pyxis, git mounts synced, sbatch script rendered).
      const train = extractTrainConfig(job, { forRemote: true, repoRoot: Deno.cwd() });
      // The runspec's command, run from its workdir, on the shipped main.py and config.yaml.
      const command = [
        "bash",
        "-c",
        workdirCommand(
          runspec,
          '"$NEMOTRON_JOB_DIR"/code/main.py',
          '"$NEMOTRON_JOB_DIR"/code/config.yaml',
          args.passthrough,
        ),
      ];
      const { job: slurmJob, script, notes } = await planSlurmJob({
        args,
        settings,
        envFile,
        runspec,
        command,
        env,
        pipeline: opts.pipeline,
      });
      if (args.dryRun) {
        printDryRun({
          job,
          train,
          env: { ...env, NEMOTRON_JOB_DIR: slurmJob.taskJobDir },
          command: [...slurmJob.taskArgv],
          executor,
          jobDir: slurmJob.jobDir,
          forRemote: true,
          repoRoot: Deno.cwd(),
          script,
          notes,
        }, args.json);
        return { code: 0 };
      }

      // 6s. Job dir: script + job.json (+ private secrets file), job.yaml and the train config,
      // the self-contained package (main.py with local imports inlined + config.yaml) in code/.
      const prepared = prepareJobDir(slurmJob, script);
      writeJobFiles(prepared.configsDir, job, train, runspec.config.format);
      const pkg = await packageSelfContained({
        script: { path: path.join(unpacked.dir, SCRIPT) },
        trainConfig: renderConfig(train, runspec.config.format),
        jobDir: prepared.jobDir,
        repoRoot: Deno.cwd(),
        scriptDir: unpacked.dir,
      });
      for (const w of pkg.warnings) console.error(`warning: ${w}`);
      await extractTarball(pkg.tarball, prepared.codeDir);

      // 7s. Submit (after the previous pipeline stage, if any); --run follows the log.
      return await submitRecipeJob(slurmJob, args, opts);
    }

    // 5. Local: the train config, the command; a dry run stops here.
    const train = extractTrainConfig(job, { forRemote: false });
    const jobsBase = localJobsBase();
    const trainFile = trainConfigName(runspec.config.format);
    if (args.dryRun) {
      const planned = plannedJobDir(jobsBase, runspec.name);
      printDryRun({
        job,
        train,
        env: { ...env, NEMOTRON_JOB_DIR: planned },
        command: launchArgv({
          runspec,
          script: path.join(planned, "code", SCRIPT),
          config: path.join(planned, trainFile),
          passthrough: args.passthrough,
        }),
        executor,
        jobDir: planned,
        forRemote: false,
      }, args.json);
      return { code: 0 };
    }

    // 6. Job dir: job.yaml, the train config, the code; startup commands; run with a log.
    const startup = startupCommands(runEnv, envFile?.path);
    const jobDir = createJobDir(jobsBase, runspec.name);
    const files = writeJobFiles(jobDir, job, train, runspec.config.format);
    copyRecipeCode(unpacked.dir, codeFiles, path.join(jobDir, "code"));
    const childEnv = { ...env, NEMOTRON_JOB_DIR: jobDir };
    const argv = launchArgv({
      runspec,
      script: path.join(jobDir, "code", SCRIPT),
      config: files.trainConfig,
      passthrough: args.passthrough,
    });
    console.error(
      `[nemotron] ${runspec.name}: job dir ${jobDir}${scriptArgsNote(args.passthrough)}`,
    );
    await runStartupLocal(startup, childEnv);
    const logPath = path.join(jobDir, "run.log");
    const code = await runLocal({
      argv,
      env: childEnv,
      cwd: jobDir,
      logPath,
      record: runspec.name,
    });
    if (code !== 0) localRunFailed(runspec.name, code, jobDir, logPath, runspec.image);
    return { code, jobDir, artifact: typeof artifact === "string" ? artifact : undefined };
  } finally {
    unpacked.cleanup();
  }
}
