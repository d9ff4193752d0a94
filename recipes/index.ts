/**
 * The recipes embedded in the binary: each recipe's script text, its config files and the files
 * that must sit next to the script when it runs (the artifact helper module, a corpus, data
 * blends). Everything is imported as text, so `deno compile`/`deno bundle` carry it and nothing is
 * read relative to the source tree at run time.
 *
 * Running a recipe: write it out with `writeRecipe(recipe, dir)` (script, helper, configs) and run
 * the returned script path. The helper reads NEMOTRON_ARTIFACTS_ROOT, NEMOTRON_JOB_DIR,
 * NEMOTRON_RECIPE and NEMOTRON_COMMAND from the environment.
 */
import { dirname, join, resolve } from "../lib/path.ts";

import artifactsHelper from "./nemotron_artifacts.py" with { type: "text" };

import demoDataScript from "./demo/data.py" with { type: "text" };
import demoTrainScript from "./demo/train.py" with { type: "text" };
import demoCorpus from "./demo/corpus.txt" with { type: "text" };
import demoDataDefault from "./demo/config/data/default.yaml" with { type: "text" };
import demoDataTiny from "./demo/config/data/tiny.yaml" with { type: "text" };
import demoTrainDefault from "./demo/config/train/default.yaml" with { type: "text" };
import demoTrainTiny from "./demo/config/train/tiny.yaml" with { type: "text" };
import demoDdpScript from "./demo/ddp.py" with { type: "text" };
import demoDdpDefault from "./demo/config/ddp/default.yaml" with { type: "text" };
import demoDdpTiny from "./demo/config/ddp/tiny.yaml" with { type: "text" };

import pretrainScript from "./nano3/stage0_pretrain/train.py" with { type: "text" };
import pretrainDefault from "./nano3/stage0_pretrain/config/default.yaml" with { type: "text" };
import pretrainTiny from "./nano3/stage0_pretrain/config/tiny.yaml" with { type: "text" };
import pretrainPrepScript from "./nano3/stage0_pretrain/data_prep.py" with { type: "text" };
import pretrainPrepDefault from "./nano3/stage0_pretrain/config/data_prep/default.yaml" with {
  type: "text",
};
import pretrainPrepTiny from "./nano3/stage0_pretrain/config/data_prep/tiny.yaml" with {
  type: "text",
};
import pretrainBlendRaw from "./nano3/stage0_pretrain/config/data_prep/data_blend_raw.json" with {
  type: "text",
};
import pretrainBlendSmall from "./nano3/stage0_pretrain/config/data_prep/data_blend_raw_small.json" with {
  type: "text",
};

import sftScript from "./nano3/stage1_sft/train.py" with { type: "text" };
import sftDefault from "./nano3/stage1_sft/config/default.yaml" with { type: "text" };
import sftTiny from "./nano3/stage1_sft/config/tiny.yaml" with { type: "text" };
import sftPrepScript from "./nano3/stage1_sft/data_prep.py" with { type: "text" };
import sftPrepDefault from "./nano3/stage1_sft/config/data_prep/default.yaml" with {
  type: "text",
};
import sftPrepTiny from "./nano3/stage1_sft/config/data_prep/tiny.yaml" with { type: "text" };
import sftBlendRaw from "./nano3/stage1_sft/config/data_prep/data_blend_raw.json" with {
  type: "text",
};
import sftBlendTiny from "./nano3/stage1_sft/config/data_prep/data_blend_tiny.json" with {
  type: "text",
};

import rlScript from "./nano3/stage2_rl/train.py" with { type: "text" };
import rlDefault from "./nano3/stage2_rl/config/default.yaml" with { type: "text" };
import rlTiny from "./nano3/stage2_rl/config/tiny.yaml" with { type: "text" };
import rlPrepScript from "./nano3/stage2_rl/data_prep.py" with { type: "text" };
import rlPrepDefault from "./nano3/stage2_rl/config/data_prep/default.yaml" with { type: "text" };
import rlPrepTiny from "./nano3/stage2_rl/config/data_prep/tiny.yaml" with { type: "text" };
import rlBlendRaw from "./nano3/stage2_rl/config/data_prep/data_blend_raw.json" with {
  type: "text",
};

