/**
 * nemotron: the command tree. Every group and leaf is imported explicitly here; a broken command
 * file is a build error, never a silently missing group.
 */
import { Command } from "./lib/cli/command.ts";
import denoJson from "./deno.json" with { type: "json" };
import { type CliContext, extractLeadingGlobals } from "./lib/cli/args.ts";
import { formatError, NemotronError } from "./lib/errors.ts";
import { GLOBAL_OPTIONS_HELP } from "./lib/cli/help.ts";
import { completionCommand } from "./commands/completion.ts";
import { runspecCommand } from "./commands/runspec.ts";
import { envCommand } from "./commands/env.ts";
import { squashCommand } from "./commands/squash.ts";
import { configCommand } from "./commands/config.ts";
import { jobsCommand } from "./commands/jobs.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { artifactsCommand } from "./commands/artifacts.ts";
import { demoDataCommand } from "./commands/demo/data.ts";
import { demoTrainCommand } from "./commands/demo/train.ts";
import { demoPipeCommand } from "./commands/demo/pipe.ts";
import { nano3PretrainCommand } from "./commands/nano3/pretrain.ts";
import { nano3SftCommand } from "./commands/nano3/sft.ts";
import { nano3RlCommand } from "./commands/nano3/rl.ts";
import { nano3EvalCommand } from "./commands/nano3/eval.ts";
import { nano3PipeCommand } from "./commands/nano3/pipe.ts";
import { nano3DataPrepPretrainCommand } from "./commands/nano3/data/prep/pretrain.ts";
import { nano3DataPrepSftCommand } from "./commands/nano3/data/prep/sft.ts";
import { nano3DataPrepRlCommand } from "./commands/nano3/data/prep/rl.ts";

/** Build the whole command tree for one invocation. */
export function buildProgram(cli: CliContext): Command {
  const program = new Command("nemotron")
    .description("Launch training and data recipes locally, on Slurm, or as Ray clusters on Slurm.")
    .version(denoJson.version, "-V, --version", "print the version")
    .addHelpText("after", GLOBAL_OPTIONS_HELP);
  program.addCommand(
    new Command("demo")
      .description("CPU demo recipes: tokenize a bundled corpus, train a tiny n-gram model")
      .addCommand(demoDataCommand(cli))
      .addCommand(demoTrainCommand(cli))
      .addCommand(demoPipeCommand(cli)),
  );
  program.addCommand(
    new Command("nano3")
      .description("Nemotron 3 Nano training recipes (NeMo containers, GPUs)")
      .addCommand(nano3PretrainCommand(cli))
      .addCommand(nano3SftCommand(cli))
      .addCommand(nano3RlCommand(cli))
      .addCommand(nano3EvalCommand(cli))
      .addCommand(nano3PipeCommand(cli))
      .addCommand(
        new Command("data").description("Data preparation for the nano3 stages").addCommand(
          new Command("prep")
            .description("Prepare the data of a stage (Ray data jobs)")
            .addCommand(nano3DataPrepPretrainCommand(cli))
            .addCommand(nano3DataPrepSftCommand(cli))
            .addCommand(nano3DataPrepRlCommand(cli)),
        ),
      ),
  );
  program.addCommand(runspecCommand(cli));
  program.addCommand(envCommand(cli));
  program.addCommand(squashCommand(cli));
  program.addCommand(configCommand(cli));
  program.addCommand(jobsCommand(cli));
  program.addCommand(doctorCommand(cli));
  program.addCommand(artifactsCommand(cli));
  program.addCommand(completionCommand(cli, () => program));
  return program;
}

/** Run the CLI with `argv` (without the executable); returns the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  try {
    const { leading, rest } = extractLeadingGlobals(argv);
    const cli: CliContext = { argv, leading, rest };
    const program = buildProgram(cli);
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
  if (err instanceof NemotronError) {
    console.error(formatError(err));
    return err.exitCode;
  }
  console.error(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return 1;
}

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
