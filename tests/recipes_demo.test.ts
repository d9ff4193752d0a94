/**
 * The demo recipe family end to end: the embedded scripts, helper, corpus and configs are written
 * to a temp dir, the YAML configs are loaded with the real config loader (defaults inheritance)
 * and written as JSON, then `python3 data.py` and `python3 train.py` run as nemotron would launch
 * them. Checks: loss printed per step and lower at the end, artifacts + lineage in the registry,
 * the documented dataset format.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { builtinConfigNames, demoData, demoTrain, writeRecipe } from "../recipes/index.ts";
import { parseRunspecText } from "../lib/runspec.ts";
import { loadConfig } from "../lib/config/load.ts";
import { toPlain } from "../lib/config/tree.ts";
import { ArtifactRegistry } from "../lib/artifacts/registry.ts";

function tempDir(): string {
  return Deno.makeTempDirSync({ prefix: "nemotron-demo-" });
}

/** Load config `name` of an embedded recipe written to `codeDir` and save it as JSON. */
function jsonConfig(codeDir: string, configDir: string, name: string, out: string): string {
  const tree = loadConfig(join(codeDir, configDir, `${name}.yaml`));
  Deno.writeTextFileSync(out, JSON.stringify(toPlain(tree)));
  return out;
}

async function runPython(
  script: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("python3", {
    args: [script, ...args],
    env,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

function losses(stdout: string): number[] {
  return [...stdout.matchAll(/^step (\d+)\/(\d+) loss ([\d.]+) val_loss ([\d.]+)$/gm)].map((m) =>
    Number(m[3])
  );
}

Deno.test("demo runspecs: direct launch, json config format, CPU only, config dirs that exist", () => {
  for (const [recipe, name] of [[demoData, "demo/data"], [demoTrain, "demo/train"]] as const) {
    const { runspec } = parseRunspecText(recipe.script, `/recipes/${recipe.scriptPath}`);
    assert.equal(runspec.name, name);
    assert.equal(runspec.run.launch, "direct");
    assert.equal(runspec.config.format, "json");
    assert.equal(runspec.config.default, "default");
    assert.equal(runspec.resources.gpus_per_node, 0);
    assert.equal(runspec.image, null);
    assert.equal(runspec.config.dir, `./${recipe.configDir}`);
    assert.deepEqual(builtinConfigNames(recipe), ["default", "tiny"]);
  }
});

for (const config of ["tiny", "default"]) {
  Deno.test(`demo data → train end to end with python3 (${config})`, async () => {
    const work = tempDir();
    const root = join(work, "registry");
    const dataCode = join(work, "code-data");
    const trainCode = join(work, "code-train");
    const dataScript = writeRecipe(demoData, dataCode);
    const trainScript = writeRecipe(demoTrain, trainCode);
    const baseEnv = { NEMOTRON_ARTIFACTS_ROOT: root, PATH: Deno.env.get("PATH") ?? "" };

    const dataJob = join(work, "job-data");
    Deno.mkdirSync(dataJob);
    const dataCfg = jsonConfig(dataCode, demoData.configDir, config, join(dataJob, "train.json"));
    const data = await runPython(dataScript, ["--config", dataCfg], {
      ...baseEnv,
      NEMOTRON_JOB_DIR: dataJob,
      NEMOTRON_RECIPE: "demo/data",
      NEMOTRON_COMMAND: `nemotron demo data -c ${config}`,
    }, work);
    assert.equal(data.code, 0, data.stderr);
    const dataName = config === "tiny" ? "demo-data-tiny" : "demo-data";
    assert.match(data.stdout, new RegExp(`\\[artifact\\] published ${dataName}:v1 -> `));

    const reg = new ArtifactRegistry(root);
    const ds = reg.resolve(dataName);
    assert.equal(ds.type, "dataset");
    assert.equal(ds.producer.recipe, "demo/data");
    assert.equal(ds.producer.job_dir, dataJob);
    // the documented on-disk format
    const blend = JSON.parse(Deno.readTextFileSync(join(ds.path, "blend.json")));
    assert.deepEqual(blend, { train: [1.0, "train"], valid: [1.0, "valid"] });
    const idx = JSON.parse(Deno.readTextFileSync(join(ds.path, "train.idx.json")));
    assert.equal(idx.format, "nemotron-demo-bytes/1");
    assert.equal(idx.eod_token, 256);
    const bin = Deno.readFileSync(join(ds.path, "train.bin"));
    assert.equal(bin.length, idx.tokens * 2);
    const tokens = new Uint16Array(bin.buffer, bin.byteOffset, bin.length / 2);
    const [start, len] = idx.documents[0];
    assert.equal(tokens[start + len - 1], 256, "documents end with EOD");
    const firstDoc = new TextDecoder().decode(
      Uint8Array.from(tokens.slice(start, start + len - 1)),
    );
    assert.ok(demoData.files["corpus.txt"].startsWith(firstDoc), "tokens are the corpus bytes");
    assert.equal(ds.metadata.train_tokens, idx.tokens);

    const trainJob = join(work, "job-train");
    Deno.mkdirSync(trainJob);
    const trainCfg = jsonConfig(
      trainCode,
      demoTrain.configDir,
      config,
      join(trainJob, "train.json"),
    );
    const train = await runPython(trainScript, ["--config", trainCfg], {
      ...baseEnv,
      NEMOTRON_JOB_DIR: trainJob,
      NEMOTRON_RECIPE: "demo/train",
      NEMOTRON_COMMAND: `nemotron demo train -c ${config}`,
    }, work);
    assert.equal(train.code, 0, train.stderr);
    const ls = losses(train.stdout);
    const steps = config === "tiny" ? 8 : 24;
    assert.equal(ls.length, steps, train.stdout);
    assert.ok(Math.abs(ls[0] - Math.log(257)) < 1e-3, "an untrained byte model is uniform");
    assert.ok(ls[ls.length - 1] < ls[0] - 1, `loss decreases: ${ls.join(" ")}`);
    const vals = [...train.stdout.matchAll(/val_loss ([\d.]+)/g)].map((m) => Number(m[1]));
    assert.ok(vals[vals.length - 1] < vals[0], `val_loss decreases: ${vals.join(" ")}`);

    const modelName = config === "tiny" ? "demo-model-tiny" : "demo-model";
    const model = reg.resolve(modelName);
    assert.equal(model.type, "model");
    assert.equal(model.metadata.iteration, steps);
    assert.ok(Deno.statSync(join(model.path, "model.json")).isFile);
    assert.deepEqual(model.used_artifacts, [`${dataName}:v1`]);
    const tree = reg.lineage(modelName);
    assert.deepEqual(tree.inputs.map((n) => `${n.name}:v${n.version}`), [`${dataName}:v1`]);
    assert.equal(tree.inputs[0].manifest?.producer.recipe, "demo/data");
  });
}

Deno.test("demo train with a missing data artifact or version exits 2 and lists what exists", async () => {
  const work = tempDir();
  const code = join(work, "code");
  const root = join(work, "registry");
  const script = writeRecipe(demoTrain, code);
  const cfg = jsonConfig(code, demoTrain.configDir, "tiny", join(work, "train.json"));
  const env = { NEMOTRON_ARTIFACTS_ROOT: root, PATH: Deno.env.get("PATH") ?? "" };
  const none = await runPython(script, ["--config", cfg], env, work);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /artifact 'demo-data-tiny' not found .*the registry is empty/);
  const src = join(work, "src");
  Deno.mkdirSync(src);
  new ArtifactRegistry(root).publish("demo-data-tiny", src);
  const res = await runPython(script, ["--config", cfg, "run.data=demo-data-tiny:v7"], env, work);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /artifact 'demo-data-tiny' has no version v7; versions: v1/);
});
