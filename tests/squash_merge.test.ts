/**
 * The layer merge on hand-built layers (Python's tarfile writes them, so the input is not produced
 * by the code under test): hard links whose target an upper layer replaced, type changes both
 * ways, opaque directories, long and non-ASCII names, long symlink targets, gzip/zstd/plain
 * layers, dev/ exclusion, and the synthetic enroot files winning over the image's own.
 */
import assert from "node:assert/strict";
import {
  byPath,
  nemotron,
  registryUnavailable,
  run,
  sqshListing,
  unsquash,
} from "./fixtures/squash/registry.ts";

const MAKE_ARCHIVE = new URL("./fixtures/squash/make_archive.py", import.meta.url).pathname;
const why = (await registryUnavailable()) ??
  ((await run("sh", ["-c", "command -v zstd && command -v gzip"])).code !== 0
    ? "zstd and gzip CLIs needed"
    : undefined);
if (why) console.log(`squash_merge: SKIPPED: ${why}`);

const LONG_DIR = "d".repeat(120);
const LONG_FILE = "f".repeat(200) + ".txt";
const LONG_TARGET = "/" + "t".repeat(150);

Deno.test({
  name: "squash merge: OCI semantics on hand-built layers (gzip, zstd, plain)",
  ignore: why !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "squash-merge-" });
  const f = (name: string, data: string, mode?: string) => ({ name, type: "file", data, mode });
  const d = (name: string, mode?: string) => ({ name, type: "dir", mode });
  const spec = {
    config: { config: { Env: ["A=1"], WorkingDir: "/work/dir" } },
    compress: ["gzip", "zstd", "none"],
    layers: [
      [
        d("etc"),
        f("etc/rc", "image rc\n"),
        f("etc/environment", "IMAGE=1\n"),
        f("a", "old\n"),
        { name: "b", type: "hardlink", linkname: "a" },
        d("x"),
        f("x/child", "c\n"),
        f("y", "file\n"),
        d("dev"),
        f("dev/null-ish", "no\n"),
        d("keep", "0700"),
        f("keep/lower", "l\n"),
        d("opq"),
        f("opq/old", "o\n"),
      ],
      [
        f("a", "new\n"),
        f("x", "now a file\n"),
        d("y"),
        f("y/inside", "i\n"),
        f("keep/upper", "u\n"),
        f("opq/.wh..wh..opq", ""),
        f("opq/new", "n\n"),
        d(LONG_DIR),
        f(`${LONG_DIR}/${LONG_FILE}`, "long\n"),
        f("ünï cödé.txt", "utf8\n"),
        { name: "longlink", type: "symlink", linkname: LONG_TARGET },
        f("setuid", "s\n", "4755"),
      ],
      [
        f("top", "t\n"),
        { name: "top-link", type: "hardlink", linkname: "top" },
        f(".wh.setuid", ""),
      ],
    ],
  };
  await Deno.writeTextFile(`${dir}/spec.json`, JSON.stringify(spec));
  const mk = await run("/usr/bin/python3", [MAKE_ARCHIVE, `${dir}/img.tar`, `${dir}/spec.json`]);
  assert.equal(mk.code, 0, mk.stderr);
  const r = await nemotron(["squash", `docker-archive://${dir}/img.tar`, "-o", `${dir}/img.sqsh`], {
    NEMOTRON_HOME: dir,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /warning/);
  // Expected tree written by hand from the OCI rules.
  assert.deepEqual(
    await sqshListing(`${dir}/img.sqsh`),
    byPath([
      "d 0755 0:0 /",
      "f 0644 0:0 /a",
      "f 0644 0:0 /b",
      `d 0755 0:0 /${LONG_DIR}`,
      `f 0644 0:0 /${LONG_DIR}/${LONG_FILE}`,
      "d 0755 0:0 /dev",
      "d 0755 0:0 /etc",
      "f 0644 0:0 /etc/environment",
      "f 0644 0:0 /etc/fstab",
      "f 0644 0:0 /etc/rc",
      "f 0644 0:0 /etc/rc.local",
      "d 0700 0:0 /keep",
      "f 0644 0:0 /keep/lower",
      "f 0644 0:0 /keep/upper",
      `l 0777 0:0 /longlink -> ${LONG_TARGET}`,
      "d 0755 0:0 /opq",
      "f 0644 0:0 /opq/new",
      "f 0644 0:0 /top",
      "f 0644 0:0 /top-link",
      "d 0755 0:0 /work",
      "d 0755 0:0 /work/dir",
      "f 0644 0:0 /x",
      "d 0755 0:0 /y",
      "f 0644 0:0 /y/inside",
      "f 0644 0:0 /ünï cödé.txt",
    ]),
  );
  const x = await unsquash(`${dir}/img.sqsh`);
  const read = (p: string) => Deno.readTextFile(`${x}/${p}`);
  assert.equal(await read("a"), "new\n");
  assert.equal(await read("b"), "old\n", "b keeps the content a had in its own layer");
  assert.equal(await read("x"), "now a file\n");
  assert.equal(await read(`${LONG_DIR}/${LONG_FILE}`), "long\n");
  assert.equal(await read("ünï cödé.txt"), "utf8\n");
  assert.equal(await read("etc/environment"), "A=1\n", "enroot's file replaces the image's");
  assert.match(await read("etc/rc"), /cd \/work\/dir && unset OLDPWD/);
  assert.match(await read("etc/rc"), /exec \/bin\/sh\n/);
  assert.equal((await Deno.lstat(`${x}/top`)).ino, (await Deno.lstat(`${x}/top-link`)).ino);
  await Deno.remove(x, { recursive: true });
  await Deno.remove(dir, { recursive: true });
});
