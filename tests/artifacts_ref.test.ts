/** Artifact references and art:// URIs: the §3.9 `_parse_uri` vectors plus our alias extension. */
import assert from "node:assert/strict";
import {
  isArtifactReference,
  parseArtifactRef,
  parseArtifactUri,
  parseSelector,
} from "../lib/artifacts/ref.ts";
import { artifactsRoot } from "../lib/artifacts/root.ts";

function uri(u: string): [string, number | string | null, string] {
  const p = parseArtifactUri(u);
  const v = p.selector.kind === "latest"
    ? null
    : p.selector.kind === "number"
    ? p.selector.version
    : p.selector.alias;
  return [p.name, v, p.file];
}

Deno.test("art:// URI vectors from the reference", () => {
  assert.deepEqual(uri("art://my-artifact:v1"), ["my-artifact", 1, ""]);
  assert.deepEqual(uri("art://my-artifact:v1/data.json"), ["my-artifact", 1, "data.json"]);
  assert.deepEqual(uri("art://my-artifact:v2/path/to/file.txt"), [
    "my-artifact",
    2,
    "path/to/file.txt",
  ]);
  assert.deepEqual(uri("art://my-artifact:latest"), ["my-artifact", null, ""]);
  assert.deepEqual(uri("art://my-artifact:5"), ["my-artifact", 5, ""]);
  assert.deepEqual(uri("art://my-artifact"), ["my-artifact", null, ""]);
  assert.deepEqual(uri("art://romeyn/nemotron/DataBlendsArtifact:v10"), [
    "romeyn/nemotron/DataBlendsArtifact",
    10,
    "",
  ]);
  assert.deepEqual(uri("art://romeyn/nemotron/DataBlendsArtifact:v10/blends.json"), [
    "romeyn/nemotron/DataBlendsArtifact",
    10,
    "blends.json",
  ]);
  assert.deepEqual(uri("my-artifact:v1/data.json"), ["my-artifact", 1, "data.json"]);
});

Deno.test("art:// URIs: aliases and malformed input", () => {
  assert.deepEqual(uri("art://my-artifact:production/x.bin"), [
    "my-artifact",
    "production",
    "x.bin",
  ]);
  assert.throws(() => parseArtifactUri("art://"), /empty artifact URI/);
  assert.throws(() => parseArtifactUri("art://:v1"), /empty name/);
  assert.throws(() => parseArtifactUri("art://a:v1:v2"), /more than one ':'/);
  assert.throws(() => parseArtifactUri("art://a:v0"), /versions count from 1/);
});

Deno.test("references: name, :latest, :vN, :N, :alias; bad names", () => {
  assert.deepEqual(parseArtifactRef("data"), { name: "data", selector: { kind: "latest" } });
  assert.deepEqual(parseArtifactRef("data:latest").selector, { kind: "latest" });
  assert.deepEqual(parseArtifactRef("data:v5").selector, { kind: "number", version: 5 });
  assert.deepEqual(parseArtifactRef("data:5").selector, { kind: "number", version: 5 });
  assert.deepEqual(parseArtifactRef("data:prod").selector, { kind: "alias", alias: "prod" });
  assert.throws(() => parseArtifactRef("data:"), /empty version/);
  assert.throws(() => parseArtifactRef("a/b:v1"), /invalid artifact name 'a\/b'/);
  assert.throws(() => parseArtifactRef(".hidden:v1"), /invalid artifact name/);
  assert.throws(() => parseSelector("v0"), /count from 1/);
});

Deno.test("artifact-reference detection (§1.6 rule)", () => {
  assert.equal(isArtifactReference("nano3-pretrain-data:latest"), true);
  assert.equal(isArtifactReference("nano3-pretrain-data-tiny:v3"), true);
  assert.equal(isArtifactReference("data:12"), true);
  assert.equal(isArtifactReference("DataBlendsArtifact"), true);
  assert.equal(isArtifactReference("nvcr.io/nvidia/nemo:25.11"), false);
  assert.equal(isArtifactReference("docker-thing:latest"), false);
  assert.equal(isArtifactReference("a/b:v1"), false);
  assert.equal(isArtifactReference("my.model:v1"), false);
  assert.equal(isArtifactReference("data:prod"), false);
  assert.equal(isArtifactReference("plain"), false);
  assert.equal(isArtifactReference(3), false);
});

Deno.test("registry root precedence: env var, [artifacts] root, [artifacts.manifest] root, NEMOTRON_HOME, ~", () => {
  const env = (m: Record<string, string>) => ({ get: (k: string) => m[k] });
  assert.equal(
    artifactsRoot({ root: "/b" }, env({ NEMOTRON_ARTIFACTS_ROOT: "/a", HOME: "/h" })),
    "/a",
  );
  assert.equal(artifactsRoot({ root: "/b" }, env({ HOME: "/h" })), "/b");
  assert.equal(artifactsRoot({ root: "~/arts" }, env({ HOME: "/h" })), "/h/arts");
  assert.equal(artifactsRoot({ manifest: { root: "/m" } }, env({ HOME: "/h" })), "/m");
  assert.equal(
    artifactsRoot(undefined, env({ NEMOTRON_HOME: "/nh", HOME: "/h" })),
    "/nh/artifacts",
  );
  assert.equal(artifactsRoot(undefined, env({ HOME: "/h" })), "/h/.nemotron/artifacts");
  assert.throws(
    () => artifactsRoot({ root: 3 }, env({ HOME: "/h" })),
    /must be a non-empty string/,
  );
});
