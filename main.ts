/**
 * nemotron: the command tree. Every group and leaf is imported explicitly here; a broken command
 * file is a build error, never a silently missing group.
 */
import { Command } from "./lib/cli/command.ts";
import denoJson from "./deno.json" with { type: "json" };
import { type CliContext, extractLeadingGlobals } from "./lib/cli/args.ts";
import { formatError, NemotronError } from "./lib/errors.ts";
import { globalOptionsHelp } from "./lib/cli/help.ts";
import { colorLabels, stderrColor } from "./lib/cli/color.ts";

const SQUASH_DESCRIPTION =
  "convert a docker image into an enroot .sqsh (natively, or with --enroot)";
const JOBS_DESCRIPTION = "List, inspect, follow and cancel jobs (Slurm jobs and local runs)";
const ARTIFACTS_DESCRIPTION =
  "List, inspect, publish and alias versioned artifacts (datasets, checkpoints)";
const CONFIG_DESCRIPTION = "Inspect OmegaConf-style YAML configs";
const RUN_DESCRIPTION =
  "Run a Python script with a [tool.runspec] block (or a recipe by name) like a built-in recipe";
const RECIPES_DESCRIPTION = "List, show and export (fork) the recipes nemotron can run";
const INIT_DESCRIPTION = "Write a starter recipe (script, config) and, if none is found, env.toml";
const DOCTOR_DESCRIPTION =
  "Check what this login node has for nemotron (Slurm, tools, env.toml, profiles)";

/**
 * Build the whole command tree for one invocation. Each command's module is imported explicitly
 * but lazily (`import()` of a literal path: type-checked and bundled like a static import), so a
 * command pays at start-up only for itself — `--help` loads none of them.
 */
export function buildProgram(cli: CliContext): Command {
  const program = new Command("nemotron")
    .description("Launch training and data recipes locally, on Slurm, or as Ray clusters on Slurm.")
    .version(
      denoJson.version,
      "-V, --version",
      "Print the version, the commit and the Deno version (--json)",
    )
    .addHelpText("after", globalOptionsHelp());
  program.addCommand(
    new Command("demo")
      .description("CPU demo recipes: tokenize a bundled corpus, train a tiny n-gram model")
      .examples([
        ["nemotron demo pipe -c tiny", "The whole demo pipeline, here, in seconds"],
        ["nemotron demo train -c tiny -d", "Show what would run; write nothing"],
        ["nemotron demo pipe -c tiny -b cluster", "Submit both stages to Slurm"],
      ])
      .addCommand(Command.lazy(
        "data",
        "Tokenize the bundled corpus into a byte-level dataset artifact (CPU demo)",
        async () => (await import("./commands/demo/data.ts")).demoDataCommand(cli),
      ))
      .addCommand(Command.lazy(
        "train",
        "Train a tiny n-gram language model on the demo dataset artifact (CPU demo)",
        async () => (await import("./commands/demo/train.ts")).demoTrainCommand(cli),
      ))
      .addCommand(Command.lazy(
        "ddp",
        "Train a tiny model with DistributedDataParallel over torchrun (CPU, gloo; needs torch)",
        async () => (await import("./commands/demo/ddp.ts")).demoDdpCommand(cli),
      ))
      .addCommand(Command.lazy(
        "pipe",
        "Run demo data, then demo train (the whole demo pipeline)",
        async () => (await import("./commands/demo/pipe.ts")).demoPipeCommand(cli),
      )),
  );
  program.addCommand(
    new Command("nano3")
      .description("Nemotron 3 Nano training recipes (NeMo containers, GPUs)")
      .examples([
        ["nemotron nano3 pretrain -c tiny -d", "Show the job a pretraining run would be"],
        ["nemotron nano3 pipe -c tiny -b cluster", "Pretrain then SFT on Slurm"],
        ["nemotron nano3 data prep sft -b cluster", "Prepare the SFT data (Ray)"],
      ])
      .addCommand(Command.lazy(
        "pretrain",
        "Run pretraining with Megatron-Bridge (stage0)",
        async () => (await import("./commands/nano3/pretrain.ts")).nano3PretrainCommand(cli),
      ))
      .addCommand(Command.lazy(
        "sft",
        "Run supervised fine-tuning with Megatron-Bridge (stage1)",
        async () => (await import("./commands/nano3/sft.ts")).nano3SftCommand(cli),
      ))
      .addCommand(Command.lazy(
        "rl",
        "Run reinforcement learning (GRPO) with NeMo-RL on Ray (stage2)",
        async () => (await import("./commands/nano3/rl.ts")).nano3RlCommand(cli),
      ))
      .addCommand(Command.lazy(
        "eval",
        "Evaluate the model with nemo-evaluator-launcher (stage3)",
        async () => (await import("./commands/nano3/eval.ts")).nano3EvalCommand(cli),
      ))
      .addCommand(Command.lazy(
        "pipe",
        "Pretrain then SFT as one Slurm pipeline (needs --run or --batch)",
        async () => (await import("./commands/nano3/pipe.ts")).nano3PipeCommand(cli),
      ))
      .addCommand(
        new Command("data").description("Data preparation for the nano3 stages")
          .examples([["nemotron nano3 data prep pretrain -c tiny -d", "Show the data job"]])
          .addCommand(
            new Command("prep")
              .description("Prepare the data of a stage (Ray data jobs)")
              .examples([
                ["nemotron nano3 data prep pretrain -b cluster", "Tokenize pretraining data"],
                ["nemotron nano3 data prep rl -c tiny -d", "Show the RL data job"],
              ])
              .addCommand(Command.lazy(
                "pretrain",
                "Prepare pretraining data: tokenize raw text into bin/idx blends (Ray)",
                async () =>
                  (await import("./commands/nano3/data/prep/pretrain.ts"))
                    .nano3DataPrepPretrainCommand(cli),
              ))
              .addCommand(Command.lazy(
                "sft",
                "Prepare SFT data: tokenize and pack chat data (Ray)",
                async () =>
                  (await import("./commands/nano3/data/prep/sft.ts")).nano3DataPrepSftCommand(cli),
              ))
              .addCommand(Command.lazy(
                "rl",
                "Prepare RL data: prompts and references (Ray)",
                async () =>
                  (await import("./commands/nano3/data/prep/rl.ts")).nano3DataPrepRlCommand(cli),
              )),
          ),
      ),
  );
  program.addCommand(Command.lazy(
    "run",
    RUN_DESCRIPTION,
    async () => (await import("./commands/run.ts")).runCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "recipes",
    RECIPES_DESCRIPTION,
    async () => (await import("./commands/recipes.ts")).recipesCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "init",
    INIT_DESCRIPTION,
    async () => (await import("./commands/init.ts")).initCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "squash",
    SQUASH_DESCRIPTION,
    async () => (await import("./commands/squash.ts")).squashCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "jobs",
    JOBS_DESCRIPTION,
    async () => (await import("./commands/jobs.ts")).jobsCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "artifacts",
    ARTIFACTS_DESCRIPTION,
    async () => (await import("./commands/artifacts.ts")).artifactsCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "config",
    CONFIG_DESCRIPTION,
    async () => (await import("./commands/config.ts")).configCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "runspec",
    "Inspect the [tool.runspec] block of recipe scripts",
    async () => (await import("./commands/runspec.ts")).runspecCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "env",
    "Show env.toml profiles",
    async () => (await import("./commands/env.ts")).envCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "doctor",
    DOCTOR_DESCRIPTION,
    async () => (await import("./commands/doctor.ts")).doctorCommand(cli),
  ));
  program.addCommand(Command.lazy(
    "completion",
    "Print a shell completion script (bash, zsh or fish)",
    async () => (await import("./commands/completion.ts")).completionCommand(cli),
  ));
  return program;
}

