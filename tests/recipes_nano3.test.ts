/**
 * nano3 production recipes: runspecs match the reference's real examples (§1.1), configs have the
 * §1.19 shapes and load with the real config loader, and without the training libraries each
 * script exits 2 with a message naming the container to use.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  builtinConfigNames,
  type EmbeddedRecipe,
  nano3Eval,
  nano3Pretrain,
  nano3PretrainDataPrep,
  nano3Rl,
  nano3RlDataPrep,
  nano3Sft,
  nano3SftDataPrep,
  writeRecipe,
} from "../recipes/index.ts";
import { parseRunspecText } from "../lib/runspec.ts";
import { loadConfig } from "../lib/config/load.ts";
import { toPlain } from "../lib/config/tree.ts";
import { isArtifactReference } from "../lib/artifacts/ref.ts";

const NEMO = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano";
const NEMO_RL = "nvcr.io/nvidia/nemo-rl:v0.4.0.nemotron_3_nano";
const RAY = "anyscale/ray:2.49.2-py312";

const ALL: [EmbeddedRecipe, string][] = [
  [nano3Pretrain, "nano3/pretrain"],
  [nano3Sft, "nano3/sft"],
  [nano3Rl, "nano3/rl"],
  [nano3PretrainDataPrep, "nano3/data/prep/pretrain"],
  [nano3SftDataPrep, "nano3/data/prep/sft"],
  [nano3RlDataPrep, "nano3/data/prep/rl"],
];

/** A loaded config as plain data; tests index into it freely. */
// deno-lint-ignore no-explicit-any
type Cfg = Record<string, any>;

function runspecOf(r: EmbeddedRecipe) {
  return parseRunspecText(r.script, `/recipes/${r.scriptPath}`).runspec;
}

Deno.test("nano3 runspecs match the reference's real examples", () => {
  const pre = runspecOf(nano3Pretrain);
  assert.deepEqual(
    [pre.name, pre.image, pre.run.launch, pre.config.dir, pre.config.default],
    ["nano3/pretrain", NEMO, "torchrun", "./config", "default"],
  );
  assert.deepEqual(pre.resources, { nodes: 2, gpus_per_node: 8 });
  const sft = runspecOf(nano3Sft);
  assert.deepEqual([sft.name, sft.image, sft.run.launch], ["nano3/sft", NEMO, "torchrun"]);
  assert.deepEqual(sft.resources, { nodes: 1, gpus_per_node: 8 });
  const rl = runspecOf(nano3Rl);
  assert.deepEqual(
    [rl.name, rl.image, rl.run.launch, rl.run.cmd, rl.run.workdir, rl.config.default],
    [
      "nano3/rl",
      NEMO_RL,
      "ray",
      "uv run python {script} --config {config}",
      "/opt/nemo-rl",
      "tiny",
    ],
  );
  for (const [r, name] of ALL.slice(3)) {
    const spec = runspecOf(r);
    assert.equal(spec.name, name);
    assert.equal(spec.image, RAY);
    assert.equal(spec.run.launch, "ray");
    assert.match(spec.run.cmd ?? "", /^uv run .* python \{script\} --config \{config\}$/);
    assert.equal(spec.config.dir, "./config/data_prep");
    assert.equal(spec.resources.gpus_per_node, 0);
    assert.ok(spec.setup.includes("\n"), "multi-line setup");
  }
  for (const [r] of ALL) {
    assert.equal(runspecOf(r).config.dir, `./${r.configDir}`);
    assert.deepEqual(builtinConfigNames(r), ["default", "tiny"]);
  }
  assert.deepEqual(builtinConfigNames(nano3Eval), ["default"]);
});

Deno.test("nano3 configs load and have the §1.19 shapes", () => {
  const dir = Deno.makeTempDirSync({ prefix: "nemotron-nano3-" });
  const load = (r: EmbeddedRecipe, name: string) => {
    const code = join(dir, r.scriptPath.replaceAll("/", "_"));
    writeRecipe(r, code);
    return toPlain(loadConfig(join(code, r.configDir, `${name}.yaml`))) as Cfg;
  };
  for (const name of ["default", "tiny"]) {
    const pre = load(nano3Pretrain, name);
    assert.ok(isArtifactReference(pre.run.data));
    assert.equal(pre.recipe.per_split_data_args_path, "${art:data,path}/blend.json");
    assert.equal(pre.logger.wandb_project, "${run.wandb.project}");
    const sft = load(nano3Sft, name);
    assert.ok(isArtifactReference(sft.run.model) && isArtifactReference(sft.run.data));
    assert.equal(sft.dataset.packed_sequence_specs.packed_sequence_size, "${art:data,pack_size}");
    assert.match(
      sft.run.env.mounts[0],
      /^\$\{auto_mount:git\+https:\/\/.*@main,\/opt\/Megatron-Bridge\}$/,
    );
    const rl = load(nano3Rl, name);
    assert.ok(isArtifactReference(rl.run.model) && isArtifactReference(rl.run.data));
    assert.equal(rl.policy.model_name, "${art:model,path}");
    for (const prep of [nano3PretrainDataPrep, nano3SftDataPrep, nano3RlDataPrep]) {
      const c = load(prep, name);
      assert.match(c.output_dir, /^\$\{oc\.env:PWD\}\//);
      assert.ok(Object.hasOwn(prep.configs, c.blend_path), `${c.blend_path} is shipped`);
      assert.match(c.artifact.name, /^nano3-(pretrain|sft|rl)-data/);
    }
  }
  // tiny names its own (tiny) artifacts, so a tiny pipeline never reads production data
  assert.equal(load(nano3Pretrain, "tiny").run.data, "nano3-pretrain-data-tiny:latest");
  const code = join(dir, "eval");
  Deno.mkdirSync(join(code, nano3Eval.configDir), { recursive: true });
  Deno.writeTextFileSync(
    join(code, nano3Eval.configDir, "default.yaml"),
    nano3Eval.configs["default.yaml"],
  );
  const ev = toPlain(loadConfig(join(code, nano3Eval.configDir, "default.yaml"))) as Cfg;
  assert.ok(Array.isArray(ev.defaults), "Hydra defaults list is kept");
  assert.equal(ev.execution.type, "slurm");
  assert.deepEqual(ev.execution.auto_export.destinations, ["wandb"]);
  const tasks = ev.evaluation.tasks.map((t: { name: string }) => t.name);
  assert.ok(tasks.includes("adlr_mmlu") && tasks.includes("hellaswag"));
  assert.match(ev.deployment.checkpoint_path, /\$\{art:/);
});

for (const python of ["python3", "/usr/bin/python3"]) {
  Deno.test(`nano3 scripts without their libraries exit 2 naming the container (${python})`, async () => {
    const dir = Deno.makeTempDirSync({ prefix: "nemotron-nano3-run-" });
    for (const [r, name] of ALL) {
      const code = join(dir, r.scriptPath.replaceAll("/", "_"));
      const script = writeRecipe(r, code);
      const cfg = join(code, r.configDir, "tiny.yaml");
      const out = await new Deno.Command(python, {
        args: [script, "--config", cfg],
        env: { NEMOTRON_ARTIFACTS_ROOT: join(dir, "registry") },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 2, `${name}: ${err}`);
      assert.ok(err.includes(runspecOf(r).image!), `${name} names its container: ${err}`);
      assert.ok(err.startsWith(`error: ${name} needs `), err);
    }
  });
}
