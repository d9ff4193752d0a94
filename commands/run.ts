/**
 * `nemotron run SCRIPT [-c NAME|PATH] [-r|-b PROFILE] [-d] [--json] [--package code|self-contained]
 * [key=value …] [SCRIPT ARGS …]`: run any Python script that describes itself in a
 * `[tool.runspec]` block exactly as a built-in recipe command runs its embedded script. SCRIPT is a
 * path, or the runspec `name` of a catalogue recipe (`nemotron recipes list`): a built-in (unpacked
 * like the built-in command does) or a script under a recipe directory.
 *
 * Everything comes from the script's runspec: its config dir and default config, `config.format`,
 * `run.launch`/`run.cmd`/`run.workdir`, `image`, `resources`. Locally the script runs where it is
 * (its sibling modules import as usual) with its job dir as the working directory; on Slurm its
 * code ships with the code packager (the checkout that contains the script, or the script's
 * directory) or, with `--package self-contained`, as one `main.py` with its local imports inlined.
 *
 * The whole flow is here: arguments → the script → profile → runspec → config → job config →
 * (dry run stops) → job dir → run locally, or submit to Slurm.
 */
import { Command } from "../lib/cli/command.ts";
import { type CliContext, leafTokens, parseRecipeArgs } from "../lib/cli/args.ts";
import { renderRecipeHelp } from "../lib/cli/recipe_help.ts";
import { applyDotlist, parseOverride } from "../lib/config/dotlist.ts";
import {
  buildJobConfig,
  extractTrainConfig,
  renderConfig,
  writeJobFiles,
} from "../lib/config/job.ts";
import { createJobDir } from "../lib/config/jobdir.ts";
import { configNames, findConfigFile, loadConfig } from "../lib/config/load.ts";
import { type ConfigMap, getPath } from "../lib/config/tree.ts";
import {
  type EnvFile,
  loadEnvFile,
  loadEnvFileForHelp,
  profileFrom,
  profileNames,
  specialSection,
} from "../lib/env_toml.ts";
import { formatLocation, RuntimeFailure, UsageError } from "../lib/errors.ts";
import { launchArgv, runLocal, runStartupLocal, startupCommands } from "../lib/exec/local_run.ts";
import { prepareJobDir } from "../lib/exec/job_dir.ts";
import {
  checkPackageSize,
  CONFIG_NAME,
  LAUNCHER_NAME,
  maxPackageMb,
  packagedConfigName,
  planCodePackage,
  writeCodePackage,
} from "../lib/packaging/code.ts";
import { packageSelfContained, SELF_CONTAINED_NAME } from "../lib/packaging/inline.ts";
import * as path from "../lib/path.ts";
import { findRecipe, loadCatalogue, recipeDirs } from "../lib/recipe_catalogue.ts";
import { unpackRecipes } from "../lib/recipe_files.ts";
import {
  artifactInputs,
  codePackageLayout,
  exampleOverride,
  executorFor,
  extractTarball,
  localJobsBase,
  localRunFailed,
  localTorchrunArgv,
  type Packaging,
  plannedJobDir,
  planSlurmJob,
  printDryRun,
  recipeEnv,
  type RecipeOutcome,
  runSettingsOf,
  scriptArgsNote,
  submitRecipeJob,
  trainConfigName,
  workdirCommand,
} from "../lib/recipe_run.ts";
import { parseRunspecFile } from "../lib/runspec.ts";
import { shellQuote } from "../lib/shell.ts";
import { BUILTIN_RECIPES, recipeFiles } from "../recipes/index.ts";

const COMMAND = "nemotron run";
const RUN_DESCRIPTION =
  "Run a Python script with a [tool.runspec] block (or a recipe by name) like a built-in recipe";