/** Run the CLI with `argv` (without the executable); returns the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  try {
    const { leading, rest } = extractLeadingGlobals(argv);
    const cli: CliContext = { argv, leading, rest };
    // `--version [--json]`: version, the commit it was built from, the Deno runtime.
    if ((rest[0] === "--version" || rest[0] === "-V") && rest.length <= 2) {
      const json = rest[1] === "--json";
      if (rest.length === 1 || json) {
        const { versionInfo, versionLine } = await import("./lib/version.ts");
        console.log(json ? JSON.stringify(versionInfo(), null, 2) : versionLine());
        return 0;
      }
    }
    const program = buildProgram(cli);
    // Hidden: the completion engine the shell scripts of `nemotron completion` call.
    if (argv[0] === "__complete") {
      return (await import("./commands/complete.ts")).runComplete(program, argv.slice(1));
    }
    if (rest.length === 0) {
      program.outputHelp();
      return 0;
    }
    await program.parseAsync(rest, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : 0;
  } catch (err) {
    return reportError(err);
  }
}

/** Print an error the way users see it and return its exit code. */
function reportError(err: unknown): number {
  // The reader of our output went away (`nemotron jobs logs 1 | head -1`): like git, stop quietly.
  if (err instanceof Deno.errors.BrokenPipe) return 0;
  if (err instanceof NemotronError) {
    console.error(colorLabels(formatError(err), stderrColor()));
    return err.exitCode;
  }
  console.error(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return 1;
}

/**
 * Whether `argv` only prints — the help (no command, or `--help`/`-h` as the last word), the
 * version, or completion candidates (`__complete`, on every TAB) — and so leaves nothing running.
 */
function onlyPrints(argv: readonly string[]): boolean {
  const last = argv[argv.length - 1];
  return argv.length === 0 || argv[0] === "__complete" ||
    (argv.length <= 2 && (argv[0] === "--version" || argv[0] === "-V")) ||
    ((last === "--help" || last === "-h") && !argv.includes("--"));
}

if (import.meta.main) {
  const code = await runCli(Deno.args);
  // Start-up: Deno writes its V8 code cache of this program when the program ends by itself, and
  // Deno.exit skips that (every later start then compiles the whole bundle again: ~40 ms instead
  // of ~23 ms for `--help`). A command that only printed ends by itself; any other ends through
  // Deno.exit, so nothing it left behind (a child, a signal listener) can keep it running.
  if (onlyPrints(Deno.args)) Deno.exitCode = code;
  else Deno.exit(code);
}
