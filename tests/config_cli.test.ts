/**
 * The config engine where users meet it (CLI level): built-in configs by RECIPE:CONFIG, user
 * configs that start from one (`defaults: [demo/train:tiny]`, a real local run), JSON train
 * configs resolved with errors at dry-run time, `${art:…,version}` as "vN" end to end through the
 * Python helper, nano3 eval's eval config, lazy `run.env`, the caps on hostile input, and error
 * texts with the source line and a caret.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./cli_helpers.ts";
import { loadConfig } from "../lib/config/load.ts";
import { toYaml } from "../lib/config/write.ts";
import { parseYamlFast } from "../lib/config/yaml.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const HELPER_DIR = join(ROOT, "recipes");

function tmp(): string {
  return Deno.makeTempDirSync({ prefix: "nemotron-cfgcli-" });
}

function entries(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("config show RECIPE:CONFIG prints the built-in config; a bare name lists recipes", async () => {
  const r = await runCli(["config", "show", "demo/train:tiny"]);
  assert.equal(r.code, 0, r.stderr);
  // The same as the file in the source tree, loaded from disk with its own `defaults: default`.
  assert.equal(r.stdout, toYaml(loadConfig(join(ROOT, "recipes/demo/config/train/tiny.yaml"))));
  // Hand-checked: tiny's own values over default's.
  assert.match(r.stdout, /^model:\n {2}order: 3\n {2}smoothing: 2\.0\n/m);
  assert.match(r.stdout, /^ {2}steps: 8$/m);
  const bare = await runCli(["config", "show", "tiny"]);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /'tiny' is not a config file/);
  assert.match(bare.stderr, /demo\/train:tiny/);
  assert.match(bare.stderr, /nano3\/pretrain:tiny/);
  // -c RECIPE:CONFIG gives the recipe the same train config as -c NAME.
  const [byRef, byName] = await Promise.all([
    runCli(["demo", "train", "-c", "demo/train:tiny", "-d", "--json"]),
    runCli(["demo", "train", "-c", "tiny", "-d", "--json"]),
  ]);
  assert.equal(byRef.code, 0, byRef.stderr);
  assert.deepEqual(
    JSON.parse(byRef.stdout).train_config,
    JSON.parse(byName.stdout).train_config,
  );
  const unknown = await runCli(["config", "show", "demo/trian:tiny"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no built-in recipe 'demo\/trian'/);
});

Deno.test("a user config starts from a built-in one: defaults: [demo/train:tiny], real local run", async () => {
  const dir = tmp();
  const env = { NEMOTRON_ARTIFACTS_ROOT: join(dir, "artifacts") };
  try {
    Deno.writeTextFileSync(
      join(dir, "mine.yaml"),
      "defaults: [demo/train:tiny]\ntrain:\n  steps: 2\n  seed: ${model.order}\n" +
        "tag: ckpt_${art:data,version}\n",
    );
    const data = await runCli(["demo", "data", "-c", "tiny"], { cwd: dir, env });
    assert.equal(data.code, 0, data.stderr);
    const r = await runCli(["demo", "train", "-c", "./mine.yaml"], { cwd: dir, env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /step 2\/2/);
    const jobs = join(dir, ".nemotron", "jobs");
    const jobDir = join(jobs, entries(jobs).find((n) => n.includes("demo-train"))!);
    const train = JSON.parse(Deno.readTextFileSync(join(jobDir, "train.json")));
    assert.equal(train.train.steps, 2); // mine
    assert.equal(train.train.seed, 3); // ${model.order} resolved for JSON (tiny's order)
    assert.equal(train.train.batch_tokens, 256); // tiny
    assert.equal(train.model.smoothing, 2.0); // default, through tiny's defaults
    // ${art:…} stays for the script side; the Python helper gives "v1" (not 1), as the original.
    assert.equal(train.tag, "ckpt_${art:data,version}");
    const py = await new Deno.Command("/usr/bin/python3", {
      args: [
        "-c",
        `import json,sys; sys.path.insert(0, ${JSON.stringify(HELPER_DIR)}); ` +
        "import nemotron_artifacts as na; " +
        `cfg = json.load(open(${JSON.stringify(join(jobDir, "train.json"))})); ` +
        "print(na.resolve_config(cfg)[0]['tag'])",
      ],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(py.stdout).trim(), "ckpt_v1");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("JSON recipes: an interpolation that cannot resolve fails the dry run, exit 2, nothing written", async () => {
  const dir = tmp();
  try {
    Deno.writeTextFileSync(
      join(dir, "bad.yaml"),
      "defaults: [demo/train:tiny]\ntrain:\n  steps: ${train.nope}\n",
    );
    for (const extra of [["-d"], []]) {
      const r = await runCli(["demo", "train", "-c", "./bad.yaml", ...extra], { cwd: dir });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /bad\.yaml:3:10: error: .*Interpolation key 'train\.nope' not found/);
      assert.match(r.stderr, /3 \| {3}steps: \$\{train\.nope\}\n {2}\| {10}\^/);
    }
    assert.deepEqual(entries(dir), ["bad.yaml"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("config show --resolve resolves ${art:…} against the registry; a missing artifact is clear", async () => {
  const dir = tmp();
  try {
    const env = { NEMOTRON_ARTIFACTS_ROOT: join(dir, "artifacts") };
    const missing = await runCli(["config", "show", "demo/train:tiny", "--resolve"], { env });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /artifact 'demo-data-tiny' not found/);
    assert.doesNotMatch(missing.stderr, /Unsupported interpolation type art/);
    const data = await runCli(["demo", "data", "-c", "tiny"], { cwd: dir, env });
    assert.equal(data.code, 0, data.stderr);
    const ok = await runCli(
      ["config", "show", "demo/train:tiny", "--resolve", "--json", "++v=${art:data,version}"],
      { env },
    );
    assert.equal(ok.code, 0, ok.stderr);
    const cfg = JSON.parse(ok.stdout);
    assert.equal(cfg.v, "v1");
    assert.equal(cfg.data.blend_path, join(dir, "artifacts/demo-data-tiny/v1/data/blend.json"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("nano3 eval: run is stripped from the eval config; export.wandb null injects no W&B", async () => {
  const r = await runCli(["nano3", "eval", "-d", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const ev = JSON.parse(r.stdout).train_config;
  assert.equal("run" in ev, false);
  assert.ok("WANDB_PROJECT" in ev.evaluation.env_vars); // the default exports to W&B
  const off = await runCli([
    "nano3",
    "eval",
    "-d",
    "--json",
    "export.wandb=null",
    "execution.auto_export.destinations=[]",
  ]);
  assert.equal(off.code, 0, off.stderr);
  const ev2 = JSON.parse(off.stdout).train_config;
  assert.equal(ev2.evaluation.env_vars?.WANDB_PROJECT, undefined);
  assert.equal(ev2.execution.env_vars?.export?.WANDB_PROJECT, undefined);
});

Deno.test("run.env resolves lazily: ${oc.env:USER} with USER unset does not fail a dry run", async () => {
  const dir = tmp();
  try {
    Deno.writeTextFileSync(
      join(dir, "u.yaml"),
      "defaults: [demo/train:tiny]\nrun:\n  env:\n    who: ${oc.env:USER}\n",
    );
    const home = tmp();
    const r = await new Deno.Command("env", {
      args: ["-u", "USER", Deno.execPath(), "run", "-A", "--quiet", join(ROOT, "main.ts")]
        .concat(["demo", "train", "-c", "./u.yaml", "-d"]),
      cwd: dir,
      env: { HOME: home, NEMOTRON_HOME: join(home, ".nemotron"), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    assert.match(new TextDecoder().decode(r.stdout), /who: '?\$\{oc\.env:USER\}/);
    assert.deepEqual(entries(dir), ["u.yaml"]);
    Deno.removeSync(home, { recursive: true });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("hostile input: a YAML alias bomb and an interpolation fan-out are clean exit-2 errors", async () => {
  const dir = tmp();
  try {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    let prev = "a";
    for (const c of "bcdefghi") {
      lines.push(`${c}: &${c} [${Array(9).fill(`*${prev}`).join(",")}]`);
      prev = c;
    }
    const bomb = lines.join("\n") + "\n";
    assert.ok(bomb.length < 478);
    Deno.writeTextFileSync(join(dir, "bomb.yaml"), bomb);
    assert.equal(parseYamlFast(bomb, "bomb.yaml"), undefined, "the fast reader leaves aliases");
    const r = await runCli(["config", "show", join(dir, "bomb.yaml")]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /bomb\.yaml:\d+:\d+: error: YAML aliases expand to more than 100000/);

    // Strings: each level doubles eight times over.
    const fan = ["s0: " + "x".repeat(64)];
    for (let i = 1; i <= 9; i++) fan.push(`s${i}: '${`\${s${i - 1}}`.repeat(8)}'`);
    Deno.writeTextFileSync(join(dir, "fan.yaml"), fan.join("\n") + "\n");
    const f = await runCli(["config", "show", join(dir, "fan.yaml"), "--resolve"]);
    assert.equal(f.code, 2, f.stderr);
    assert.match(f.stderr, /longer than 16 MiB/);
    assert.doesNotMatch(f.stderr, /RangeError|\n\s+at /);
    // Containers: lists of lists of ten references each.
    const tree = ["l0: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"];
    for (let i = 1; i <= 8; i++) {
      tree.push(`l${i}: [${Array(10).fill(`'\${l${i - 1}}'`).join(", ")}]`);
    }
    Deno.writeTextFileSync(join(dir, "tree.yaml"), tree.join("\n") + "\n");
    const t = await runCli(["config", "show", join(dir, "tree.yaml"), "--resolve"]);
    assert.equal(t.code, 2, t.stderr);
    assert.match(t.stderr, /too large/);
    // The same in a recipe config fails its dry run.
    Deno.writeTextFileSync(
      join(dir, "fanrun.yaml"),
      "defaults: [demo/train:tiny]\n" + fan.join("\n") + "\n",
    );
    const d = await runCli(["demo", "train", "-c", "./fanrun.yaml", "-d"], { cwd: dir });
    assert.equal(d.code, 2, d.stderr);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("error texts: source line and caret; over-indented YAML at its own line; empty config", async () => {
  const dir = tmp();
  try {
    Deno.writeTextFileSync(join(dir, "oi.yaml"), "train:\n  steps: 2\n    batch: 3\nmodel: 1\n");
    const oi = await runCli(["config", "show", join(dir, "oi.yaml")]);
    assert.equal(oi.code, 2);
    assert.match(oi.stderr, /oi\.yaml:3:5: error: invalid YAML: this line is indented more/);
    assert.match(oi.stderr, /\n3 \| {5}batch: 3\n {2}\| {5}\^\n/);
    Deno.writeTextFileSync(join(dir, "empty.yaml"), "# nothing here\n\n");
    const e = await runCli(["config", "show", join(dir, "empty.yaml")]);
    assert.equal(e.code, 2);
    assert.match(e.stderr, /config .*empty\.yaml is empty/);
    Deno.writeTextFileSync(join(dir, "g.yaml"), "a: 1\nb: ${oc.env:X\n");
    const g = await runCli(["config", "show", join(dir, "g.yaml")]);
    assert.equal(g.code, 2);
    assert.match(g.stderr, /g\.yaml:2:4: error: invalid interpolation/);
    assert.match(g.stderr, /\n2 \| b: \$\{oc\.env:X\n {2}\| {4}\^/);
    // TOML (env.toml) parse errors get the same display.
    Deno.writeTextFileSync(join(dir, "env.toml"), '[p]\nexecutor = "local\n');
    const t = await runCli(["env", "show", "p"], { cwd: dir });
    assert.equal(t.code, 2);
    assert.match(t.stderr, /env\.toml:2:\d+: error: invalid TOML/);
    assert.match(t.stderr, /\n2 \| executor = "local\n {2}\| +\^/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
