/**
 * A user's own recipe, as a researcher would write it, for the `nemotron run` tests: `train.py`
 * with a runspec block, a sibling module it imports (`helpers.py`) and a config dir with two
 * configs. The script prints what it received and exits with `exit_code` from its config.
 */
import { writeTree } from "./cli_helpers.ts";

export const USER_SCRIPT = `# /// script
# requires-python = ">=3.8"
#
# [tool.runspec]
# schema = "1"
# name = "mine/train"
# docs = "My own training script with a sibling module."
#
# [tool.runspec.run]
# launch = "direct"
#
# [tool.runspec.config]
# dir = "./config"
# default = "default"
# format = "json"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
import argparse
import json
import os
import sys

from helpers import describe

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
args, extra = parser.parse_known_args()
if args.config.endswith(".toml"):
    import tomllib  # Python >= 3.11

    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
else:
    with open(args.config) as f:
        cfg = json.load(f)
for step in range(1, cfg["train"]["steps"] + 1):
    print("step %d lr %s" % (step, cfg["train"]["lr"]))
print("helper: " + describe(cfg))
print("extra: " + json.dumps(extra))
print("cwd-is-job-dir: %s" % (os.getcwd() == os.environ.get("NEMOTRON_JOB_DIR")))
print("config-file: " + os.path.basename(args.config))
sys.exit(cfg["exit_code"])
`;

export const USER_HELPER = `def describe(cfg):
    return "steps=%d name=%s" % (cfg["train"]["steps"], cfg["name"])
`;

export const USER_DEFAULT = `name: base
exit_code: 0
train:
  steps: 2
  lr: 0.5
`;

export const USER_SMALL = `defaults: default
name: small
train:
  steps: 1
`;

/** Write the user's recipe into `dir` (train.py, helpers.py, config/{default,small}.yaml). */
export async function writeUserRecipe(dir: string, script = USER_SCRIPT): Promise<void> {
  await writeTree(dir, {
    "train.py": script,
    "helpers.py": USER_HELPER,
    "config/default.yaml": USER_DEFAULT,
    "config/small.yaml": USER_SMALL,
  });
}

/** Every file under `dir` (relative paths, sorted); [] when it does not exist. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string, rel: string) => {
    let items: Deno.DirEntry[];
    try {
      items = [...Deno.readDirSync(abs)];
    } catch {
      return;
    }
    for (const e of items) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) walk(`${abs}/${e.name}`, r);
      else out.push(r);
    }
  };
  walk(dir, "");
  return out.sort();
}
