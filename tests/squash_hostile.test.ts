/**
 * Hostile registries (issue 15 §2 and §4), all on loopback addresses: fake Registry API servers
 * (tests/fixtures/squash/hostile.ts) that redirect blobs to another origin asking for credentials,
 * name `file:` token realms or redirect to `file:` URLs, send endless bodies, serve a gzip bomb
 * layer or a layer with a huge PAX header; and the `@` image reference that once picked the
 * credentials of one host while connecting to another. Each run is the real CLI (a subprocess):
 * every case must end with a clear error, exit 1 (2 for bad input), no credential sent where it
 * was not stored for, and nothing partial left (no output, no temp dir, no half blob in the cache).
 */
import assert from "node:assert/strict";
import { zstdCompressSync } from "node:zlib";
import { nemotron, run } from "./fixtures/squash/registry.ts";
import {
  concat,
  fakeImage,
  gzip,
  paxPathRecord,
  registryResponse,
  serve,
  TAR_END,
  tarFile,
  ustarHeader,
} from "./fixtures/squash/hostile.ts";

const why = (await run("sh", ["-c", "command -v mksquashfs && command -v unsquashfs"])).code !== 0
  ? "mksquashfs/unsquashfs are not installed (apt-get install squashfs-tools)"
  : undefined;
if (why) console.log(`squash_hostile: SKIPPED: ${why}`);

const opts = { ignore: why !== undefined, sanitizeResources: false, sanitizeOps: false };

/** A small valid image: one gzip layer with /hello. */
async function smallImage() {
  const layer = await gzip(concat([tarFile("hello", "hi\n"), TAR_END]));
  return await fakeImage([{ bytes: layer, gzip: true }]);
}

/** Everything below `dir`, as relative paths (to show nothing partial was left). */
function tree(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory) out.push(...tree(`${dir}/${e.name}`, p));
  }
  return out.sort();
}

/** Blob-cache files that are not `.lock` files (a half blob would show up here). */
function cacheBlobs(home: string): string[] {
  try {
    return tree(`${home}/cache/blobs/sha256`).filter((p) => !p.endsWith(".lock"));
  } catch {
    return [];
  }
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "squash-hostile-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function envFor(dir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: dir,
    NEMOTRON_HOME: `${dir}/home`,
    ENROOT_CONFIG_PATH: `${dir}/enroot`,
    ...extra,
  };
}

async function writeNetrc(dir: string, text: string): Promise<void> {
  await Deno.mkdir(`${dir}/enroot`, { recursive: true });
  await Deno.writeTextFile(`${dir}/enroot/.credentials`, text);
}

function noStackTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /Uncaught|at file:\/\/|at async /);
  assert.match(stderr, /^error: /m);
}

/**
 * `nemotron squash HOST/test/img:1 -o DIR/out/x.sqsh` must fail with exit 1, a plain `error:`
 * matching `re`, and leave nothing in DIR/out. Returns stderr.
 */
async function refused(host: string, dir: string, re: RegExp): Promise<string> {
  const r = await nemotron(
    ["squash", `${host}/test/img:1`, "-o", `${dir}/out/x.sqsh`],
    envFor(dir),
  );
  assert.equal(r.code, 1, r.stderr);
  noStackTrace(r.stderr);
  assert.match(r.stderr, re);
  assert.deepEqual(tree(`${dir}/out`), []);
  return r.stderr;
}

