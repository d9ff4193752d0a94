/** Unit tests of lib/config with the reference vectors (nemotron-features §3.3, §3.4). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError } from "../lib/errors.ts";
import { applyDotlist, mergeDotlist, parseOverride } from "../lib/config/dotlist.ts";
import { InterpolationError, resolveTree, resolveValue } from "../lib/config/interpolate.ts";
import { createJobDir } from "../lib/config/jobdir.ts";
import { findConfigFile, loadConfig } from "../lib/config/load.ts";
import { interpolateProfileTable } from "../lib/config/profile.ts";
import { artResolver, autoMountResolver, parseGitMountSpec } from "../lib/config/resolvers.ts";
import {
  isArtifactReference,
  resolveRunInterpolations,
  rewritePathsForRemote,
} from "../lib/config/run_refs.ts";
import {
  type ConfigMap,
  Float,
  fromPlain,
  getPath,
  pyFloatRepr,
  toPlain,
} from "../lib/config/tree.ts";
import { toJson, toToml, toYaml } from "../lib/config/write.ts";
import { parseYamlMapping } from "../lib/config/yaml.ts";

const y = (s: string) => parseYamlMapping(s, "t.yaml");
const tmp = () => Deno.makeTempDirSync({ prefix: "nemotron-config-" });

Deno.test("defaults: inheritance merges base under the file and drops `defaults`", () => {
  const d = tmp();
  Deno.writeTextFileSync(join(d, "default.yaml"), "model: {name: base}\ntrain: {iters: 100}\n");
  Deno.writeTextFileSync(join(d, "tiny.yaml"), "defaults: default.yaml\ntrain: {iters: 5}\n");
  const cfg = loadConfig(join(d, "tiny.yaml"));
  assert.equal(getPath(cfg, "model.name"), "base");
  assert.equal(getPath(cfg, "train.iters"), 5);
  assert.equal(cfg.has("defaults"), false);
  // list form, no suffix, _self_ ignored
  Deno.writeTextFileSync(join(d, "b.yaml"), "defaults: [_self_, default]\nx: 1\n");
  assert.deepEqual(toPlain(loadConfig(join(d, "b.yaml"))), {
    model: { name: "base" },
    train: { iters: 100 },
    x: 1,
  });
  // Hydra-style list of mappings stays untouched
  Deno.writeTextFileSync(
    join(d, "h.yaml"),
    "defaults:\n  - execution: slurm/default\n  - _self_\n",
  );
  assert.deepEqual(toPlain(loadConfig(join(d, "h.yaml"))), {
    defaults: [{ execution: "slurm/default" }, "_self_"],
  });
});

Deno.test("defaults: missing base and cycles are usage errors naming the chain", () => {
  const d = tmp();
  Deno.writeTextFileSync(join(d, "a.yaml"), "defaults: b.yaml\n");
  Deno.writeTextFileSync(join(d, "b.yaml"), "defaults: a.yaml\n");
  assert.throws(() => loadConfig(join(d, "a.yaml")), (e: Error) => {
    assert.ok(e instanceof UsageError);
    assert.match(
      e.message,
      /^Cyclic config inheritance detected: .*a\.yaml -> .*b\.yaml -> .*a\.yaml$/,
    );
    return true;
  });
  Deno.writeTextFileSync(join(d, "m.yaml"), "x: 1\ndefaults: nope\n");
  assert.throws(() => loadConfig(join(d, "m.yaml")), (e: Error) => {
    assert.match(
      e.message,
      /^Base config '.*nope\.yaml' referenced from .*m\.yaml does not exist$/,
    );
    assert.equal((e as UsageError).location?.line, 2);
    return true;
  });
});

Deno.test("findConfigFile: by name (.yaml then .yml), by path, original messages", () => {
  const d = tmp();
  Deno.writeTextFileSync(join(d, "tiny.yml"), "a: 1\n");
  assert.equal(findConfigFile("tiny", d), join(d, "tiny.yml"));
  assert.throws(() => findConfigFile("nope", d), {
    message: `Config 'nope' not found in ${d}. Tried: nope.yaml, nope.yml`,
  });
  assert.throws(() => findConfigFile("x/y.yaml", d), {
    message: "Config file not found: x/y.yaml",
  });
});

Deno.test("YAML typing follows OmegaConf (YAML 1.1) and keeps positions", () => {
  const t = y("a: yes\nb: 010\nc: 0x10\nd: 1e3\ne: 1_000\nf: 2024-01-01\ng: ~\nh: 1.0\ni: '1.0'\n");
  assert.equal(t.get("a"), true);
  assert.equal(t.get("b"), 8);
  assert.equal(t.get("c"), 16);
  assert.deepEqual(t.get("d"), new Float(1000));
  assert.equal(t.get("e"), 1000);
  assert.equal(t.get("f"), "2024-01-01");
  assert.equal(t.get("g"), null);
  assert.ok(t.get("h") instanceof Float);
  assert.equal(t.get("i"), "1.0");
  assert.throws(
    () => y("a: 1\n  b: [\n"),
    (e: Error) => e instanceof UsageError && /t\.yaml/.test((e as UsageError).location!.file),
  );
  assert.throws(() => y("a: 1\nb: '${x'\n"), (e: Error) => {
    assert.equal((e as UsageError).location?.line, 2);
    return true;
  });
});

Deno.test("dotlist: typed values, nested keys, malformed keys are usage errors", () => {
  const t = mergeDotlist(y("a: {b: 1}\n"), ["a.c=1e3", "e=a=b", "f=", "g.h.i=[1, 2]"]);
  assert.deepEqual(t.get("a"), new Map<string, unknown>([["b", 1], ["c", new Float(1000)]]));
  assert.equal(t.get("e"), "a=b");
  assert.equal(t.get("f"), null);
  assert.deepEqual(getPath(t, "g.h.i"), [1, 2]);
  for (const bad of ["=x", "a..b=1", ".a=1", "a.=1"]) {
    assert.throws(() => parseOverride(bad), UsageError, bad);
  }
  assert.equal(parseOverride("~a.b").op, "delete");
  assert.equal(parseOverride("+a.b=1").op, "add");
  assert.equal(parseOverride("++a.b=1").op, "force");
  // §3.3: dotlist into a deep key is typed int
  const ev = applyDotlist(y("evaluation: {}\n"), [
    "++evaluation.nemo_evaluator_config.config.params.parallelism=16",
  ]);
  assert.equal(getPath(ev, "evaluation.nemo_evaluator_config.config.params.parallelism"), 16);
  const ev2 = mergeDotlist(y("evaluation: {}\n"), [
    "evaluation.nemo_evaluator_config.config.params.parallelism=16",
  ]);
  assert.equal(getPath(ev, "evaluation.nemo_evaluator_config.config.params.parallelism"), 16);
  assert.equal(getPath(ev2, "evaluation.nemo_evaluator_config.config.params.parallelism"), 16);
});

Deno.test("interpolation errors name the key, the file:line and the chain", () => {
  const t = y("a: 1\nb:\n  c: ${nope.x}\n");
  assert.throws(() => resolveTree(t), (e: Error) => {
    assert.ok(e instanceof InterpolationError);
    assert.match(e.message, /b\.c.*\$\{nope\.x\}.*'nope\.x' not found/);
    assert.deepEqual(e.location, { file: "t.yaml", line: 3, col: 6 });
    return true;
  });
  assert.throws(() => resolveTree(y("a: ${b}\nb: ${c}\nc: ${a}\n")), /a -> b -> c -> a/);
  assert.throws(() => resolveTree(y("a: ${oc.evn:X}\n")), (e: Error) => {
    assert.match(e.message, /Unsupported interpolation type oc\.evn/);
    assert.match((e as UsageError).hint ?? "", /did you mean 'oc\.env'/);
    return true;
  });
  assert.throws(
    () => resolveTree(y("a: ???\n"), { throwOnMissing: true }),
    /missing mandatory value: a/,
  );
  assert.equal(resolveTree(y("a: ???\n")).get("a"), "???");
});

Deno.test("resolvers: oc.env default and null, art via the run section, auto_mount", () => {
  const env = (n: string) => ({ SET: "v" } as Record<string, string>)[n];
  const t = resolveTree(y("a: ${oc.env:SET}\nb: ${oc.env:UNSET,null}\nc: ${oc.env:UNSET,d}\n"), {
    env,
  });
  assert.deepEqual(toPlain(t), { a: "v", b: null, c: "d" });
  const calls: string[] = [];
  const art = artResolver((ref, field) => {
    calls.push(`${ref}|${field}`);
    return field === "path" ? "/art/data/v3" : 4096;
  });
  const cfg = y(
    "run: {data: nano3-data:latest}\nrecipe: {p: '${art:data,path}/blend.json', n: '${art:data,pack_size}', q: '${art:data}'}\n",
  );
  assert.deepEqual(toPlain(resolveValue(cfg, "recipe", { resolvers: { art } })), {
    p: "/art/data/v3/blend.json",
    n: 4096,
    q: "/art/data/v3",
  });
  assert.ok(calls.includes("nano3-data:latest|pack_size"));
  assert.throws(
    () => resolveValue(y("run: {data: x:latest}\na: ${art:model}\n"), "a", { resolvers: { art } }),
    /Artifact 'model' not found. Available: \['data'\]/,
  );
  const mounts: string[] = [];
  const am = autoMountResolver((m) => mounts.push(`${m.name}@${m.ref}`));
  assert.equal(
    resolveValue(y("m: '${auto_mount:git+ssh://git@host/r.git@main}'\n"), "m", {
      resolvers: { auto_mount: am },
    }),
    "__auto_mount__:r",
  );
  assert.deepEqual(mounts, ["r@main"]);
  assert.throws(() => parseGitMountSpec("https://x/y.git@main"), /must start with 'git\+'/);
});

Deno.test("${run.*} textual resolution (§3.4 vectors)", () => {
  const run = fromPlain({ wandb: { project: "my-project" }, a: { b: { c: { d: "value" } } } });
  assert.equal(resolveRunInterpolations("${run.wandb.project}", run), "my-project");
  assert.equal(resolveRunInterpolations("${run.a.b.c.d}", run), "value");
  const r2 = fromPlain({ values: { a: "1", b: "2" }, config: { name: "test" } });
  assert.deepEqual(
    resolveRunInterpolations(fromPlain(["${run.values.a}", "${run.values.b}", "static"]), r2),
    [
      "1",
      "2",
      "static",
    ],
  );
  assert.deepEqual(
    toPlain(resolveRunInterpolations(fromPlain({ outer: [{ inner: "${run.config.name}" }] }), r2)),
    { outer: [{ inner: "test" }] },
  );
  for (
    const same of ["${art:data,path}", "${run.nonexistent.path}", "regular string", "${incomplete"]
  ) {
    assert.equal(resolveRunInterpolations(same, run), same);
  }
  for (const v of [42, new Float(3.14), true, null]) {
    assert.equal(resolveRunInterpolations(v, run), v);
  }
  assert.equal(resolveRunInterpolations("x/${run.n}/y", fromPlain({ n: null })), "x//y");
  assert.equal(resolveRunInterpolations("${run.n}", fromPlain({ n: 3 })), 3);
});

Deno.test("remote path rewrite (§3.4) with a real path-prefix test", () => {
  const rw = (s: string) => rewritePathsForRemote(s, "/local/repo");
  assert.equal(rw("${oc.env:PWD}/src/main.py"), "/nemo_run/code/src/main.py");
  assert.equal(rw("${oc.env:NEMO_RUN_DIR}/output"), "/nemo_run/output");
  assert.equal(rw("${oc.env:NEMO_RUN_DIR,.}/logs"), "/nemo_run/logs");
  assert.equal(rw("/local/repo/src/config.yaml"), "/nemo_run/code/src/config.yaml");
  assert.equal(rw("/other/path/file.txt"), "/other/path/file.txt");
  assert.equal(rw("/local/repo2/x"), "/local/repo2/x");
  assert.deepEqual(
    toPlain(rewritePathsForRemote(fromPlain({ a: ["/local/repo/a", 42, null] }), "/local/repo")),
    {
      a: ["/nemo_run/code/a", 42, null],
    },
  );
});

Deno.test("isArtifactReference", () => {
  for (const yes of ["nano3-pretrain-data:latest", "x:v5", "x:12", "DataBlendsArtifact"]) {
    assert.equal(isArtifactReference(yes), true, yes);
  }
  for (
    const no of [
      "nvcr.io/nvidian/nemo:26.02",
      "a/b:latest",
      "docker-img:latest",
      "a.b:latest",
      "x:alias",
      "plain",
      5,
    ]
  ) {
    assert.equal(isArtifactReference(no), false, String(no));
  }
});

Deno.test("writers: floats stay floats, retyping strings quoted, TOML rejects null", () => {
  const t = y(
    "lr: 1.0\nx: 1e3\ns: 'yes'\no: '010'\nf: '1.0'\ni: '${a.b}'\nl: [1, {a: 2.5}]\nn: null\nbig: 12345678901234567890\n",
  );
  const out = toYaml(t);
  assert.match(out, /^lr: 1\.0$/m);
  assert.match(out, /^x: 1000\.0$/m);
  assert.match(out, /^s: 'yes'$/m);
  assert.match(out, /^o: '010'$/m);
  assert.match(out, /^f: '1\.0'$/m);
  assert.deepEqual(y(out), t);
  assert.match(toJson(t), /"lr": 1\.0,/);
  assert.throws(() => toToml(t), /TOML cannot represent null \(at 'n'\)/);
  t.delete("n");
  assert.match(toToml(t), /^lr = 1\.0$/m);
  assert.equal(pyFloatRepr(1e-7), "1e-07");
  assert.equal(pyFloatRepr(1e16), "1e+16");
  assert.equal(pyFloatRepr(123.5), "123.5");
});

Deno.test("profile tables interpolate against siblings and the environment (§3.2)", () => {
  const out = interpolateProfileTable(
    { remote_job_dir: "/l/j", hf: "${remote_job_dir}/hf", u: "${oc.env:USER_UNSET,nobody}" },
    { file: "env.toml", profile: "p" },
    () => undefined,
  );
  assert.deepEqual(out, { remote_job_dir: "/l/j", hf: "/l/j/hf", u: "nobody" });
  assert.throws(
    () =>
      interpolateProfileTable({ a: "${b}" }, { file: "env.toml", profile: "p" }, () => undefined),
    (e: Error) =>
      e instanceof UsageError && /profile \[p\]/.test(e.message) && e.location?.file === "env.toml",
  );
});

Deno.test("job dirs are unique even for 20 concurrent processes in the same second", async () => {
  const base = tmp();
  const mod = new URL("../lib/config/jobdir.ts", import.meta.url).href;
  const code =
    `import { createJobDir } from "${mod}"; console.log(createJobDir(Deno.args[0], "nano3/pretrain", new Date(2026, 0, 2, 3, 4, 5)));`;
  const runs = await Promise.all(
    Array.from(
      { length: 20 },
      () =>
        new Deno.Command(Deno.execPath(), { args: ["eval", code, base], stdout: "piped" }).output(),
    ),
  );
  const dirs = runs.map((r) => new TextDecoder().decode(r.stdout).trim());
  assert.equal(new Set(dirs).size, 20);
  for (const d of dirs) assert.match(d, /\/20260102-030405-nano3-pretrain-[0-9a-f]{6}$/);
  assert.equal([...Deno.readDirSync(base)].length, 20);
  assert.notEqual(createJobDir(base, "x"), createJobDir(base, "x"));
});

Deno.test("getPath reads lists and brackets", () => {
  const t: ConfigMap = y("a: {b: [x, {c: 1}]}\n");
  assert.equal(getPath(t, "a.b.0"), "x");
  assert.equal(getPath(t, "a.b[1].c"), 1);
  assert.equal(getPath(t, "a.z"), undefined);
});
