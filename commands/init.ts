/**
 * `nemotron init [DIR] [--name NAME] [--force]`: write a starter recipe into DIR (default: the
 * current directory) — `train.py` with a `[tool.runspec]` block (stdlib only, config as JSON) and
 * `config/default.yaml` — and, when env.toml discovery from DIR finds none, a commented `env.toml`
 * with a `local` profile and a `slurm` profile whose partition and account come from `sinfo` and
 * `sacctmgr` when they answer (placeholders with a comment otherwise). `nemotron run train.py`
 * works right after. Existing files with other content are never overwritten without `--force`.
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { findEnvFile } from "../lib/env_toml.ts";
import { UsageError } from "../lib/errors.ts";
import * as path from "../lib/path.ts";
import { writeFilesInto } from "../lib/recipe_files.ts";

/** What `sinfo`/`sacctmgr` reported (undefined: not available or no answer). */
interface SlurmFacts {
  readonly partition?: string;
  readonly account?: string;
}

/** Run a command for at most 5 s; its stdout, or undefined when it is missing or fails. */
async function probe(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(5000),
    }).output();
    return out.code === 0 ? new TextDecoder().decode(out.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/** The default partition (`sinfo`'s `*`, else the first) and the user's first account. */
async function slurmFacts(): Promise<SlurmFacts> {
  const parts = (await probe("sinfo", ["-h", "-o", "%P"]))?.split("\n").map((l) => l.trim())
    .filter(Boolean) ?? [];
  const partition = (parts.find((p) => p.endsWith("*")) ?? parts[0])?.replace(/\*$/, "");
  const user = Deno.env.get("USER") ?? Deno.env.get("LOGNAME");
  const accounts = user
    ? (await probe("sacctmgr", ["-nP", "show", "assoc", `where`, `user=${user}`, "format=account"]))
      ?.split("\n").map((l) => l.trim()).filter(Boolean) ?? []
    : [];
  return { partition: partition || undefined, account: accounts[0] };
}

/** A TOML basic string. */
function tomlString(s: string): string {
  return JSON.stringify(s);
}

function starterScript(name: string): string {
  return `# /// script
# requires-python = ">=3.8"
# dependencies = []
#
# [tool.runspec]
# schema = "1"
# name = ${tomlString(name)}
# docs = "Starter recipe written by nemotron init: edit train.py and config/default.yaml."
#
# [tool.runspec.run]
# launch = "direct"        # direct | torchrun | ray
#
# [tool.runspec.config]
# dir = "./config"         # config names are the YAML files here (-c NAME)
# default = "default"
# format = "json"          # the script gets its config as JSON: no YAML library needed
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
"""${name}: a starter recipe.

nemotron runs it as: python3 train.py --config <job dir>/train.json [script args ...]
Run it: nemotron run train.py [-c NAME] [train.steps=10 ...] [--run|--batch PROFILE]
"""

import argparse
import json
import os
import random


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, help="the config nemotron wrote (JSON)")
    args, extra = parser.parse_known_args()
    with open(args.config, "r", encoding="utf-8") as f:
        cfg = json.load(f)
    train = cfg["train"]
    rng = random.Random(train["seed"])
    # A stand-in for training: gradient descent on f(w) = (w - 3)^2 with a little noise.
    w = 0.0
    for step in range(1, train["steps"] + 1):
        grad = 2 * (w - 3.0) + rng.gauss(0.0, 0.01)
        w -= train["lr"] * grad
        print("step %d/%d loss %.6f" % (step, train["steps"], (w - 3.0) ** 2), flush=True)
    print("done: w=%.4f job dir %s extra args %s" % (w, os.environ.get("NEMOTRON_JOB_DIR"), extra))


if __name__ == "__main__":
    main()
`;
}

const STARTER_CONFIG =
  `# The config train.py receives (as JSON: config.format in its runspec). Override any key on
# the command line: nemotron run train.py train.steps=20. Add more configs next to this file and
# pick one with -c NAME.
train:
  steps: 5
  lr: 0.1
  seed: 1234
`;

function starterEnvToml(facts: SlurmFacts, jobRoot: string): string {
  const partition = facts.partition
    ? `partition = ${tomlString(facts.partition)}            # from sinfo (the default partition)`
    : `# partition = "batch"          # sinfo did not answer here: set your cluster's partition`;
  const account = facts.account
    ? `account = ${tomlString(facts.account)}              # from sacctmgr (your first account)`
    : `# account = "my-account"       # sacctmgr reported no account: set one if your cluster needs it`;
  return `# env.toml: where and how nemotron runs jobs (written by nemotron init).
# Each top-level table is a profile: nemotron run train.py --run slurm (wait and stream the log)
# or --batch slurm (submit and return). Without --run/--batch jobs run here, locally.
# Every key: README.md, "env.toml reference". Keep secrets out of this file (use the environment).

[local]
executor = "local"

[slurm]
executor = "slurm"
${partition}
${account}
time = "01:00:00"
# Job dirs (scripts, logs, code) go here: a directory the login and compute nodes share.
remote_job_dir = ${tomlString(jobRoot)}
# nodes = 1
# gpus_per_node = 8
# container_image = ""        # "" runs on the nodes' own Python; default: the runspec's image
# startup_commands = ["module load python"]

# [cli]
# recipe_dirs = ["recipes"]   # directories of runspec scripts for nemotron recipes list / run NAME
`;
}

export function initCommand(_cli: CliContext): Command {
  return new Command("init")
    .description("Write a starter recipe (script, config) and, if none is found, env.toml")
    .examples([
      ["nemotron init my-recipe", "Starter in ./my-recipe (+ env.toml if none)"],
      ["nemotron init --name team/exp", "Here, with runspec name team/exp"],
      ["cd my-recipe && nemotron run train.py", "Run the starter"],
    ])
    .argument("[dir]", "directory for the recipe (default: the current directory)")
    .option("--name <name>", "runspec name of the recipe (default: <dir name>/train)")
    .option("--force", "overwrite files that exist with other content")
    .action(async (dir: string | undefined, opts: { name?: string; force?: boolean }) => {
      const target = path.resolve(dir ?? ".");
      const name = opts.name ?? `${path.basename(target)}/train`;
      if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(name)) {
        throw new UsageError(`recipe name '${name}' is not a name nemotron can use`, {
          hint: "use letters, digits, '.', '_', '-' and '/' (e.g. --name my/train)",
        });
      }
      const files: Record<string, string> = {
        "train.py": starterScript(name),
        "config/default.yaml": STARTER_CONFIG,
      };
      const existingEnv = findEnvFile(target);
      if (!existingEnv) {
        const home = Deno.env.get("HOME") ?? target;
        files["env.toml"] = starterEnvToml(
          await slurmFacts(),
          path.join(home, ".nemotron", "slurm-jobs"),
        );
      }
      for (const p of writeFilesInto(target, files, { force: opts.force })) {
        console.log(`wrote ${p}`);
      }
      if (existingEnv) console.log(`env.toml: using ${existingEnv.path} (not written)`);
      const cd = target === path.resolve(".") ? "" : `cd ${path.relative(Deno.cwd(), target)} && `;
      console.log(`next: ${cd}nemotron run train.py          (locally)`);
      if (!existingEnv) {
        console.log(
          `      ${cd}nemotron run train.py --run slurm   (on Slurm; check env.toml first)`,
        );
      }
    });
}