const RUN_HELP = `Usage: nemotron run SCRIPT [OPTIONS] [key=value ...] [SCRIPT ARGS ...]

  Run a Python script with a [tool.runspec] block (or a recipe by name) like a
  built-in recipe.

  SCRIPT is a path to a Python file with a PEP 723 [tool.runspec] block, or
  the runspec name of a recipe in the catalogue (nemotron recipes list). The
  script's runspec says everything else: config dir and default config,
  launch, image, resources. 'nemotron run SCRIPT --help' shows the script's
  own help (its configs, the env.toml profiles, override syntax, examples).

Options (anywhere after SCRIPT, before --):
  -c, --config NAME|PATH   Config name in the script's config dir, or a path
  -r, --run PROFILE        Submit to cluster (attached: wait and stream logs)
  -b, --batch PROFILE      Submit to cluster (detached)
  -d, --dry-run            Preview config and command without execution
  --json                   With --dry-run or --batch: machine-readable output
  --force-squash           Re-import the container .sqsh
  --force-package          Ship a code package larger than max_package_mb
  --package code|self-contained
                           How the code ships to Slurm: the code packager (the
                           checkout holding the script, or its directory;
                           default) or one main.py with local imports inlined
  -h, --help               Show this help

Examples:
  nemotron init my-recipe && cd my-recipe && nemotron run train.py
  nemotron run train.py -c tiny train.steps=10
  nemotron run train.py --batch my-cluster
  nemotron run demo/train -c tiny --dry-run
  nemotron recipes export demo/train ./my-demo
  nemotron run ./my-demo/train.py
`;

export function runCommand(cli: CliContext): Command {
  return new Command("run")
    .description(RUN_DESCRIPTION)
    .allowUnknownOption().allowExcessArguments().helpOption(false)
    .action(async () => {
      const outcome = await runScript(cli, leafTokens(cli, 1));
      if (outcome.code !== 0) Deno.exitCode = outcome.code;
    });
}

/** `--package code|self-contained` (before any `--`), taken out of the tokens. */
function takePackageOption(
  tokens: readonly string[],
): { packaging: Packaging; rest: string[] } {
  let packaging: Packaging = "code";
  const rest: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i];
    if (tok === "--") {
      rest.push(...tokens.slice(i));
      break;
    }
    if (tok !== "--package" && !tok.startsWith("--package=")) {
      rest.push(tok);
      continue;
    }
    const value = tok === "--package" ? tokens[++i] : tok.slice("--package=".length);
    if (value !== "code" && value !== "self-contained") {
      throw new UsageError(
        `--package must be 'code' or 'self-contained', got ${
          value === undefined ? "nothing" : `'${value}'`
        }`,
        { hint: "--package self-contained ships one main.py with the script's imports inlined" },
      );
    }
    packaging = value;
  }
  return { packaging, rest };
}

/** The script to run: on disk, or a built-in unpacked for this run. */
interface LocatedScript {
  /** Absolute path of the script on disk. */
  readonly script: string;
  /** What job.yaml records as `run.recipe.script`. */
  readonly recorded: string;
  /** The recipe's name: its runspec `name`, else its catalogue name or its file name. */
  readonly name: string;
  cleanup(): void;
}

/**
 * SCRIPT as a path (an existing file, or anything ending in `.py`), else a catalogue name: a
 * built-in is unpacked (to a temporary dir for dry runs and help), a recipe dir's script is used
 * where it is.
 */
async function locateScript(
  target: string,
  envFile: EnvFile | undefined,
  opts: { temporary: boolean },
): Promise<LocatedScript> {
  let isFile = false;
  try {
    isFile = Deno.statSync(target).isFile;
  } catch { /* not a file */ }
  if (isFile || target.endsWith(".py")) {
    const script = path.resolve(target);
    if (!isFile) {
      throw new UsageError(`Script not found: ${script}`, {
        hint: "check the path (relative paths are taken from the current directory)",
      });
    }
    return { script, recorded: script, name: path.basename(script, ".py"), cleanup: () => {} };
  }
  // Other recipes' runspec warnings are `recipes list`'s business; this one's are printed below.
  const entry = findRecipe(loadCatalogue(BUILTIN_RECIPES, recipeDirs(envFile)), target);
  if (!entry.builtin) {
    return { script: entry.script, recorded: entry.script, name: entry.name, cleanup: () => {} };
  }
  const { recipe } = entry.builtin;
  const unpacked = await unpackRecipes(recipeFiles(recipe), { temporary: opts.temporary });
  return {
    script: path.join(unpacked.dir, path.basename(recipe.scriptPath)),
    recorded: recipe.scriptPath,
    name: entry.name,
    cleanup: unpacked.cleanup,
  };
}

function printWarning(w: { file: string; line?: number; message: string }): void {
  console.error(`${formatLocation({ file: w.file, line: w.line })}: warning: ${w.message}`);
}

