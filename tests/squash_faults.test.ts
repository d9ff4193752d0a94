/**
 * Faults and hostile input: a corrupted blob in the registry's storage, kill -9 during a download
 * then a resumed rerun, an unreachable registry, and crafted layers that try to escape the image
 * root (`../` names, absolute names, writes through a symlink, hard links to outside).
 */
import assert from "node:assert/strict";
import {
  byPath,
  ENROOT_FILES,
  expectedList,
  MAIN,
  nemotron,
  registryUnavailable,
  run,
  sqshListing,
  startRegistryWithImage,
  stopRegistry,
  unsquash,
} from "./fixtures/squash/registry.ts";
import { squashNative } from "../lib/squash/squash.ts";
import { RuntimeFailure } from "../lib/errors.ts";

const why = await registryUnavailable();
if (why) console.log(`squash_faults: SKIPPED: ${why}`);
const MAKE_ARCHIVE = new URL("./fixtures/squash/make_archive.py", import.meta.url).pathname;

async function layerDigests(
  port: number,
  tag: string,
): Promise<{ digest: string; size: number }[]> {
  const r = await fetch(`http://127.0.0.1:${port}/v2/test/img/manifests/${tag}`, {
    headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  return (await r.json()).layers;
}

Deno.test({
  name: "squash faults: corrupted blob, kill -9 and resume",
  ignore: why !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const port = 5135;
  const { expected } = await startRegistryWithImage(port);
  const dir = await Deno.makeTempDir({ prefix: "squash-faults-" });
  const want = byPath([...expectedList(expected), ...ENROOT_FILES]);
  try {
    await t.step("kill -9 during a download, rerun resumes from the cache", async () => {
      const layers = await layerDigests(port, "1");
      const slow = layers[0].digest;
      const seen: { path: string; range: string | null }[] = [];
      let stall = true;
      const ac = new AbortController();
      // A pass-through proxy that sends half of one blob, then stalls (while `stall`).
      const proxy = Deno.serve({
        port: 5136,
        hostname: "127.0.0.1",
        signal: ac.signal,
        onListen() {},
      }, async (req) => {
        const u = new URL(req.url);
        seen.push({ path: u.pathname, range: req.headers.get("range") });
        const up = await fetch(`http://127.0.0.1:${port}${u.pathname}`, {
          headers: req.headers,
          method: req.method,
        });
        if (!(stall && u.pathname.endsWith(slow))) return up;
        const bytes = new Uint8Array(await up.arrayBuffer());
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(bytes.subarray(0, Math.floor(bytes.length / 2)));
          }, // never closes
        });
        return new Response(body, {
          status: 200,
          headers: { "content-length": String(bytes.length) },
        });
      });
      const home = `${dir}/resume`;
      const out = `${dir}/resume.sqsh`;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", MAIN, "squash", "127.0.0.1:5136/test/img:1", "-o", out],
        env: { NEMOTRON_HOME: home },
        stdout: "null",
        stderr: "null",
      }).spawn();
      const partial = `${home}/cache/blobs/sha256/${slow.slice(7)}.partial`;
      let size = 0;
      for (let i = 0; i < 200 && size === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        size = (await Deno.stat(partial).catch(() => undefined))?.size ?? 0;
      }
      assert.ok(size > 0, "a partial download appeared");
      child.kill("SIGKILL");
      await child.status;
      await assert.rejects(Deno.stat(out));
      stall = false;
      seen.length = 0;
      const r = await nemotron(["squash", "127.0.0.1:5136/test/img:1", "-o", out], {
        NEMOTRON_HOME: home,
      });
      ac.abort();
      await proxy.finished;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await sqshListing(out), want);
      const blobReq = seen.find((s) => s.path.endsWith(slow));
      assert.equal(blobReq?.range, `bytes=${size}-`, "the rerun asked only for the missing bytes");
      await assert.rejects(Deno.stat(partial));
    });

    await t.step("corrupted blob in registry storage: digest error, no output", async () => {
      const layers = await layerDigests(port, "1");
      const hex = layers[1].digest.slice(7);
      const data = `/tmp/local-registry-${port}/data/docker/registry/v2/blobs/sha256/${
        hex.slice(0, 2)
      }/${hex}/data`;
      const bytes = await Deno.readFile(data);
      bytes[Math.floor(bytes.length / 2)] ^= 0xff;
      await Deno.writeFile(data, bytes);
      const out = `${dir}/corrupt.sqsh`;
      const r = await nemotron(["squash", `127.0.0.1:${port}/test/img:1`, "-o", out], {
        NEMOTRON_HOME: `${dir}/c`,
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`blob sha256:${hex} failed verification`));
      await assert.rejects(Deno.stat(out));
      await assert.rejects(Deno.stat(`${out}.partial`));
      await assert.rejects(Deno.stat(`${dir}/c/cache/blobs/sha256/${hex}`));
    });
  } finally {
    await stopRegistry(port);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "squash faults: registry down → retries, then a clear error",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const warnings: string[] = [];
  const dir = await Deno.makeTempDir();
  const err = await squashNative("127.0.0.1:5197/test/img:1", `${dir}/x.sqsh`, {
    cacheDir: `${dir}/cache`,
    retry: { attempts: 3, baseDelayMs: 10 },
    reporter: {
      info() {},
      warn: (m) => warnings.push(m),
      layers() {},
      layerBytes() {},
      layerDone() {},
      phase() {},
      progress() {},
      end() {},
      close() {},
    },
  }).then(() => undefined, (e) => e);
  assert.ok(err instanceof RuntimeFailure, String(err));
  assert.match(err.message, /manifest test\/img:1 failed after 3 attempts/);
  assert.match(err.hint ?? "", /reachable/);
  assert.equal(warnings.filter((w) => /retrying/.test(w)).length, 2);
  await assert.rejects(Deno.stat(`${dir}/x.sqsh`));
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "squash: crafted layers cannot escape the image root",
  ignore: why !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "squash-evil-" });
  const spec = {
    config: { config: { Cmd: ["/bin/true"] } },
    layers: [
      [
        { name: "etc", type: "dir" },
        { name: "etc/passwd", type: "file", data: "root\n" },
        { name: "safe", type: "dir" },
      ],
      [
        { name: "../escape.txt", type: "file", data: "x" },
        { name: "../../tmp/evil", type: "file", data: "x" },
        { name: "/abs.txt", type: "file", data: "abs\n" },
        { name: "safe/../../up.txt", type: "file", data: "x" },
        { name: "link", type: "symlink", linkname: "/etc" },
        { name: "link/owned.txt", type: "file", data: "x" },
        { name: "uplink", type: "symlink", linkname: "../../../../../tmp" },
        { name: "uplink/x", type: "file", data: "x" },
        { name: "hl", type: "hardlink", linkname: "../../../etc/shadow" },
        { name: "hl2", type: "hardlink", linkname: "/etc/passwd" },
      ],
    ],
  };
  await Deno.writeTextFile(`${dir}/spec.json`, JSON.stringify(spec));
  const mk = await run("/usr/bin/python3", [MAKE_ARCHIVE, `${dir}/evil.tar`, `${dir}/spec.json`]);
  assert.equal(mk.code, 0, mk.stderr);
  const r = await nemotron(
    ["squash", `docker-archive://${dir}/evil.tar`, "-o", `${dir}/evil.sqsh`],
    {
      NEMOTRON_HOME: dir,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  // Hand-written: only in-root names survive; /abs.txt is made relative; hl2 → the image's passwd.
  assert.deepEqual(
    await sqshListing(`${dir}/evil.sqsh`),
    byPath([
      "d 0755 0:0 /",
      "f 0644 0:0 /abs.txt",
      "d 0755 0:0 /etc",
      "f 0644 0:0 /etc/passwd",
      "f 0644 0:0 /hl2",
      "l 0777 0:0 /link -> /etc",
      "d 0755 0:0 /safe",
      "l 0777 0:0 /uplink -> ../../../../../tmp",
      ...ENROOT_FILES,
    ]),
  );
  for (
    const bad of [
      "../escape.txt",
      "../../tmp/evil",
      "safe/../../up.txt",
      "link/owned.txt",
      "uplink/x",
      "hl",
    ]
  ) {
    assert.ok(
      r.stderr.includes(`dropped '${bad}'`) || r.stderr.includes(`dropped hard link '${bad}'`),
      bad,
    );
  }
  assert.match(r.stderr, /absolute name '\/abs\.txt' stored as '\/abs\.txt'/);
  const x = await unsquash(`${dir}/evil.sqsh`);
  assert.equal((await Deno.lstat(`${x}/hl2`)).ino, (await Deno.lstat(`${x}/etc/passwd`)).ino);
  assert.equal(await Deno.readTextFile(`${x}/hl2`), "root\n");
  await Deno.remove(x, { recursive: true });
  await Deno.remove(dir, { recursive: true });
});