Deno.test({
  name: "squash: '@' in the registry part is an error, never a credential lookup (also --dry-run)",
  ...opts,
}, async () => {
  await withDir(async (dir) => {
    const evil = serve("127.0.0.1", () => new Response("{}"));
    try {
      await writeNetrc(dir, "machine nvcr.io login $oauthtoken password NGC-SECRET-KEY\n");
      for (
        const image of [
          `docker://$oauthtoken@nvcr.io:443@${evil.host}#test/img:1`,
          `docker://user:pw@${evil.host}/x#test/img:1`,
          `docker://$oauthtoken@nvcr.io:99999#test/img:1`,
        ]
      ) {
        for (const dry of [true, false]) {
          const args = ["squash", image, "-o", `${dir}/out/x.sqsh`, ...(dry ? ["-d"] : [])];
          const r = await nemotron(args, envFor(dir));
          assert.equal(r.code, 2, `${image}: ${r.stderr}`);
          assert.match(r.stderr, /invalid image reference .*is not a registry host/, image);
          assert.doesNotMatch(r.stdout + r.stderr, /NGC-SECRET-KEY/);
        }
      }
      // `USER@REGISTRY#`: the login is looked up for the host connected to, not the one in USER.
      const u = await nemotron(
        ["squash", `docker://nvcr.io:443@${evil.host}#test/img:1`, "-d"],
        envFor(dir),
      );
      assert.equal(u.code, 2, u.stderr);
      assert.match(u.stderr, /no credentials for user 'nvcr\.io:443' at 127\.0\.0\.1:\d+/);
      assert.doesNotMatch(u.stdout + u.stderr, /NGC-SECRET-KEY/);
      assert.deepEqual(evil.seen, [], "nothing was sent to the other host");
      assert.deepEqual(tree(dir), ["enroot", "enroot/.credentials"]);
    } finally {
      await evil.close();
    }
  });
});

Deno.test({
  name: "squash: a blob redirect to another origin gets no credentials, even when it asks (401)",
  ...opts,
}, async (t) => {
  const image = await smallImage();
  const basic = `Basic ${btoa("tester:s3cret")}`;
  // The blob storage on another host: one that asks for auth, one that serves without.
  const asking = serve("127.0.0.2", (_req, url, self) => {
    if (url.pathname === "/token") return Response.json({ token: "stolen" });
    return new Response("", {
      status: 401,
      headers: { "www-authenticate": `Bearer realm="${self.origin}/token",service="cdn"` },
    });
  });
  const serving = serve("127.0.0.2", (_req, url) => registryResponse(image, url));
  let target = asking;
  const registry = serve("127.0.0.1", (req, url) => {
    if (req.headers.get("authorization") !== basic) {
      return new Response("", { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } });
    }
    if (url.pathname.includes("/blobs/")) {
      return new Response(null, {
        status: 307,
        headers: { location: `${target.origin}${url.pathname}` },
      });
    }
    return registryResponse(image, url);
  });
  try {
    await withDir(async (dir) => {
      // Credentials for both hosts: each may only ever go to its own host.
      await writeNetrc(
        dir,
        "machine 127.0.0.1 login tester password s3cret\n" +
          "machine 127.0.0.2 login other password OTHER-SECRET\n",
      );
      await Deno.mkdir(`${dir}/out`);
      await t.step("storage that answers 401: refused, nothing sent to it", async () => {
        const r = await nemotron(
          ["squash", `${registry.host}/test/img:1`, "-o", `${dir}/out/a.sqsh`],
          envFor(dir),
        );
        assert.equal(r.code, 1, r.stderr);
        noStackTrace(r.stderr);
        assert.match(
          r.stderr,
          /127\.0\.0\.2:\d+ \(where 127\.0\.0\.1:\d+ redirected GET blobs\/.*asks for authentication: refused/,
        );
        assert.ok(asking.seen.length > 0, "the redirect was followed");
        assert.deepEqual(asking.seen.filter((s) => s.authorization !== null), []);
        assert.deepEqual(asking.seen.filter((s) => s.path === "/token"), []);
        assert.ok(registry.seen.some((s) => s.authorization === basic), "the registry got them");
        assert.deepEqual(tree(`${dir}/out`), []);
        assert.deepEqual(cacheBlobs(`${dir}/home`), []);
      });
      await t.step("storage that serves: works, and still got no credentials", async () => {
        target = serving;
        const r = await nemotron(
          ["squash", `${registry.host}/test/img:1`, "-o", `${dir}/out/b.sqsh`],
          envFor(dir),
        );
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(tree(`${dir}/out`), ["b.sqsh"]);
        assert.ok(serving.seen.length >= 2, "config and layer came from the storage host");
        assert.deepEqual(serving.seen.filter((s) => s.authorization !== null), []);
      });
    });
  } finally {
    await Promise.all([asking.close(), serving.close(), registry.close()]);
  }
});