/** Run `nemotron run` with the tokens after `run`. */
export async function runScript(
  cli: CliContext,
  tokens: readonly string[],
): Promise<RecipeOutcome> {
  // 1. Arguments: `--package`, SCRIPT (the first word), then what every recipe command takes;
  //    env.toml and the profile. Bad input fails here, before anything is written.
  const { packaging, rest } = takePackageOption(tokens);
  const parsed = parseRecipeArgs(rest, cli);
  const target = parsed.passthrough[0];
  if (target === undefined || target.startsWith("-")) {
    if (parsed.help) {
      console.log(RUN_HELP.trimEnd());
      return { code: 0 };
    }
    throw new UsageError(
      target === undefined
        ? "nemotron run needs a SCRIPT"
        : `nemotron run needs a SCRIPT before script arguments, got '${target}'`,
      {
        hint: "nemotron run train.py [-c NAME] [key=value ...]; SCRIPT is a path to a Python " +
          "file with a [tool.runspec] block or a recipe name (nemotron recipes list)",
      },
    );
  }
  const args = Object.freeze({ ...parsed, passthrough: parsed.passthrough.slice(1) });
  const envFile = args.help ? loadEnvFileForHelp() : loadEnvFile();
  const profile = args.help ? undefined : profileFrom(envFile, args.profile);
  const executor = executorFor(args, profile, envFile?.path);
  for (const item of args.dotlist) parseOverride(item);

  // 2. The script and its runspec (a recipe without `name` is named by its file).
  const located = await locateScript(target, envFile, { temporary: args.dryRun || args.help });
  try {
    const { runspec: spec, warnings } = parseRunspecFile(located.script);
    warnings.forEach(printWarning);
    const runspec = spec.name ? spec : { ...spec, name: located.name };
    const scriptDir = path.dirname(located.script);
    if (args.help) {
      // The default config, if it loads, gives the examples (a key, the artifact inputs).
      let defaults: ConfigMap | undefined;
      try {
        defaults = loadConfig(findConfigFile(runspec.config.default, runspec.config_dir));
      } catch { /* shown without examples from the config */ }
      console.log(
        renderRecipeHelp({
          command: `${COMMAND} ${target}`,
          description: runspec.docs || `Run ${located.script}`,
          configNames: configNames(runspec.config_dir),
          artifacts: artifactInputs(defaults),
          profiles: envFile ? { file: envFile.path, names: profileNames(envFile) } : undefined,
          dotlistExample: exampleOverride(defaults),
          notes: [
            `Script: ${located.recorded} (recipe ${runspec.name}, launch ${runspec.run.launch}` +
            (runspec.image ? `, image ${runspec.image})` : ")"),
            "On Slurm the code ships with the code packager (the checkout holding the " +
            "script, or its directory); --package self-contained ships one main.py with the " +
            "script's local imports inlined.",
          ],
        }).trimEnd(),
      );
      return { code: 0 };
    }

    // 3. Config: a name in the script's config dir or a path; `defaults:`; the dotlist.
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
      scriptPath: located.recorded,
      configName,
    });
    // From here on the effective settings are the job config's `run.env`: the YAML's run.env, the
    // profile over it, and `run.env.*` overrides from the command line.
    const settings = runSettingsOf(job);
    const runEnv = settings.env;
    const env = recipeEnv({ runEnv, wandb, envFile, recipeName: runspec.name, argv: args.argv });
    const artifact = getPath(job, "artifact.name");

    if (executor === "slurm") {
      // 5s. Slurm: the code's layout in its package, the train config with remote paths (paths
      // under the packaged root become /nemo_run/code/…), the command run in the job's code dir,
      // and the job (image squashed for pyxis, git mounts synced, sbatch script rendered).
      const layout = await codePackageLayout(located.script);
      const train = extractTrainConfig(job, {
        forRemote: true,
        repoRoot: layout.root,
        cwd: Deno.cwd(),
      });
      const inPackage = packaging === "code" ? layout.scriptArcname : SELF_CONTAINED_NAME;
      // The code packager names the config by its format (config.json, …); the single file
      // packager ships config.yaml.
      const shippedConfig = packaging === "code"
        ? packagedConfigName(runspec.config.format)
        : CONFIG_NAME;
      const torchrun = runspec.run.launch === "torchrun";
      let command: string[];
      if (runspec.run.cmd) {
        // The runspec's command, from its workdir, on the shipped script and config.yaml.
        command = [
          "bash",
          "-c",
          workdirCommand(
            runspec,
            `"$NEMOTRON_JOB_DIR"/code/${shellQuote(inPackage)}`,
            `"$NEMOTRON_JOB_DIR"/code/${shippedConfig}`,
            args.passthrough,
          ),
        ];
      } else if (packaging === "code") {
        // The package's launcher runs the script with --config config.yaml (torchrun wraps it).
        command = [...(torchrun ? [] : ["python3"]), LAUNCHER_NAME, ...args.passthrough];
      } else {
        command = [
          ...(torchrun ? [] : ["python3"]),
          SELF_CONTAINED_NAME,
          "--config",
          shippedConfig,
          ...args.passthrough,
        ];
      }
      const { job: slurmJob, script, notes } = await planSlurmJob({
        args,
        settings,
        envFile,
        runspec,
        command,
        env,
      });
      // The code package, decided before anything is written: the code packager's plan (what the
      // deny list leaves out, shown in a dry run; the size guard, max_package_mb and
      // --force-package); the single-file packager writes its archive after the dry run.
      const trainConfig = renderConfig(train, runspec.config.format);
      const plan = packaging === "code"
        ? await planCodePackage({
          script: { path: located.script },
          trainConfig,
          configFormat: runspec.config.format,
          jobDir: slurmJob.jobDir,
          cwd: scriptDir,
          envFile: envFile?.path,
          remoteJobDir: slurmJob.remoteJobDir,
        })
        : undefined;
      if (plan) {
        if (plan.scriptArcname !== layout.scriptArcname) {
          throw new RuntimeFailure(
            `the code package holds the script as ${plan.scriptArcname}, expected ${layout.scriptArcname}`,
            { hint: "this is a bug in nemotron: please report it with the script's location" },
          );
        }
        checkPackageSize(plan, maxPackageMb(settings.env), args.forcePackage ?? false);
      }
      if (args.dryRun) {
        printDryRun({
          job,
          train,
          env: { ...env, NEMOTRON_JOB_DIR: slurmJob.taskJobDir },
          command: [...slurmJob.taskArgv],
          executor,
          jobDir: slurmJob.jobDir,
          forRemote: true,
          repoRoot: layout.root,
          cwd: Deno.cwd(),
          codePackage: plan,
          script,
          notes: [...notes, `code: ${packaging} package of ${layout.root}`],
        }, args.json);
        return { code: 0 };
      }

      // 6s. Job dir: script + job.json (+ private secrets file), job.yaml and the train config,
      // the code package unpacked into code/.
      const prepared = prepareJobDir(slurmJob, script);
      writeJobFiles(prepared.configsDir, job, train, runspec.config.format);
      // Written into the prepared dir: the job dir here, or the local staging dir of a job that
      // goes through an ssh tunnel (slurmJob.jobDir is then a path on the cluster).
      const pkg = plan
        ? await writeCodePackage(plan, prepared.jobDir)
        : await packageSelfContained({
          script: { path: located.script },
          trainConfig,
          jobDir: prepared.jobDir,
          repoRoot: layout.root,
          scriptDir,
        });
      for (const w of pkg.warnings) console.error(`warning: ${w}`);
      await extractTarball(pkg.tarball, prepared.codeDir);

      // 7s. Submit; --run follows the log and returns the job's exit code.
      return await submitRecipeJob(slurmJob, args, {});
    }

    // 5. Local: the train config, the command (the script where it is); a dry run stops here.
    const train = extractTrainConfig(job, { forRemote: false });
    const jobsBase = localJobsBase();
    const trainFile = trainConfigName(runspec.config.format);
    // torchrun (without run.cmd) as demo ddp and the Slurm job run it: --standalone, the
    // interpreter and torchrun_args from run.env; else the runspec's launch (run.cmd, python3).
    const localArgv = (config: string) =>
      runspec.run.launch === "torchrun" && !runspec.run.cmd
        ? localTorchrunArgv({
          runEnv,
          script: located.script,
          config,
          passthrough: args.passthrough,
        })
        : launchArgv({ runspec, script: located.script, config, passthrough: args.passthrough });
    if (args.dryRun) {
      const planned = plannedJobDir(jobsBase, runspec.name);
      printDryRun({
        job,
        train,
        env: { ...env, NEMOTRON_JOB_DIR: planned },
        command: localArgv(path.join(planned, trainFile)),
        executor,
        jobDir: planned,
        forRemote: false,
      }, args.json);
      return { code: 0 };
    }

    // 6. Job dir: job.yaml, the train config; startup commands; run in the job dir with a log.
    const startup = startupCommands(runEnv, envFile?.path);
    const jobDir = createJobDir(jobsBase, runspec.name);
    const files = writeJobFiles(jobDir, job, train, runspec.config.format);
    const childEnv = { ...env, NEMOTRON_JOB_DIR: jobDir };
    const argv = localArgv(files.trainConfig);
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
    located.cleanup();
  }
}
