/**
 * `nemotron recipes list|show|export`: the recipe catalogue. `list` shows every recipe `nemotron
 * run NAME` can run — the built-ins and the runspec scripts under the directories named by env.toml
 * `[cli] recipe_dirs` and `NEMOTRON_RECIPE_PATH`; `show` one recipe's resolved runspec, configs and
 * files; `export` writes a built-in recipe (script, config dir, helper files) into a directory, so
 * that `nemotron run DIR/<script>.py` runs the fork.
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { loadEnvFile } from "../lib/env_toml.ts";
import { formatLocation, UsageError } from "../lib/errors.ts";
import * as path from "../lib/path.ts";
import {
  BUILTIN_PREFIX,
  type CatalogueEntry,
  findRecipe,
  loadCatalogue,
  recipeDirs,
} from "../lib/recipe_catalogue.ts";
import { writeFilesInto } from "../lib/recipe_files.ts";
import { runspecToJson } from "../lib/runspec.ts";
import { BUILTIN_RECIPES, recipeFiles } from "../recipes/index.ts";

/** The catalogue of this invocation (env.toml found by the normal discovery). */
function catalogue(): CatalogueEntry[] {
  const envFile = loadEnvFile();
  return loadCatalogue(
    BUILTIN_RECIPES,
    recipeDirs(envFile),
    (w) =>
      console.error(`${formatLocation({ file: w.file, line: w.line })}: warning: ${w.message}`),
  );
}

/** The resolved runspec of an entry; a built-in's paths are shown as `built-in:…`. */
function runspecOf(e: CatalogueEntry): Record<string, unknown> {
  const json = runspecToJson(e.runspec);
  if (!e.builtin) return { ...json, name: e.name };
  const dir = path.dirname(e.builtin.recipe.scriptPath);
  return {
    ...json,
    script_path: e.script,
    config_dir: BUILTIN_PREFIX + path.join(dir, e.builtin.recipe.configDir),
  };
}

function listRow(e: CatalogueEntry) {
  return {
    name: e.name,
    command: e.command,
    launch: e.runspec.run.launch,
    image: e.runspec.image,
    configs: e.configs,
    source: e.source,
    script: e.script,
  };
}

export function recipesCommand(_cli: CliContext): Command {
  const group = new Command("recipes").description(
    "List, show and export (fork) the recipes nemotron can run",
  ).examples([
    ["nemotron recipes list", "Every recipe nemotron run NAME can run"],
    ["nemotron recipes show demo/train", "One recipe: runspec, configs, files"],
    ["nemotron recipes export demo/train ./my-demo", "Fork a built-in recipe"],
  ]);

  group.command("list")
    .description("every runnable recipe: name, command, launch, image, configs, source")
    .examples([
      ["nemotron recipes list", "A table, built-ins first"],
      ["NEMOTRON_RECIPE_PATH=~/recipes nemotron recipes list", "With your own recipe dir"],
      ["nemotron recipes list --json", "Machine-readable"],
    ])
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      const rows = catalogue().map(listRow);
      if (opts.json) {
        console.log(JSON.stringify(rows, null, 2));
        return;
      }
      const table = [
        ["NAME", "COMMAND", "LAUNCH", "IMAGE", "CONFIGS", "SOURCE"],
        ...rows.map((r) => [
          r.name,
          r.command,
          r.launch,
          r.image ?? "-",
          r.configs.join(",") || "-",
          r.source,
        ]),
      ];
      const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
      for (const row of table) {
        console.log(row.map((c, i) => i === row.length - 1 ? c : c.padEnd(widths[i])).join("  "));
      }
    });

  group.command("show")
    .description("a recipe's resolved runspec, config names and files")
    .examples([
      ["nemotron recipes show nano3/rl", "Launch, image, command, configs, files"],
      ["nemotron recipes show demo/train --json", "Machine-readable"],
    ])
    .argument("<name>", "recipe name (nemotron recipes list)")
    .option("--json", "print JSON")
    .action((name: string, opts: { json?: boolean }) => {
      const e = findRecipe(catalogue(), name);
      const data = {
        ...listRow(e),
        runspec: runspecOf(e),
        files: e.files,
      };
      if (opts.json) {
        console.log(JSON.stringify(data, null, 2));
        return;
      }
      const r = e.runspec;
      const rows: [string, string][] = [
        ["name", e.name],
        ["command", e.command],
        ["source", e.source],
        ["script", e.script],
        ["docs", r.docs || "-"],
        ["image", r.image ?? "-"],
        ["run.launch", r.run.launch],
        ["run.cmd", r.run.cmd ?? "-"],
        ["run.workdir", r.run.workdir ?? "-"],
        ["config.dir", r.config.dir],
        ["config.default", r.config.default],
        ["config.format", r.config.format],
        ["configs", e.configs.join(", ") || "-"],
        ["resources", `nodes=${r.resources.nodes} gpus_per_node=${r.resources.gpus_per_node}`],
      ];
      for (const [k, v] of Object.entries(r.env)) rows.push([`env.${k}`, v]);
      const width = Math.max(...rows.map(([k]) => k.length));
      for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
      console.log("files:");
      for (const f of e.files) console.log(`  ${f}`);
    });

  group.command("export")
    .description("write a built-in recipe (script, configs, helpers) into DIR to fork it")
    .examples([
      ["nemotron recipes export demo/train ./my-demo", "Then: nemotron run ./my-demo/train.py"],
      ["nemotron recipes export demo/data ./my-demo", "Its sibling, into the same dir"],
      ["nemotron recipes export nano3/sft ./sft --force", "Overwrite edited files"],
    ])
    .argument("<name>", "built-in recipe name, e.g. demo/train")
    .argument("<dir>", "target directory (created if missing)")
    .option("--force", "overwrite files that exist with other content")
    .action((name: string, dir: string, opts: { force?: boolean }) => {
      const e = findRecipe(catalogue(), name);
      if (!e.builtin) {
        throw new UsageError(`'${name}' is not a built-in recipe: it is ${e.script}`, {
          hint: "copy its directory to fork it; export writes out built-in recipes only",
        });
      }
      const written = writeFilesInto(dir, recipeFiles(e.builtin.recipe), { force: opts.force });
      const script = path.join(path.resolve(dir), path.basename(e.builtin.recipe.scriptPath));
      for (const p of written) console.error(`wrote ${p}`);
      console.log(`exported ${e.name} to ${path.resolve(dir)}`);
      console.log(`run it: nemotron run ${script}`);
      console.log(
        `(its runspec name is still '${e.name}'; rename it before adding the directory to ` +
          "[cli] recipe_dirs, or the catalogue reports two recipes with one name)",
      );
    });
  return group;
}