import evalDefault from "./nano3/stage3_eval/config/default.yaml" with { type: "text" };

/** A config directory: its path relative to the recipe's directory and its files (name → text). */
export interface EmbeddedConfigDir {
  /** Relative to the script's directory, as the runspec's `config.dir` says (without `./`). */
  readonly configDir: string;
  /** File name → text. `*.yaml` files are the configs; other files (blend JSON) are data. */
  readonly configs: Readonly<Record<string, string>>;
}

/** One recipe script with everything it needs on disk. */
export interface EmbeddedRecipe extends EmbeddedConfigDir {
  /** Where the script lives under recipes/ (for messages and job names). */
  readonly scriptPath: string;
  /** The script's text (its runspec block is the source of truth for image, launch, …). */
  readonly script: string;
  /** Files to place relative to the script's directory (path → text), the helper module included. */
  readonly files: Readonly<Record<string, string>>;
}

/** recipes/nemotron_artifacts.py: the stdlib-only artifact helper recipe scripts import. */
export const ARTIFACTS_HELPER: string = artifactsHelper;
const HELPER_FILES = { "nemotron_artifacts.py": artifactsHelper } as const;

/** demo/data: bundled corpus → byte-level token dataset, artifact `demo-data[-tiny]`. */
export const demoData: EmbeddedRecipe = {
  scriptPath: "demo/data.py",
  script: demoDataScript,
  configDir: "config/data",
  configs: { "default.yaml": demoDataDefault, "tiny.yaml": demoDataTiny },
  files: { ...HELPER_FILES, "corpus.txt": demoCorpus },
};

/** demo/train: n-gram LM on `${art:data,path}`, artifact `demo-model[-tiny]`. */
export const demoTrain: EmbeddedRecipe = {
  scriptPath: "demo/train.py",
  script: demoTrainScript,
  configDir: "config/train",
  configs: { "default.yaml": demoTrainDefault, "tiny.yaml": demoTrainTiny },
  files: { ...HELPER_FILES },
};

/** demo/ddp: DDP (gloo, CPU, torchrun) on `${art:data,path}`, artifact `demo-ddp-model[-tiny]`. */
export const demoDdp: EmbeddedRecipe = {
  scriptPath: "demo/ddp.py",
  script: demoDdpScript,
  configDir: "config/ddp",
  configs: { "default.yaml": demoDdpDefault, "tiny.yaml": demoDdpTiny },
  files: { ...HELPER_FILES },
};

/** nano3/pretrain (stage 0, Megatron-Bridge, torchrun). */
export const nano3Pretrain: EmbeddedRecipe = {
  scriptPath: "nano3/stage0_pretrain/train.py",
  script: pretrainScript,
  configDir: "config",
  configs: { "default.yaml": pretrainDefault, "tiny.yaml": pretrainTiny },
  files: { ...HELPER_FILES },
};

/** nano3/data/prep/pretrain (Ray, CPU). */
export const nano3PretrainDataPrep: EmbeddedRecipe = {
  scriptPath: "nano3/stage0_pretrain/data_prep.py",
  script: pretrainPrepScript,
  configDir: "config/data_prep",
  configs: {
    "default.yaml": pretrainPrepDefault,
    "tiny.yaml": pretrainPrepTiny,
    "data_blend_raw.json": pretrainBlendRaw,
    "data_blend_raw_small.json": pretrainBlendSmall,
  },
  files: { ...HELPER_FILES },
};

/** nano3/sft (stage 1, Megatron-Bridge, torchrun). */
export const nano3Sft: EmbeddedRecipe = {
  scriptPath: "nano3/stage1_sft/train.py",
  script: sftScript,
  configDir: "config",
  configs: { "default.yaml": sftDefault, "tiny.yaml": sftTiny },
  files: { ...HELPER_FILES },
};

