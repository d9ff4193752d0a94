/**
 * `nemotron nano3 pipe`: pretrain then SFT as one Slurm pipeline (SFT waits for pretrain,
 * `afterok`; if pretrain fails, SFT is cancelled and `jobs status` says which stage failed). Both
 * stages get the same `-c`, overrides and script arguments, each resolving the config name in its
 * own config dir. Needs `--run` or `--batch` (RL is not part of the pipe).
 */
import { Command } from "../../lib/cli/command.ts";
import { type CliContext, leafTokens, parseRecipeArgs } from "../../lib/cli/args.ts";
import { UsageError } from "../../lib/errors.ts";
import { followJob } from "../../lib/exec/follow.ts";
import { newJobKey, slurmJobName } from "../../lib/exec/slurm.ts";
import { submissionReport } from "../../lib/exec/submit.ts";
import { runNano3Pretrain } from "./pretrain.ts";
import { runNano3Sft } from "./sft.ts";

const PIPE_HELP = `Usage: nemotron nano3 pipe [OPTIONS] [key=value ...] [SCRIPT ARGS ...]

  Submit 'nano3 pretrain', then 'nano3 sft' depending on it, as one Slurm
  pipeline. Both stages get the same -c, overrides and script arguments.
  Needs --run PROFILE (wait for the last stage) or --batch PROFILE.

Options: the global options of every recipe (-c, -r, -b, -d, --json); see
'nemotron nano3 pretrain --help' and 'nemotron nano3 sft --help'.

Examples:
  nemotron nano3 pipe -c tiny -b my-cluster             Submit both stages
  nemotron nano3 pipe -c tiny -b my-cluster --dry-run   Show both stages`;

export function nano3PipeCommand(cli: CliContext): Command {
  return new Command("pipe")
    .description("Pretrain then SFT as one Slurm pipeline (needs --run or --batch)")
    .allowUnknownOption().allowExcessArguments().helpOption(false)
    .action(async () => {
      const tokens = leafTokens(cli, 2);
      const args = parseRecipeArgs(tokens, cli);
      if (args.help) {
        console.log(PIPE_HELP);
        return;
      }
      if (args.stage) {
        throw new UsageError("--stage stages one job, not a pipeline", {
          hint:
            "stage each stage on its own: nemotron nano3 pretrain --stage -b PROFILE, then nemotron nano3 sft --stage -b PROFILE",
        });
      }
      if (args.mode === "local") {
        throw new UsageError("pipe requires --run or --batch (remote execution)", {
          hint: "add --batch PROFILE (or --run PROFILE to wait for the last stage)",
        });
      }
      const pipeline = args.dryRun ? undefined : { id: newJobKey("nano3-pipe"), stages: 2 };
      const pretrain = await runNano3Pretrain(cli, tokens, {
        pipeline: pipeline && { ...pipeline, stage: 0 },
        noFollow: true,
      });
      if (pretrain.code !== 0) {
        Deno.exitCode = pretrain.code;
        return;
      }
      const sft = await runNano3Sft(cli, tokens, {
        after: pretrain.slurmJobIds,
        pipeline: pipeline && { ...pipeline, stage: 1 },
        noFollow: true,
      });
      if (sft.code !== 0 || args.dryRun) {
        Deno.exitCode = sft.code;
        return;
      }
      const subs = [...(pretrain.submitted ?? []), ...(sft.submitted ?? [])];
      if (args.mode === "batch") {
        console.log(submissionReport("batch", subs, args.json));
        return;
      }
      console.error(submissionReport("run", subs, false));
      const last = subs[subs.length - 1];
      const followed = await followJob({ ...last, slurm_name: slurmJobName(last.name) });
      Deno.exitCode = followed.exitCode;
    });
}
