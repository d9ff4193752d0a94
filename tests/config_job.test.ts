/**
 * The job config and train config of the worked example (reference §1.20), compared with golden
 * files checked by hand against the reference, plus the §3.3 profile-merge vector.
 */
import assert from "node:assert/strict";
import { parseRecipeArgs } from "../lib/cli/args.ts";
import { loadConfig } from "../lib/config/load.ts";
import { applyDotlist } from "../lib/config/dotlist.ts";
import {
  buildJobConfig,
  extractTrainConfig,
  renderConfig,
  writeJobFiles,
} from "../lib/config/job.ts";
import type { UsageError } from "../lib/errors.ts";
import { getPath, toPlain } from "../lib/config/tree.ts";
import { toYaml } from "../lib/config/write.ts";
import { parseYamlMapping } from "../lib/config/yaml.ts";

const golden = (name: string) => new URL(`./golden/config/${name}`, import.meta.url).pathname;
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";

function assertGolden(name: string, text: string) {
  if (UPDATE) Deno.writeTextFileSync(golden(name), text);
  assert.equal(text, Deno.readTextFileSync(golden(name)));
}

Deno.test("§1.20 worked example: job.yaml and train.yaml", () => {
  const argv = [
    "nano3",
    "pretrain",
    "-c",
    "tiny",
    "--batch",
    "my-cluster",
    "train.train_iters=5",
    "--mock",
  ];
  const args = parseRecipeArgs(argv.slice(2), {
    argv,
    leading: { dryRun: false, stage: false, forceSquash: false },
    rest: argv,
  });
  const config = applyDotlist(loadConfig(golden("tiny.yaml")), args.dotlist);
  const job = buildJobConfig({
    config,
    args,
    profile: {
      executor: "slurm",
      account: "acct",
      partition: "batch",
      tunnel: "ssh",
      host: "login.example.com",
      user: "me",
      remote_job_dir: "/lustre/me/jobs",
      nodes: 2,
    },
    wandb: { project: "nemotron", entity: "my-team" },
    artifacts: { wandb: true, manifest: { root: "/lustre/artifacts" } },
    recipeName: "nano3/pretrain",
    scriptPath: "src/nemotron/recipes/nano3/stage0_pretrain/train.py",
    configName: "tiny",
  });
  assertGolden("job.yaml", toYaml(job));
  const train = extractTrainConfig(job, { forRemote: true, repoRoot: "/local/repo" });
  assertGolden("train.yaml", toYaml(train));
  // spot checks straight from the reference text
  assert.equal(getPath(train, "logger.wandb_project"), "nemotron");
  assert.equal(getPath(train, "recipe.per_split_data_args_path"), "${art:data,path}/blend.json");
  assert.deepEqual(toPlain(train.get("run")!), { data: "nano3-pretrain-data-tiny:latest" });
  assert.deepEqual([...train.keys()].at(-1), "run");
  assert.equal(getPath(job, "train.train_iters"), 5);
  // the written files are what we rendered, atomically, and nothing else is left behind
  const dir = Deno.makeTempDirSync();
  const files = writeJobFiles(dir, job, train, "yaml");
  assert.equal(Deno.readTextFileSync(files.jobConfig), toYaml(job));
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
    "job.yaml",
    "train.yaml",
  ]);
});