/** nano3/data/prep/sft (Ray, CPU). */
export const nano3SftDataPrep: EmbeddedRecipe = {
  scriptPath: "nano3/stage1_sft/data_prep.py",
  script: sftPrepScript,
  configDir: "config/data_prep",
  configs: {
    "default.yaml": sftPrepDefault,
    "tiny.yaml": sftPrepTiny,
    "data_blend_raw.json": sftBlendRaw,
    "data_blend_tiny.json": sftBlendTiny,
  },
  files: { ...HELPER_FILES },
};

/** nano3/rl (stage 2, NeMo-RL GRPO on Ray). */
export const nano3Rl: EmbeddedRecipe = {
  scriptPath: "nano3/stage2_rl/train.py",
  script: rlScript,
  configDir: "config",
  configs: { "default.yaml": rlDefault, "tiny.yaml": rlTiny },
  files: { ...HELPER_FILES },
};

/** nano3/data/prep/rl (Ray, CPU). */
export const nano3RlDataPrep: EmbeddedRecipe = {
  scriptPath: "nano3/stage2_rl/data_prep.py",
  script: rlPrepScript,
  configDir: "config/data_prep",
  configs: {
    "default.yaml": rlPrepDefault,
    "tiny.yaml": rlPrepTiny,
    "data_blend_raw.json": rlBlendRaw,
  },
  files: { ...HELPER_FILES },
};

/** nano3/eval (stage 3): configs only; nemo-evaluator-launcher does the work. */
export const nano3Eval: EmbeddedConfigDir = {
  configDir: "stage3_eval/config",
  configs: { "default.yaml": evalDefault },
};

/** Built-in config names of a config dir: the stems of its `*.yaml` files, sorted. */
export function builtinConfigNames(dir: EmbeddedConfigDir): string[] {
  return Object.keys(dir.configs)
    .filter((n) => n.endsWith(".yaml"))
    .map((n) => n.slice(0, -".yaml".length))
    .sort();
}

/**
 * Write a recipe to `dir` (the files of `recipeFiles`): the script under its own file name, its
 * `files` next to it and its config dir below it. Returns the absolute path of the script.
 * Existing files are overwritten.
 */
export function writeRecipe(recipe: EmbeddedRecipe, dir: string): string {
  for (const [rel, text] of Object.entries(recipeFiles(recipe))) {
    const file = join(dir, rel);
    Deno.mkdirSync(dirname(file), { recursive: true });
    Deno.writeTextFileSync(file, text);
  }
  return resolve(dir, recipe.scriptPath.split("/").pop()!);
}

/**
 * All files of a recipe as one map (path relative to the recipe's directory → text): the script
 * under its own file name, its `files`, and its config dir. Used to unpack a recipe.
 */
export function recipeFiles(recipe: EmbeddedRecipe): Record<string, string> {
  const out: Record<string, string> = { [recipe.scriptPath.split("/").pop()!]: recipe.script };
  for (const [rel, text] of Object.entries(recipe.files)) out[rel] = text;
  for (const [name, text] of Object.entries(recipe.configs)) {
    out[`${recipe.configDir}/${name}`] = text;
  }
  return out;
}

/**
 * Every built-in config dir with the recipe name it belongs to (the runspec `name` of its script;
 * `nano3/eval` has no script). `lib/config/load.ts` uses it for `RECIPE:CONFIG` references such
 * as `config show demo/train:tiny` and `defaults: [demo/train:tiny]`.
 */
export function builtinConfigDirs(): ReadonlyArray<
  { readonly recipe: string; readonly dir: EmbeddedConfigDir }
> {
  const named = (r: EmbeddedRecipe) => ({
    recipe: /^# name = "([^"]+)"$/m.exec(r.script)?.[1] ?? r.scriptPath.replace(/\.py$/, ""),
    dir: r,
  });
  return [
    named(demoData),
    named(demoTrain),
    named(nano3PretrainDataPrep),
    named(nano3Pretrain),
    named(nano3SftDataPrep),
    named(nano3Sft),
    named(nano3RlDataPrep),
    named(nano3Rl),
    { recipe: "nano3/eval", dir: nano3Eval },
  ];
}
