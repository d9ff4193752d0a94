/**
 * Separate processes against one registry: concurrent publishers (TS and Python) get distinct
 * versions, and what the Python helper (recipes/nemotron_artifacts.py) writes the TS registry reads,
 * and the reverse.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ArtifactRegistry } from "../lib/artifacts/registry.ts";
import { artLookupByRef } from "../lib/artifacts/fields.ts";

const REGISTRY_URL = new URL("../lib/artifacts/registry.ts", import.meta.url).href;
const HELPER = new URL("../recipes/nemotron_artifacts.py", import.meta.url).pathname;

function tempDir(): string {
  return Deno.makeTempDirSync({ prefix: "nemotron-interop-" });
}

function sourceWith(text: string): string {
  const dir = tempDir();
  Deno.writeTextFileSync(join(dir, "who.txt"), text);
  return dir;
}

/**
 * A process that waits until the file `go` exists (so all publishers start together), then
 * publishes `src` as `name`.
 */
function tsPublisher(
  root: string,
  name: string,
  src: string,
  go: string,
  times = 1,
): Deno.ChildProcess {
  const code = `import { ArtifactRegistry } from ${JSON.stringify(REGISTRY_URL)};
const go = ${JSON.stringify(go)};
for (;;) { try { Deno.statSync(go); break; } catch { await new Promise((r) => setTimeout(r, 2)); } }
const reg = new ArtifactRegistry(${JSON.stringify(root)});
for (let i = 0; i < ${times}; i++) reg.publish(${JSON.stringify(name)}, ${JSON.stringify(src)});`;
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

function pyPublisher(root: string, name: string, src: string, go: string): Deno.ChildProcess {
  const code = `
import os, sys, time
sys.path.insert(0, ${JSON.stringify(join(HELPER, ".."))})
import nemotron_artifacts as na
while not os.path.exists(${JSON.stringify(go)}):
    time.sleep(0.002)
na.publish(${JSON.stringify(name)}, ${JSON.stringify(src)}, root=${JSON.stringify(root)})
`;
  return new Deno.Command("python3", { args: ["-c", code], stdout: "piped", stderr: "piped" })
    .spawn();
}

/** Let the publishers start up (they poll for `go`), then release them all at once. */
async function release(go: string): Promise<void> {
  await new Promise((r) => setTimeout(r, 1500));
  Deno.writeTextFileSync(go, "");
}

function python(args: string[], env: Record<string, string>): Deno.Command {
  return new Deno.Command("python3", {
    args: [HELPER, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  });
}

async function expectOk(child: Deno.ChildProcess): Promise<string> {
  const out = await child.output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, err);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("10 parallel publishers in separate processes get 10 distinct versions", async () => {
  const root = tempDir();
  const go = join(tempDir(), "go");
  const children = Array.from(
    { length: 10 },
    (_, i) => tsPublisher(root, "shared", sourceWith(`publisher ${i}`), go),
  );
  await release(go);
  await Promise.all(children.map(expectOk));
  const reg = new ArtifactRegistry(root);
  assert.deepEqual(reg.versionNumbers("shared"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const contents = reg.entry("shared")!.versions.map((m) =>
    Deno.readTextFileSync(join(m.path, "who.txt"))
  ).sort();
  assert.deepEqual(contents, Array.from({ length: 10 }, (_, i) => `publisher ${i}`).sort());
  assert.equal(Deno.readTextFileSync(join(root, "shared", "latest")), "v10\n");
});

Deno.test("10 processes publishing 10 times each in a tight race get 100 distinct versions", async () => {
  const root = tempDir();
  const go = join(tempDir(), "go");
  const children = Array.from(
    { length: 10 },
    (_, i) => tsPublisher(root, "busy", sourceWith(`publisher ${i}`), go, 10),
  );
  await release(go);
  await Promise.all(children.map(expectOk));
  const reg = new ArtifactRegistry(root);
  assert.deepEqual(reg.versionNumbers("busy"), Array.from({ length: 100 }, (_, i) => i + 1));
  const perPublisher = new Map<string, number>();
  for (const m of reg.entry("busy")!.versions) {
    const who = Deno.readTextFileSync(join(m.path, "who.txt"));
    perPublisher.set(who, (perPublisher.get(who) ?? 0) + 1);
  }
  assert.deepEqual([...perPublisher.values()], Array(10).fill(10));
  assert.equal(Deno.readTextFileSync(join(root, "busy", "latest")), "v100\n");
});

Deno.test("TS and Python publishers racing on one name get distinct versions", async () => {
  const root = tempDir();
  const go = join(tempDir(), "go");
  const children = [
    ...Array.from({ length: 3 }, (_, i) => tsPublisher(root, "mixed", sourceWith(`ts ${i}`), go)),
    ...Array.from({ length: 3 }, (_, i) => pyPublisher(root, "mixed", sourceWith(`py ${i}`), go)),
  ];
  await release(go);
  await Promise.all(children.map(expectOk));
  const reg = new ArtifactRegistry(root);
  assert.deepEqual(reg.versionNumbers("mixed"), [1, 2, 3, 4, 5, 6]);
  assert.equal(Deno.readTextFileSync(join(root, "mixed", "latest")), "v6\n");
});

Deno.test("published by Python, resolved by TS: path, typed metadata, producer, lineage", async () => {
  const root = tempDir();
  const env = {
    NEMOTRON_ARTIFACTS_ROOT: root,
    NEMOTRON_RECIPE: "demo/data",
    NEMOTRON_JOB_DIR: "/jobs/42",
    NEMOTRON_COMMAND: "nemotron demo data -c tiny",
  };
  await expectOk(
    python(["publish", "pydata", sourceWith("py"), "--meta=tokens=1234", "--meta=kind=bytes"], env)
      .spawn(),
  );
  await expectOk(
    python(["publish", "pymodel", sourceWith("m"), "--input=pydata:latest", "--reference"], env)
      .spawn(),
  );
  const reg = new ArtifactRegistry(root);
  const data = reg.resolve("pydata:v1");
  assert.equal(Deno.readTextFileSync(join(data.path, "who.txt")), "py");
  assert.deepEqual(data.producer.recipe, "demo/data");
  assert.deepEqual(data.producer.job_dir, "/jobs/42");
  assert.deepEqual(data.producer.command, "nemotron demo data -c tiny");
  const look = artLookupByRef(reg);
  assert.equal(look("pydata", "tokens"), 1234);
  assert.equal(look("pydata", "metadata.kind"), "bytes");
  const model = reg.resolve("pymodel");
  assert.equal(model.storage, "reference");
  assert.deepEqual(reg.lineage("pymodel").inputs.map((n) => `${n.name}:v${n.version}`), [
    "pydata:v1",
  ]);
});

Deno.test("published by TS, resolved by Python: fields, aliases and errors", async () => {
  const root = tempDir();
  const env = { NEMOTRON_ARTIFACTS_ROOT: root };
  const reg = new ArtifactRegistry(root);
  reg.publish("tsdata", sourceWith("one"), { metadata: { pack_size: 4096 }, type: "dataset" });
  const v2 = reg.publish("tsdata", sourceWith("two"));
  reg.alias("tsdata", "stable", "v1");
  const path = JSON.parse(await expectOk(python(["resolve", "tsdata", "path"], env).spawn()));
  assert.equal(path, v2.path);
  const pack = JSON.parse(
    await expectOk(python(["resolve", "tsdata:stable", "pack_size"], env).spawn()),
  );
  assert.equal(pack, 4096);
  const type = JSON.parse(await expectOk(python(["resolve", "tsdata:1", "type"], env).spawn()));
  assert.equal(type, "dataset");
  // `version` is "vN" on both sides (the original's `${art:data,version}` gives "v5").
  const version = JSON.parse(await expectOk(python(["resolve", "tsdata", "version"], env).spawn()));
  assert.equal(version, "v2");
  assert.equal(artLookupByRef(reg)("tsdata", "version"), "v2");
  const missing = await python(["resolve", "tsdata:v7"], env).output();
  assert.equal(missing.code, 2);
  assert.match(new TextDecoder().decode(missing.stderr), /has no version v7; versions: v1, v2/);
  // an alias written by Python is read by TS
  await expectOk(python(["alias", "tsdata", "newest", "latest"], env).spawn());
  assert.deepEqual(reg.aliases("tsdata"), { newest: 2, stable: 1 });
});

Deno.test("Python helper: URI parsing and reference detection agree with the TS vectors", async () => {
  const code = `
import json, sys
sys.path.insert(0, ${JSON.stringify(join(HELPER, ".."))})
import nemotron_artifacts as na
print(json.dumps([
  na.parse_uri("art://my-artifact:v1"),
  na.parse_uri("art://my-artifact:v2/path/to/file.txt"),
  na.parse_uri("art://my-artifact:latest"),
  na.parse_uri("art://my-artifact:5"),
  na.parse_uri("art://my-artifact"),
  na.parse_uri("art://romeyn/nemotron/DataBlendsArtifact:v10/blends.json"),
  na.parse_uri("my-artifact:prod/x"),
  [na.is_artifact_reference(v) for v in
    ["nano3-pretrain-data:latest", "data:12", "DataBlendsArtifact", "nvcr.io/x:1", "my.model:v1", "data:prod", 3]],
]))`;
  const out = await new Deno.Command("python3", { args: ["-c", code], stdout: "piped" }).output();
  assert.equal(out.code, 0);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), [
    ["my-artifact", ["number", 1], ""],
    ["my-artifact", ["number", 2], "path/to/file.txt"],
    ["my-artifact", ["latest", null], ""],
    ["my-artifact", ["number", 5], ""],
    ["my-artifact", ["latest", null], ""],
    ["romeyn/nemotron/DataBlendsArtifact", ["number", 10], "blends.json"],
    ["my-artifact", ["alias", "prod"], "x"],
    [true, true, true, false, false, false, false],
  ]);
});