Deno.test("§3.3 profile merge: resource keys from YAML, env_vars merged, profile adds keys", () => {
  const config = parseYamlMapping(
    "run:\n  env:\n    container_image: config-image\n    nodes: 8\n    gpus_per_node: 8\n    env_vars: {FROM_CONFIG: '1'}\n    mounts: [/a:/a]\n",
    "c.yaml",
  );
  const argv = ["steps", "example", "-c", "default", "--batch", "site"];
  const args = parseRecipeArgs(argv.slice(2), {
    argv,
    leading: { dryRun: false, stage: false, forceSquash: false },
    rest: argv,
  });
  const job = buildJobConfig({
    config,
    args,
    profile: {
      container_image: "profile-image",
      nodes: 1,
      gpus_per_node: 4,
      partition: "site-partition",
      env_vars: { FROM_PROFILE: "1", HF_TOKEN: "hf_secret_value" },
      mounts: ["/b:/b"],
    },
    recipeName: "steps/example",
    scriptPath: "step.py",
  });
  assert.deepEqual(toPlain(getPath(job, "run.env")!), {
    container_image: "config-image",
    nodes: 8,
    gpus_per_node: 8,
    env_vars: { FROM_CONFIG: "1", FROM_PROFILE: "1", HF_TOKEN: "hf_secret_value" },
    mounts: ["/a:/a", "/b:/b"],
    partition: "site-partition",
  });
  assert.equal(getPath(job, "run.mode"), "batch");
  assert.equal(getPath(job, "run.cli.config"), "default");
  // CLI beats env.toml: the dotlist is applied again last
  const argv2 = [...argv, "run.env.nodes=4"];
  const args2 = parseRecipeArgs(argv2.slice(2), {
    argv: argv2,
    leading: { dryRun: false, stage: false, forceSquash: false },
    rest: argv2,
  });
  const job2 = buildJobConfig({
    config,
    args: args2,
    profile: { nodes: 1 },
    recipeName: "x",
    scriptPath: "x.py",
  });
  assert.equal(getPath(job2, "run.env.nodes"), 4);
  // secrets never reach job.yaml
  const dir = Deno.makeTempDirSync();
  const files = writeJobFiles(dir, job, extractTrainConfig(job, { forRemote: false }), "json");
  const text = Deno.readTextFileSync(files.jobConfig);
  assert.ok(!text.includes("hf_secret_value"));
  assert.match(text, /HF_TOKEN: '\*\*\*\*\*\*'/);
  assert.ok(files.trainConfig.endsWith("train.json"));
});

Deno.test("JSON/TOML train configs are resolved; art and oc.env stay for the script side", () => {
  const t = parseYamlMapping(
    "run: {data: 'd:latest'}\nn: 5\nseed: ${n}\na: ${art:data,version}\n" +
      "b: x_${oc.env:HOME,'a,b'}\nc: ${my.res:'q,1'}\nd: ${oc.env:V,${n}}\n" +
      "w: ${run.wandb.project}\nt: 'n=${n}'\n",
    "t.yaml",
  );
  const train = extractTrainConfig(t, { forRemote: false });
  // Hand-checked: node interpolations resolved and typed; resolvers the script side knows (art,
  // oc.env) and ones nobody here knows stay as written (arguments resolved when interpolated);
  // `${run.*}` the job config cannot fill stays verbatim, as in the original.
  assert.deepEqual(JSON.parse(renderConfig(train, "json")), {
    n: 5,
    seed: 5,
    a: "${art:data,version}",
    b: "x_${oc.env:HOME,'a,b'}",
    c: "${my.res:'q,1'}",
    d: "${oc.env:V,5}",
    w: "${run.wandb.project}",
    t: "n=5",
    run: { data: "d:latest" },
  });
  assert.match(renderConfig(train, "toml"), /^seed = 5$/m);
  // YAML keeps everything for OmegaConf in the script.
  assert.match(renderConfig(train, "yaml"), /^seed: '\$\{n\}'$/m);
  // An interpolation that cannot resolve fails when the train config is built (dry-run time).
  const bad = parseYamlMapping("a: 1\nb: ${nope}\n", "bad.yaml");
  assert.throws(() => extractTrainConfig(bad, { forRemote: false }), (e: Error) => {
    assert.match(e.message, /Interpolation key 'nope' not found/);
    assert.deepEqual((e as UsageError).location, { file: "bad.yaml", line: 2, col: 4 });
    return true;
  });
  // An argument that cannot be written back for the script is refused for JSON.
  const q = parseYamlMapping("n: 5\ne: '${oc.env:V,\"a,${n}\"}'\n", "q.yaml");
  assert.throws(() => extractTrainConfig(q, { forRemote: false }), /cannot be passed on/);
});
