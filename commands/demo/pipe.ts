/**
 * `nemotron demo pipe`: `demo data` then `demo train` with the same config name, overrides and
 * script arguments. Locally the stages run one after the other (a failed stage stops the pipe);
 * with `--batch`/`--run` both are submitted at once, train depending on data (`afterok`).
 * At the end it prints where the artifacts went.
 */
import { Command } from "../../lib/cli/command.ts";
import { UsageError } from "../../lib/errors.ts";
import { type CliContext, leafTokens, parseRecipeArgs } from "../../lib/cli/args.ts";
import { registryFromEnvironment } from "../../lib/artifacts/root.ts";
import { runDemoData } from "./data.ts";
import { runDemoTrain } from "./train.ts";
import { newJobKey, slurmJobName } from "../../lib/exec/slurm.ts";
import { submissionReport } from "../../lib/exec/submit.ts";
import { followJob } from "../../lib/exec/follow.ts";

export function demoPipeCommand(cli: CliContext): Command {
  return new Command("pipe")
    .description("Run demo data, then demo train (the whole demo pipeline)")
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
            "stage each stage on its own: nemotron demo data --stage -b PROFILE, then nemotron demo train --stage -b PROFILE",
        });
      }
      // On Slurm both stages are submitted now, as one pipeline: train waits for data (afterok);
      // if data fails, nemotron cancels train and `jobs status` says which stage failed.
      const remote = args.mode !== "local" && !args.dryRun;
      const pipeline = remote ? { id: newJobKey("demo-pipe"), stages: 2 } : undefined;

      // Stage 1: data. Locally a failure stops the pipe with the stage's exit code.
      const data = await runDemoData(cli, tokens, {
        pipeline: pipeline && { ...pipeline, stage: 0 },
        noFollow: remote,
      });
      if (data.code !== 0) {
        console.error(
          "error: demo pipe stopped: stage 'demo data' failed; 'demo train' did not run",
        );
        Deno.exitCode = data.code;
        return;
      }
      // Stage 2: train, after data.
      const train = await runDemoTrain(cli, tokens, {
        after: data.slurmJobIds,
        pipeline: pipeline && { ...pipeline, stage: 1 },
        noFollow: remote,
      });
      if (train.code !== 0) {
        Deno.exitCode = train.code;
        return;
      }
      if (remote) {
        const subs = [...(data.submitted ?? []), ...(train.submitted ?? [])];
        if (args.mode === "batch") {
          console.log(submissionReport("batch", subs, args.json));
          return;
        }
        console.error(submissionReport("run", subs, false));
        const last = subs[subs.length - 1];
        const followed = await followJob({ ...last, slurm_name: slurmJobName(last.name) });
        Deno.exitCode = followed.exitCode;
        return;
      }
      if (args.dryRun || args.mode !== "local") return;
      const registry = registryFromEnvironment();
      console.log("\ndemo pipe finished; artifacts:");
      for (const name of [data.artifact, train.artifact]) {
        if (!name) continue;
        const m = registry.resolve(name);
        console.log(`  ${m.name}:v${m.version}  ${m.path}`);
      }
      console.log(`  registry: ${registry.root}`);
      if (train.artifact) console.log(`  lineage:  nemotron artifacts lineage ${train.artifact}`);
    });
}

const PIPE_HELP = `Usage: nemotron demo pipe [OPTIONS] [key=value ...] [SCRIPT ARGS ...]

  Run 'demo data', then 'demo train', with the same -c, overrides and script
  arguments. Locally the stages run in order and a failed stage stops the pipe;
  with --batch/--run both stages are submitted at once, train depending on data.

Options: the global options of every recipe (-c, -r, -b, -d, --json); see
'nemotron demo data --help' and 'nemotron demo train --help'.

Examples:
  nemotron demo pipe -c tiny              Local, in seconds
  nemotron demo pipe -c tiny --dry-run    Show both stages
  nemotron demo pipe -c tiny -b cluster   Submit both stages to Slurm`;
