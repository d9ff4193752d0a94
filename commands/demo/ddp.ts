/**
 * `nemotron demo ddp`: train a tiny byte-level model with PyTorch DistributedDataParallel (gloo,
 * CPU) under torchrun on the dataset artifact `run.data`, and publish it as an artifact
 * (`demo-ddp-model[-tiny]`) whose lineage names the data. Each rank prints `rank R/W on HOST`, its
 * loss, and its parameters' SHA-256 after step 1 (equal on all ranks when the all-reduce works).
 *
 * Locally: `<python> -m torch.distributed.run --standalone --nproc_per_node=N` (N =
 * `run.env.nproc_per_node`, 2 in the recipe's config), where <python> is $NEMOTRON_PYTHON, else
 * `run.env.python`, else `python3`; it is checked for torch first (a clear error naming
 * python3-torch instead of "No module named torch"). On Slurm: our sbatch torchrun line across
 * `nodes` nodes (rendezvous on the first node, node rank from $SLURM_NODEID), with the profile's
 * `python` / `torchrun_args`. The recipe's config sets `torchrun_args = ["--redirects=1",
 * "--tee=1"]`, which Debian's torch 1.13 needs.
 *
 * The whole flow is here: arguments → profile → runspec → config → job config → (dry run stops)
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
import { loadEnvFile, profileFrom, profileNames, specialSection } from "../../lib/env_toml.ts";
import { runLocal, runStartupLocal, startupCommands } from "../../lib/exec/local_run.ts";
import { UsageError } from "../../lib/errors.ts";
import * as path from "../../lib/path.ts";
import { unpackRecipes } from "../../lib/recipe_files.ts";
import {
  checkRecipeInput,
  copyRecipeCode,
  executorFor,
  extractTarball,
  localJobsBase,
  localNproc,
  localRunFailed,
  plannedJobDir,
  planSlurmJob,
  printDryRun,
  recipeEnv,
  type RecipeOutcome,
  runSettingsOf,
  type StageOptions,
  submitRecipeJob,
  trainConfigName,
} from "../../lib/recipe_run.ts";
import { parseRunspecText } from "../../lib/runspec.ts";
import { prepareJobDir } from "../../lib/exec/job_dir.ts";
import { LAUNCHER_NAME, packageCode } from "../../lib/packaging/code.ts";
import { builtinConfigNames, demoDdp, recipeFiles } from "../../recipes/index.ts";

const COMMAND = "nemotron demo ddp";
const SCRIPT = "ddp.py";

export function demoDdpCommand(cli: CliContext): Command {
  return new Command("ddp")
    .description(
      "Train a tiny model with DistributedDataParallel over torchrun (CPU, gloo; needs torch)",
    )
    .allowUnknownOption().allowExcessArguments().helpOption(false)
    .action(async () => {
      const outcome = await runDemoDdp(cli, leafTokens(cli, 2));
      if (outcome.code !== 0) Deno.exitCode = outcome.code;
    });
}

/** Run `demo ddp` with the tokens after the leaf. */
export async function runDemoDdp(
  cli: CliContext,
  tokens: readonly string[],
  opts: StageOptions = {},
): Promise<RecipeOutcome> {
  // 1. Arguments, env.toml, the profile, the config name and the overrides' syntax: bad input
  //    fails here, before anything is written.
  const args = parseRecipeArgs(tokens, cli);
  const envFile = loadEnvFile();
  const profile = args.help ? undefined : profileFrom(envFile, args.profile);
  const executor = executorFor(args, profile, envFile?.path);
  if (!args.help) checkRecipeInput(args, builtinConfigNames(demoDdp), COMMAND);

  // 2. The recipe: unpack the embedded files (a temp dir for dry runs and help), parse the runspec.
  const unpacked = await unpackRecipes(recipeFiles(demoDdp), {
    temporary: args.dryRun || args.help,
  });
  try {
    const { runspec } = parseRunspecText(demoDdp.script, path.join(unpacked.dir, SCRIPT));
    if (args.help) {
      console.log(
        renderRecipeHelp({
          command: COMMAND,
          description: runspec.docs,
          configNames: configNames(runspec.config_dir),
          artifacts: [{
            key: "data",
            description: "Tokenized dataset artifact (from demo data), e.g. demo-data:v2",
          }],
          profiles: envFile ? { file: envFile.path, names: profileNames(envFile) } : undefined,
          dotlistExample: "train.steps=4 run.env.nproc_per_node=4",
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
      scriptPath: demoDdp.scriptPath,
      configName,
    });
    // From here on the effective settings are the job config's `run.env`: the YAML's run.env, the
    // profile over it, and `run.env.*` overrides from the command line.
    const settings = runSettingsOf(job);
    const runEnv = settings.env;
    const env = recipeEnv({ runEnv, wandb, envFile, recipeName: runspec.name, argv: args.argv });
    const artifact = getPath(job, "artifact.name");
    const codeFiles = [SCRIPT, ...Object.keys(demoDdp.files)];

    if (executor === "slurm") {
      // 5s. Slurm: the train config with remote paths, the command run in the job's code dir, and
      // the job (image squashed for pyxis, git mounts synced, sbatch script rendered).
      const train = extractTrainConfig(job, { forRemote: true, repoRoot: Deno.cwd() });
      // torchrun runs the launcher with its own interpreter (profile `python`, else torchrun's)
      const command = [LAUNCHER_NAME, ...args.passthrough];
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
      // the code package (the user's checkout + the recipe + a launcher) unpacked into code/.
      const prepared = prepareJobDir(slurmJob, script);
      writeJobFiles(prepared.configsDir, job, train, runspec.config.format);
      const pkg = await packageCode({
        script: { arcname: `_nemotron/${demoDdp.scriptPath}`, text: demoDdp.script },
        trainConfig: renderConfig(train, runspec.config.format),
        jobDir: slurmJob.jobDir,
        extraFiles: Object.entries(demoDdp.files).map(([rel, text]) => ({
          arcname: `_nemotron/${path.dirname(demoDdp.scriptPath)}/${rel}`,
          text,
        })),
      });
      for (const w of pkg.warnings) console.error(`warning: ${w}`);
      await extractTarball(pkg.tarball, prepared.codeDir);

      // 7s. Submit (after the previous pipeline stage, if any); --run follows the log.
      return await submitRecipeJob(slurmJob, args, opts);
    }

    // 5. Local: the train config; torchrun from the chosen interpreter; a dry run stops here.
    const train = extractTrainConfig(job, { forRemote: false });
    const jobsBase = localJobsBase();
    const trainFile = trainConfigName(runspec.config.format);
    const python = Deno.env.get("NEMOTRON_PYTHON") || stringSetting(runEnv, "python") || "python3";
    const torchrunArgs = stringListSetting(runEnv, "torchrun_args");
    const localArgv = (dir: string, config: string) => [
      python,
      "-m",
      "torch.distributed.run",
      "--standalone",
      "--nnodes=1",
      `--nproc_per_node=${localNproc(runEnv)}`,
      ...torchrunArgs,
      path.join(dir, "code", SCRIPT),
      "--config",
      config,
      ...args.passthrough,
    ];
    if (args.dryRun) {
      const planned = plannedJobDir(jobsBase, runspec.name);
      printDryRun({
        job,
        train,
        env: { ...env, NEMOTRON_JOB_DIR: planned },
        command: localArgv(planned, path.join(planned, trainFile)),
        executor,
        jobDir: planned,
        forRemote: false,
      }, args.json);
      return { code: 0 };
    }
    await requireTorch(python);

    // 6. Job dir: job.yaml, the train config, the code; startup commands; run with a log.
    const startup = startupCommands(runEnv, envFile?.path);
    const jobDir = createJobDir(jobsBase, runspec.name);
    const files = writeJobFiles(jobDir, job, train, runspec.config.format);
    copyRecipeCode(unpacked.dir, codeFiles, path.join(jobDir, "code"));
    const childEnv = { ...env, NEMOTRON_JOB_DIR: jobDir };
    const argv = localArgv(jobDir, files.trainConfig);
    console.error(`[nemotron] ${runspec.name}: job dir ${jobDir}`);
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

/** A string setting of `run.env` (the profile over the config), or undefined. */
function stringSetting(runEnv: Readonly<Record<string, unknown>>, key: string): string | undefined {
  const v = runEnv[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") {
    throw new UsageError(`run.env.${key} must be a string, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** A list-of-strings setting of `run.env`, or []. */
function stringListSetting(runEnv: Readonly<Record<string, unknown>>, key: string): string[] {
  const v = runEnv[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw new UsageError(`run.env.${key} must be a list of strings, got ${JSON.stringify(v)}`);
  }
  return v as string[];
}

/**
 * Fail before anything is written when `python` cannot import torch (checked without importing
 * it: a fraction of a second), naming the interpreter and the Debian package.
 */
async function requireTorch(python: string): Promise<void> {
  let code: number;
  try {
    ({ code } = await new Deno.Command(python, {
      args: [
        "-c",
        "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('torch') else 3)",
      ],
      stdout: "null",
      stderr: "null",
    }).output());
  } catch {
    code = 127;
  }
  if (code === 0) return;
  throw new UsageError(
    code === 127
      ? `${COMMAND} needs a Python interpreter with PyTorch; '${python}' was not found`
      : `${COMMAND} needs PyTorch, but '${python}' cannot import torch`,
    {
      hint: "install the Debian package python3-torch, and pick an interpreter that has it: " +
        "NEMOTRON_PYTHON=/usr/bin/python3 (or run.env.python / the profile's python)",
    },
  );
}
