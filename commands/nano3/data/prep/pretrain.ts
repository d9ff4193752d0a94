/**
 * `nemotron nano3 data prep pretrain`: tokenize the raw text datasets of a blend into Megatron bin/idx shards and
 * publish them as the pretraining data artifact.
 * A Ray data job (CPU) run by the runspec's `run.cmd` (`uv run … python {script} --config {config}`),
 * locally or as a Slurm job. On Slurm the code package ships the user's checkout plus the recipe
 * (script, artifact helper, blend files) and a launcher. With `nodes = N > 1` in the profile the job
 * is a CPU Ray cluster (templates/ray.sub.j2 with `--num-gpus=0`, from the runspec's
 * `gpus_per_node = 0`) and the command is its driver on the head node; one node runs it directly.
 *
 * The whole flow is here: arguments → runspec → profile → config → job config → (dry run stops)
 * → job dir → run locally, or submit to Slurm.
 */
import { Command } from "../../../../lib/cli/command.ts";
import { type CliContext, leafTokens, parseRecipeArgs } from "../../../../lib/cli/args.ts";
import { renderRecipeHelp } from "../../../../lib/cli/recipe_help.ts";
import { applyDotlist } from "../../../../lib/config/dotlist.ts";
import {
  buildJobConfig,
  extractTrainConfig,
  renderConfig,
  writeJobFiles,
} from "../../../../lib/config/job.ts";
import { createJobDir } from "../../../../lib/config/jobdir.ts";
import { configNames, findConfigFile, loadConfig } from "../../../../lib/config/load.ts";
import { getPath } from "../../../../lib/config/tree.ts";
import {
  loadEnvFile,
  loadEnvFileForHelp,
  profileFrom,
  profileNames,
  specialSection,
} from "../../../../lib/env_toml.ts";
import {
  launchArgv,
  runLocal,
  runStartupLocal,
  startupCommands,
} from "../../../../lib/exec/local_run.ts";
import * as path from "../../../../lib/path.ts";
import { unpackRecipes } from "../../../../lib/recipe_files.ts";
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
} from "../../../../lib/recipe_run.ts";
import { shellQuote } from "../../../../lib/shell.ts";
import { parseRunspecText } from "../../../../lib/runspec.ts";
import { prepareJobDir } from "../../../../lib/exec/job_dir.ts";
import {
  checkPackageSize,
  codePackageRoot,
  maxPackageMb,
  planCodePackage,
  writeCodePackage,
} from "../../../../lib/packaging/code.ts";
import {
  builtinConfigNames,
  nano3PretrainDataPrep,
  recipeFiles,
} from "../../../../recipes/index.ts";

const COMMAND = "nemotron nano3 data prep pretrain";
const SCRIPT = "data_prep.py";

export function nano3DataPrepPretrainCommand(cli: CliContext): Command {
  return new Command("pretrain")
    .description("Prepare pretraining data: tokenize raw text into bin/idx blends (Ray)")
    .allowUnknownOption().allowExcessArguments().helpOption(false)
    .action(async () => {
      const outcome = await runNano3DataPrepPretrain(cli, leafTokens(cli, 4));
      if (outcome.code !== 0) Deno.exitCode = outcome.code;
    });
}

/** Run `nano3 data prep pretrain` with the tokens after the leaf. */
export async function runNano3DataPrepPretrain(
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
  if (!args.help) checkRecipeInput(args, builtinConfigNames(nano3PretrainDataPrep), COMMAND);

  // 2. The recipe: unpack the embedded files (a temp dir for dry runs and help), parse the runspec.
  const unpacked = await unpackRecipes(recipeFiles(nano3PretrainDataPrep), {
    temporary: args.dryRun || args.help,
  });
  try {
    const { runspec } = parseRunspecText(
      nano3PretrainDataPrep.script,
      path.join(unpacked.dir, SCRIPT),
    );
    if (args.help) {
      console.log(
        renderRecipeHelp({
          command: COMMAND,
          description: runspec.docs,
          configNames: configNames(runspec.config_dir),
          artifacts: [],
          profiles: envFile ? { file: envFile.path, names: profileNames(envFile) } : undefined,
          dotlistExample: "num_shards=8",
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
      scriptPath: nano3PretrainDataPrep.scriptPath,
      configName,
    });
    // From here on the effective settings are the job config's `run.env`: the YAML's run.env, the
    // profile over it, and `run.env.*` overrides from the command line.
    const settings = runSettingsOf(job);
    const runEnv = settings.env;
    const env = recipeEnv({ runEnv, wandb, envFile, recipeName: runspec.name, argv: args.argv });
    const artifact = getPath(job, "artifact.name");
    // The script, its helper and the blend files of its config dir (everything but the YAMLs).
    const codeFiles = [
      SCRIPT,
      ...Object.keys(nano3PretrainDataPrep.files),
      ...Object.keys(nano3PretrainDataPrep.configs).filter((n) => !n.endsWith(".yaml")).map((n) =>
        `${nano3PretrainDataPrep.configDir}/${n}`
      ),
    ];

    if (executor === "slurm") {
      // 5s. Slurm: the train config with remote paths, the command run in the job's code dir, and
      // the job (image squashed for pyxis, git mounts synced, sbatch script rendered).
      // Remote paths map into the code package, whose root is the git checkout's top (else the
      // cwd): from a subdirectory `<top>/sub/x` becomes `/nemo_run/code/sub/x`, as packaged.
      const codeRoot = await codePackageRoot(Deno.cwd());
      const train = extractTrainConfig(job, {
        forRemote: true,
        repoRoot: codeRoot,
        cwd: Deno.cwd(),
      });
      // The runspec's command on the shipped script and config.yaml, in the job's code dir.
      const scriptArc = `_nemotron/${nano3PretrainDataPrep.scriptPath}`;
      const command = [
        "bash",
        "-c",
        workdirCommand(runspec, shellQuote(scriptArc), "config.yaml", args.passthrough),
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
      // The code package, decided before anything is written: what the deny list leaves out
      // (shown in a dry run) and the size guard (max_package_mb, --force-package).
      const plan = await planCodePackage({
        script: { arcname: scriptArc, text: nano3PretrainDataPrep.script },
        trainConfig: renderConfig(train, runspec.config.format),
        configFormat: runspec.config.format,
        jobDir: slurmJob.jobDir,
        extraFiles: codeFiles.filter((rel) => rel !== SCRIPT).map((rel) => ({
          arcname: `_nemotron/${path.dirname(nano3PretrainDataPrep.scriptPath)}/${rel}`,
          text: Deno.readTextFileSync(path.join(unpacked.dir, rel)),
        })),
        envFile: envFile?.path,
        remoteJobDir: slurmJob.remoteJobDir,
      });
      checkPackageSize(plan, maxPackageMb(settings.env), args.forcePackage ?? false);
      if (args.dryRun) {
        printDryRun({
          job,
          train,
          env: { ...env, NEMOTRON_JOB_DIR: slurmJob.taskJobDir },
          command: [...slurmJob.taskArgv],
          executor,
          jobDir: slurmJob.jobDir,
          forRemote: true,
          repoRoot: codeRoot,
          cwd: Deno.cwd(),
          codePackage: plan,
          script,
          notes,
        }, args.json);
        return { code: 0 };
      }

      // 6s. Job dir: script + job.json (+ private secrets file), job.yaml and the train config,
      // the code package (the user's checkout + the recipe + a launcher) unpacked into code/.
      const prepared = prepareJobDir(slurmJob, script);
      writeJobFiles(prepared.configsDir, job, train, runspec.config.format);
      const pkg = await writeCodePackage(plan, prepared.jobDir);
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