Deno.test({
  name: "squash: file: realms, file: redirects and plain-HTTP realms are refused",
  ...opts,
}, async (t) => {
  const image = await smallImage();
  let realm = "";
  let redirect = "";
  const registry = serve("127.0.0.1", (req, url) => {
    if (realm && !req.headers.get("authorization")) {
      return new Response("", {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${realm}",service="r"` },
      });
    }
    if (redirect && url.pathname.includes(redirect === "manifest" ? "/manifests/" : "/blobs/")) {
      return new Response(null, { status: 302, headers: { location: "file:///etc/passwd" } });
    }
    return registryResponse(image, url);
  });
  try {
    await withDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/token.json`, '{"token":"FILE-TOKEN"}');
      await Deno.mkdir(`${dir}/out`);
      const cases: [string, () => void, RegExp][] = [
        ["realm file: (a token file)", () => {
          realm = `file://${dir}/token.json`;
          redirect = "";
        }, /token realm of 127\.0\.0\.1:\d+ has the URL scheme 'file:': refused/],
        ["realm file:///dev/zero", () => {
          realm = "file:///dev/zero";
        }, /has the URL scheme 'file:': refused/],
        ["realm data:", () => {
          realm = 'data:application/json,{"token":"x"}';
        }, /has the URL scheme 'data:': refused/],
        ["realm on plain HTTP to a non-loopback host", () => {
          realm = "http://192.0.2.1/token";
        }, /token realm of .* uses plain HTTP \(http:\/\/192\.0\.2\.1\)/],
        ["manifest redirect to file:", () => {
          realm = "";
          redirect = "manifest";
        }, /redirect from .*manifests\/1 has the URL scheme 'file:': refused/],
        ["blob redirect to file:", () => {
          redirect = "blob";
        }, /redirect from .*blobs\/sha256:[0-9a-f]+ has the URL scheme 'file:': refused/],
      ];
      for (const [name, setup, re] of cases) {
        await t.step(name, async () => {
          setup();
          registry.seen.length = 0;
          const stderr = await refused(registry.host, dir, re);
          assert.doesNotMatch(stderr, /root:x:0/);
          assert.deepEqual(registry.seen.filter((s) => s.authorization !== null), []);
          assert.deepEqual(tree(`${dir}/out`), []);
          assert.deepEqual(cacheBlobs(`${dir}/home`), []);
        });
      }
      // The same refusals hold for a dry run (it resolves the manifest, so it authenticates).
      realm = `file://${dir}/token.json`;
      redirect = "";
      const d = await nemotron(
        ["squash", `${registry.host}/test/img:1`, "-d", "-o", `${dir}/out/x.sqsh`],
        envFor(dir),
      );
      assert.equal(d.code, 1, d.stderr);
      assert.match(d.stderr, /scheme 'file:'/);
    });
  } finally {
    await registry.close();
  }
});

/** A body that never ends (64 KiB chunks of `byte`, on demand). */
function endless(byte = 0x20): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(64 * 1024).fill(byte);
  return new ReadableStream({
    pull(c) {
      c.enqueue(chunk);
    },
  });
}

