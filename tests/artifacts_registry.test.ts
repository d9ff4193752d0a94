/**
 * Artifact registry: the §3.9 vectors of the reference (adapted to the manifest layout), the
 * on-disk layout itself, aliases, lineage, field lookups and errors.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ArtifactRegistry, isSecretMetadataKey } from "../lib/artifacts/registry.ts";
import { artLookupByRef, artLookupByRunKey } from "../lib/artifacts/fields.ts";
import { UsageError } from "../lib/errors.ts";

function tempDir(): string {
  return Deno.makeTempDirSync({ prefix: "nemotron-art-" });
}

function producer() {
  return { recipe: "test/recipe", job_dir: "/jobs/1", command: "nemotron test", host: "h" };
}

/** A directory holding `files` (relative path → content). */
function makeSource(files: Record<string, string>): string {
  const dir = tempDir();
  for (const [rel, content] of Object.entries(files)) {
    const p = join(dir, rel);
    Deno.mkdirSync(join(p, ".."), { recursive: true });
    Deno.writeTextFileSync(p, content);
  }
  return dir;
}

Deno.test("publish a directory: version 1, metadata, files under v1/data, layout files", () => {
  const root = join(tempDir(), "reg");
  const reg = new ArtifactRegistry(root);
  const src = makeSource({ "data.txt": "hello" });
  const m = reg.publish("my-artifact", src, {
    metadata: { tokens: 1000 },
    type: "dataset",
    producer: producer(),
  });
  assert.equal(m.version, 1);
  assert.deepEqual(m.metadata, { tokens: 1000 });
  assert.equal(m.path, join(root, "my-artifact", "v1", "data"));
  assert.equal(Deno.readTextFileSync(join(m.path, "data.txt")), "hello");
  // the documented layout
  assert.equal(Deno.readTextFileSync(join(root, "my-artifact", "latest")), "v1\n");
  const onDisk = JSON.parse(
    Deno.readTextFileSync(join(root, "my-artifact", "v1", "manifest.json")),
  );
  assert.equal(onDisk.name, "my-artifact");
  assert.equal(onDisk.version, 1);
  assert.equal(onDisk.type, "dataset");
  assert.equal(onDisk.storage, "copy");
  assert.deepEqual(onDisk.producer, producer());
  assert.deepEqual(onDisk.inputs, []);
  assert.match(onDisk.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/);
  assert.deepEqual(
    JSON.parse(Deno.readTextFileSync(join(root, "my-artifact", "v1", "metadata.json"))),
    { tokens: 1000 },
  );
  const resolved = reg.resolve("my-artifact");
  assert.equal(Deno.readTextFileSync(join(resolved.path, "data.txt")), "hello");
});

Deno.test("three publishes → 1,2,3; versions resolve to their own contents; latest is highest", () => {
  const reg = new ArtifactRegistry(tempDir());
  const versions = [1, 2, 3].map((i) =>
    reg.publish("my-artifact", makeSource({ "data.txt": `v${i}` }), { producer: producer() })
      .version
  );
  assert.deepEqual(versions, [1, 2, 3]);
  assert.equal(Deno.readTextFileSync(join(reg.resolve("my-artifact:v1").path, "data.txt")), "v1");
  assert.equal(Deno.readTextFileSync(join(reg.resolve("my-artifact:2").path, "data.txt")), "v2");
  assert.equal(reg.resolve("my-artifact:latest").version, 3);
  assert.equal(Deno.readTextFileSync(join(reg.root, "my-artifact", "latest")), "v3\n");
});

Deno.test("unknown name and unknown version are usage errors that list what exists", () => {
  const reg = new ArtifactRegistry(tempDir());
  reg.publish("my-artifact", makeSource({ "a": "1" }), { producer: producer() });
  reg.publish("my-artifact", makeSource({ "a": "2" }), { producer: producer() });
  assert.throws(() => reg.resolve("my-artifakt"), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /artifact 'my-artifakt' not found/);
    assert.match(e.message, /Did you mean 'my-artifact'\?/);
    assert.match(e.hint ?? "", /known artifacts: my-artifact/);
    return true;
  });
  assert.throws(() => reg.resolve("my-artifact:v999"), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /has no version v999/);
    assert.match(e.hint ?? "", /versions: v1, v2/);
    return true;
  });
  assert.throws(() => reg.resolve("my-artifact:prod"), /has no alias 'prod'/);
});

