/**
 * `nemotron runspec show SCRIPT [--json]` and `nemotron runspec check SCRIPT...`: read the PEP 723
 * `[tool.runspec]` block of recipe scripts.
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { formatError, formatLocation, NemotronError } from "../lib/errors.ts";
import { parseRunspecFile, runspecToJson, type RunspecWarning } from "../lib/runspec.ts";

function printWarnings(warnings: readonly RunspecWarning[]): void {
  for (const w of warnings) {
    console.error(`${formatLocation({ file: w.file, line: w.line })}: warning: ${w.message}`);
  }
}

export function runspecCommand(_cli: CliContext): Command {
  const group = new Command("runspec").description(
    "Inspect the [tool.runspec] block of recipe scripts",
  )
    .examples([
      ["nemotron runspec show train.py", "The resolved [tool.runspec] of a script"],
      ["nemotron runspec check recipes/*.py", "Check many scripts (exit 2 on a problem)"],
    ]);

  group.command("show")
    .description("print the resolved runspec of SCRIPT, defaults included")
    .examples([
      ["nemotron runspec show train.py --json", "As JSON, with the TOML key names"],
    ])
    .argument("<script>", "path to a recipe script")
    .option("--json", "print JSON with the TOML key names")
    .action((script: string, opts: { json?: boolean }) => {
      const { runspec, warnings } = parseRunspecFile(script);
      printWarnings(warnings);
      const data = runspecToJson(runspec);
      if (opts.json) {
        console.log(JSON.stringify(data, null, 2));
        return;
      }
      const rows: [string, unknown][] = [
        ["script", data.script_path],
        ["name", runspec.name],
        ["docs", runspec.docs],
        ["image", runspec.image],
        ["schema", runspec.schema],
        ["run.launch", runspec.run.launch],
        ["run.cmd", runspec.run.cmd],
        ["run.workdir", runspec.run.workdir],
        ["config.dir", runspec.config.dir],
        ["config.default", runspec.config.default],
        ["config.format", runspec.config.format],
        ["config_dir", runspec.config_dir],
        ["resources.nodes", runspec.resources.nodes],
        ["resources.gpus_per_node", runspec.resources.gpus_per_node],
      ];
      for (const [k, v] of Object.entries(runspec.env)) rows.push([`env.${k}`, v]);
      const width = Math.max(...rows.map(([k]) => k.length));
      for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v === null ? "(none)" : v}`);
      if (runspec.setup) {
        console.log("setup:");
        for (const line of runspec.setup.split("\n")) console.log(`  ${line}`);
      }
    });

  group.command("check")
    .description("parse each SCRIPT; print path:line:col: message per problem (exit 2 if any)")
    .examples([
      ["nemotron runspec check train.py eval.py", "One line per problem, path:line:col"],
    ])
    .argument("<scripts...>", "recipe scripts")
    .action((scripts: string[]) => {
      let failed = 0;
      for (const script of scripts) {
        try {
          printWarnings(parseRunspecFile(script).warnings);
        } catch (err) {
          if (!(err instanceof NemotronError)) throw err;
          failed++;
          const e = err.location ? err : new NemotronError(err.message, 2, {
            location: { file: script },
            hint: err.hint,
          });
          console.error(formatError(e));
        }
      }
      if (failed > 0) Deno.exitCode = 2;
      else console.error(`${scripts.length} script(s) ok`);
    });
  return group;
}