Deno.test({
  name:
    "squash: endless manifest, token and blob bodies, oversized config: clear errors, no leftovers",
  ...opts,
}, async (t) => {
  const image = await smallImage();
  let mode = "";
  const oversized = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: `sha256:${"ab".repeat(32)}`,
      size: 10 * 1024 * 1024,
    },
    layers: [],
  }));
  const registry = serve("127.0.0.1", (req, url, self) => {
    if (mode === "token") {
      if (url.pathname === "/token") return new Response(endless());
      if (!req.headers.get("authorization")) {
        return new Response("", {
          status: 401,
          headers: { "www-authenticate": `Bearer realm="${self.origin}/token"` },
        });
      }
    }
    if (mode === "manifest" && url.pathname.includes("/manifests/")) {
      return new Response(endless(), {
        headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      });
    }
    if (mode === "config" && url.pathname.includes("/manifests/")) {
      return new Response(oversized as BodyInit, {
        headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      });
    }
    if (mode === "blob" && url.pathname.endsWith(image.layerDigests[0])) {
      return new Response(endless(0));
    }
    return registryResponse(image, url);
  });
  try {
    await withDir(async (dir) => {
      await Deno.mkdir(`${dir}/out`);
      for (
        const [m, re] of [
          ["manifest", /manifest test\/img:1 is larger than 4194304 bytes: refused/],
          ["token", /token response from http:\/\/127\.0\.0\.1:\d+ is larger than 1048576 bytes/],
          ["config", /image config of 10485760 bytes is larger than 4194304: refused/],
          ["blob", /blob sha256:[0-9a-f]+: the registry sent more than the \d+ bytes the manifest/],
        ] as [string, RegExp][]
      ) {
        await t.step(m, async () => {
          mode = m;
          await refused(registry.host, dir, re);
          // The config may be cached (it is verified); the bad layer never is, not even half.
          assert.deepEqual(
            cacheBlobs(`${dir}/home`).filter((p) => p.includes(image.layerDigests[0].slice(7))),
            [],
          );
        });
      }
    });
  } finally {
    await registry.close();
  }
});

Deno.test({
  name: "squash: a gzip bomb layer is refused; NEMOTRON_SQUASH_MAX_EXPANSION raises the limit",
  ...opts,
}, async () => {
  // 80 MiB of zeros in one file, as concatenated gzip members (~80 KiB): a ~1000x expansion.
  const mib = 1024 * 1024;
  const zeros = await gzip(new Uint8Array(mib));
  const layer = concat([
    await gzip(ustarHeader("zeros", "0", 80 * mib)),
    ...Array.from({ length: 80 }, () => zeros),
    await gzip(TAR_END),
  ]);
  assert.ok(layer.length < 200 * 1024, `bomb is small (${layer.length} bytes)`);
  const image = await fakeImage([{ bytes: layer, gzip: true }]);
  // The same file as one zstd frame (a few KiB), served as a zstd layer.
  const zstdLayer = zstdCompressSync(
    concat([ustarHeader("zeros", "0", 80 * mib), new Uint8Array(80 * mib), TAR_END]),
  );
  const zImage = await fakeImage([{ bytes: new Uint8Array(zstdLayer), gzip: false }]);
  const registry = serve("127.0.0.1", (_req, url) => registryResponse(image, url));
  const zRegistry = serve("127.0.0.1", (_req, url) => registryResponse(zImage, url));
  try {
    await withDir(async (dir) => {
      await Deno.mkdir(`${dir}/out`);
      await refused(
        zRegistry.host,
        dir,
        /decompresses to more than 67108864 bytes .*decompression bomb/,
      );

      const stderr = await refused(
        registry.host,
        dir,
        /decompresses to more than 67108864 bytes from \d+ \(over 100× its size\): refused as a decompression bomb/,
      );
      assert.match(stderr, /hint: .*NEMOTRON_SQUASH_MAX_EXPANSION=N \(default 100\)/);
      assert.deepEqual(tree(`${dir}/out`), []);

      const bad = await nemotron(
        ["squash", `${registry.host}/test/img:1`, "-o", `${dir}/out/x.sqsh`],
        envFor(dir, { NEMOTRON_SQUASH_MAX_EXPANSION: "lots" }),
      );
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /NEMOTRON_SQUASH_MAX_EXPANSION must be a positive integer/);

      const ok = await nemotron(
        ["squash", `${registry.host}/test/img:1`, "-o", `${dir}/out/x.sqsh`],
        envFor(dir, { NEMOTRON_SQUASH_MAX_EXPANSION: "5000" }),
      );
      assert.equal(ok.code, 0, ok.stderr);
      const list = await run("unsquashfs", ["-lln", `${dir}/out/x.sqsh`]);
      assert.match(list.stdout, / 83886080 .*squashfs-root\/zeros\n/);
    });
  } finally {
    await Promise.all([registry.close(), zRegistry.close()]);
  }
});