Deno.test("alias: production → v1 resolves; survives a new instance; bad targets refused", () => {
  const root = tempDir();
  const reg = new ArtifactRegistry(root);
  reg.publish("my-artifact", makeSource({ "a": "1" }), {
    producer: producer(),
    metadata: { key: "value" },
  });
  reg.publish("my-artifact", makeSource({ "a": "2" }), { producer: producer() });
  reg.alias("my-artifact", "production", "1");
  assert.equal(reg.resolve("my-artifact:production").version, 1);
  assert.equal(Deno.readTextFileSync(join(root, "my-artifact", "aliases", "production")), "v1\n");
  const again = new ArtifactRegistry(root);
  assert.deepEqual(again.aliases("my-artifact"), { production: 1 });
  assert.deepEqual(again.resolve("my-artifact:v1").metadata, { key: "value" });
  assert.throws(() => reg.alias("nope", "prod", "1"), /artifact 'nope' not found/);
  assert.throws(() => reg.alias("my-artifact", "prod", "v9"), /has no version v9/);
  assert.throws(() => reg.alias("my-artifact", "latest", "1"), /invalid alias 'latest'/);
  assert.throws(() => reg.alias("my-artifact", "v3", "1"), /invalid alias 'v3'/);
});

Deno.test("entry/list: sorted names, versions and aliases; unknown entry is undefined", () => {
  const reg = new ArtifactRegistry(tempDir());
  for (const n of ["artifact-c", "artifact-a", "artifact-b"]) {
    reg.publish(n, makeSource({ "x": n }), { producer: producer() });
  }
  assert.deepEqual(reg.names(), ["artifact-a", "artifact-b", "artifact-c"]);
  assert.equal(reg.entry("artifact-a")?.versions.length, 1);
  assert.equal(reg.entry("missing"), undefined);
  assert.deepEqual(reg.list().map((e) => e.name), ["artifact-a", "artifact-b", "artifact-c"]);
});

Deno.test("a single file is copied into data/ under its own name", () => {
  const reg = new ArtifactRegistry(tempDir());
  const src = makeSource({ "model.bin": "weights" });
  const m = reg.publish("model", join(src, "model.bin"), { producer: producer() });
  assert.equal(Deno.readTextFileSync(join(m.path, "model.bin")), "weights");
});

Deno.test("publish by reference records the source path and copies nothing", () => {
  const root = tempDir();
  const reg = new ArtifactRegistry(root);
  const src = makeSource({ "ckpt": "c" });
  const m = reg.publish("ckpt", src, { copy: false, producer: producer() });
  assert.equal(m.path, src);
  assert.equal(m.storage, "reference");
  assert.deepEqual([...Deno.readDirSync(join(root, "ckpt", "v1"))].map((e) => e.name).sort(), [
    "manifest.json",
    "metadata.json",
  ]);
});

Deno.test("an incomplete version (no manifest) is skipped and its number not reused", () => {
  const root = tempDir();
  const reg = new ArtifactRegistry(root);
  reg.publish("a", makeSource({ "x": "1" }), { producer: producer() });
  Deno.mkdirSync(join(root, "a", "v2")); // a publisher that died
  assert.deepEqual(reg.versionNumbers("a"), [1]);
  assert.equal(reg.resolve("a").version, 1);
  assert.equal(reg.publish("a", makeSource({ "x": "3" }), { producer: producer() }).version, 3);
});