Deno.test({
  name: "squash: a layer with a huge PAX header is a clear error, not an exhausted node",
  ...opts,
}, async () => {
  const layer = concat([
    tarFile("before", "x"),
    paxPathRecord(3 * 1024 * 1024, "evil"),
    tarFile("victim", "y"),
    TAR_END,
  ]);
  const image = await fakeImage([{ bytes: await gzip(layer), gzip: true }]);
  const registry = serve("127.0.0.1", (_req, url) => registryResponse(image, url));
  try {
    await withDir(async (dir) => {
      await Deno.mkdir(`${dir}/out`);
      const stderr = await refused(
        registry.host,
        dir,
        /extended tar header of 3145728 bytes at byte 1024 exceeds the 1048576-byte limit/,
      );
      assert.doesNotMatch(stderr, /SIGKILL/);
      assert.deepEqual(tree(`${dir}/out`), []);
    });
  } finally {
    await registry.close();
  }
});

Deno.test({
  name: "squash: a token realm on another host never gets the registry's credentials",
  ...opts,
}, async (t) => {
  const image = await smallImage();
  const basic = `Basic ${btoa("tester:s3cret")}`;
  // The token server on another host: it gives a token to anyone (as for a public image).
  const tokens = serve(
    "127.0.0.2",
    (_req, url) =>
      url.pathname === "/token"
        ? Response.json({ token: "anon" })
        : new Response("", { status: 404 }),
  );
  let realm = "";
  const registry = serve("127.0.0.1", (req, url) => {
    if (req.headers.get("authorization") !== "Bearer anon") {
      return new Response("", {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${realm}",service="reg"` },
      });
    }
    return registryResponse(image, url);
  });
  realm = `${tokens.origin}/token`;
  try {
    await withDir(async (dir) => {
      await writeNetrc(dir, "machine 127.0.0.1 login tester password s3cret\n");
      await Deno.mkdir(`${dir}/out`);
      await t.step("the token is asked for anonymously; the pull works", async () => {
        const r = await nemotron(
          ["squash", `${registry.host}/test/img:1`, "-o", `${dir}/out/a.sqsh`],
          envFor(dir),
        );
        assert.equal(r.code, 0, r.stderr);
        const asked = tokens.seen.filter((s) => s.path === "/token");
        assert.ok(asked.length > 0, "the realm was asked for a token");
        assert.deepEqual(asked.filter((s) => s.authorization !== null), []);
        assert.ok(asked.every((s) => !/account=/.test(s.query)), "no account name either");
        assert.ok(!tokens.seen.some((s) => s.authorization === basic));
      });
    });
  } finally {
    await Promise.all([tokens.close(), registry.close()]);
  }
});

Deno.test("realmMayGetCredentials: same host, or Docker Hub's own token service; nothing else", async () => {
  const { realmMayGetCredentials } = await import("../lib/squash/registry.ts");
  const u = (s: string) => new URL(s);
  assert.equal(realmMayGetCredentials("nvcr.io", u("https://nvcr.io/proxy_auth")), true);
  assert.equal(realmMayGetCredentials("127.0.0.1:5000", u("http://127.0.0.1:5001/token")), true);
  assert.equal(
    realmMayGetCredentials("registry-1.docker.io", u("https://auth.docker.io/token")),
    true,
  );
  assert.equal(realmMayGetCredentials("nvcr.io", u("https://auth.docker.io/token")), false);
  assert.equal(realmMayGetCredentials("nvcr.io", u("https://nvcr.io.evil.example/t")), false);
  assert.equal(realmMayGetCredentials("ghcr.io", u("https://token.example/t")), false);
});