Deno.test("lineage: inputs resolved to concrete versions and walked recursively", () => {
  const reg = new ArtifactRegistry(tempDir());
  reg.publish("raw", makeSource({ "r": "1" }), { producer: producer() });
  reg.publish("data", makeSource({ "d": "1" }), { inputs: ["raw"], producer: producer() });
  reg.publish("raw", makeSource({ "r": "2" }), { producer: producer() });
  const model = reg.publish("model", makeSource({ "m": "1" }), {
    inputs: ["data:latest"],
    producer: producer(),
  });
  assert.deepEqual(model.used_artifacts, ["data:v1"]);
  const tree = reg.lineage("model");
  assert.equal(tree.name, "model");
  assert.deepEqual(tree.inputs.map((n) => [n.name, n.version]), [["data", 1]]);
  // data was made from raw v1 (latest at that time), not raw v2
  assert.deepEqual(tree.inputs[0].inputs.map((n) => [n.name, n.version]), [["raw", 1]]);
  assert.throws(
    () => reg.publish("x", makeSource({ "a": "" }), { inputs: ["nope:v1"], producer: producer() }),
    /artifact 'nope' not found/,
  );
  assert.equal(reg.entry("x"), undefined, "nothing written for a bad input");
});

Deno.test("lineage marks inputs whose version is gone", () => {
  const root = tempDir();
  const reg = new ArtifactRegistry(root);
  reg.publish("data", makeSource({ "d": "1" }), { producer: producer() });
  reg.publish("model", makeSource({ "m": "1" }), { inputs: ["data:v1"], producer: producer() });
  Deno.removeSync(join(root, "data", "v1"), { recursive: true });
  assert.equal(reg.lineage("model:v1").inputs[0].problem, "missing");
});

Deno.test("secret-looking metadata keys are refused", () => {
  const reg = new ArtifactRegistry(tempDir());
  assert.throws(
    () =>
      reg.publish("a", makeSource({ "x": "" }), {
        metadata: { hf_token: "abc" },
        producer: producer(),
      }),
    /looks like a secret/,
  );
});

Deno.test("${art:…} fields: path/version/name/type/qualified_name, metadata.X, top-level, nested", () => {
  const reg = new ArtifactRegistry(tempDir());
  const m = reg.publish("data", makeSource({ "blend.json": "{}" }), {
    type: "dataset",
    metadata: { pack_size: 4096, iteration: 7, metadata: { tokenizer: "bytes" } },
    producer: producer(),
  });
  const look = artLookupByRef(reg);
  assert.equal(look("data:latest", "path"), m.path);
  assert.equal(look("data:latest", ""), m.path);
  assert.equal(look("data", "version"), "v1");
  assert.equal(look("data", "name"), "data");
  assert.equal(look("data", "type"), "dataset");
  assert.equal(look("data", "qualified_name"), "data:v1");
  assert.equal(look("data", "iteration"), 7);
  assert.equal(look("data", "pack_size"), 4096);
  assert.equal(look("data", "metadata.pack_size"), 4096);
  assert.equal(look("data", "tokenizer"), "bytes");
  assert.throws(() => look("data", "metadata.nope"), /no metadata field 'nope'/);
  assert.throws(
    () => look("data", "pack_sise"),
    /unknown field 'pack_sise'.*Did you mean 'pack_size'/,
  );

  const byKey = artLookupByRunKey(reg, { data: "data:v1", env: { nodes: 1 } });
  assert.equal(byKey("data", "path"), m.path);
  assert.throws(() => byKey("model", "path"), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /run\.model is not set/);
    assert.match(e.hint ?? "", /run\.data/);
    return true;
  });
});

Deno.test("a lookup pins each reference: later publishes do not change one config's view", () => {
  const reg = new ArtifactRegistry(tempDir());
  reg.publish("data", makeSource({ "a": "" }), { producer: producer() });
  const look = artLookupByRef(reg);
  assert.equal(look("data:latest", "version"), "v1");
  reg.publish("data", makeSource({ "a": "" }), { producer: producer() });
  assert.equal(look("data:latest", "version"), "v1");
  assert.equal(artLookupByRef(reg)("data:latest", "version"), "v2");
});

Deno.test("secret-looking metadata key rule is word based", () => {
  assert.equal(isSecretMetadataKey("tokens"), false);
  assert.equal(isSecretMetadataKey("key"), false);
  assert.equal(isSecretMetadataKey("num_tokens"), false);
  assert.equal(isSecretMetadataKey("hf_token"), true);
  assert.equal(isSecretMetadataKey("api_key"), true);
  assert.equal(isSecretMetadataKey("access-key"), true);
  assert.equal(isSecretMetadataKey("PASSWORD"), true);
  assert.equal(isSecretMetadataKey("wandb.apikey"), true);
});
