/**
 * Integration: the same test image behind Basic auth (htpasswd) and behind Bearer-token auth
 * (`token-server.mjs`), with credentials from enroot's netrc file or ~/.docker/config.json.
 */
import assert from "node:assert/strict";
import {
  byPath,
  ENROOT_FILES,
  expectedList,
  nemotron,
  REGISTRY_SCRIPTS,
  registryUnavailable,
  run,
  sqshListing,
  startRegistryWithImage,
  stopRegistry,
} from "./fixtures/squash/registry.ts";

const why = (await registryUnavailable()) ??
  ((await run("sh", ["-c", "command -v openssl && command -v node"])).code !== 0
    ? "openssl and node are needed for the token server"
    : undefined);
if (why) console.log(`squash_auth: SKIPPED: ${why}`);

Deno.test({
  name: "squash: Basic auth with enroot .credentials and docker config.json",
  ignore: why !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const port = 5132;
  const creds = { LOCAL_REGISTRY_HTPASSWD: "tester:s3cret" };
  const { expected } = await startRegistryWithImage(port, creds);
  const home = await Deno.makeTempDir({ prefix: "squash-auth-" });
  const want = byPath([...expectedList(expected), ...ENROOT_FILES]);
  const image = `127.0.0.1:${port}/test/img:1`;
  try {
    await t.step("no credentials: clear error, no output", async () => {
      const r = await nemotron(["squash", image, "-o", `${home}/a.sqsh`], {
        HOME: home,
        NEMOTRON_HOME: home,
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /requires credentials \(Basic auth\)/);
      assert.match(r.stderr, /\.credentials/);
      await assert.rejects(Deno.stat(`${home}/a.sqsh`));
    });
    await t.step("enroot netrc with $VAR password", async () => {
      const cfg = `${home}/enroot`;
      await Deno.mkdir(cfg, { recursive: true });
      await Deno.writeTextFile(
        `${cfg}/.credentials`,
        `machine 127.0.0.1 login tester password $REG_PASS\n`,
      );
      const r = await nemotron(["squash", image, "-o", `${home}/b.sqsh`], {
        HOME: home,
        NEMOTRON_HOME: home,
        ENROOT_CONFIG_PATH: cfg,
        REG_PASS: "s3cret",
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await sqshListing(`${home}/b.sqsh`), want);
      assert.doesNotMatch(r.stderr, /s3cret/);
    });
    await t.step("wrong password in netrc is rejected with a hint", async () => {
      const cfg = `${home}/enroot-bad`;
      await Deno.mkdir(cfg, { recursive: true });
      await Deno.writeTextFile(
        `${cfg}/.credentials`,
        `machine 127.0.0.1 login tester password nope\n`,
      );
      const r = await nemotron(["squash", image, "-o", `${home}/c.sqsh`], {
        HOME: home,
        NEMOTRON_HOME: `${home}/n2`,
        ENROOT_CONFIG_PATH: cfg,
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /not authorized/);
      assert.match(r.stderr, /credentials from .*enroot-bad\/\.credentials were rejected/);
    });
    await t.step("~/.docker/config.json auths", async () => {
      await Deno.mkdir(`${home}/.docker`, { recursive: true });
      await Deno.writeTextFile(
        `${home}/.docker/config.json`,
        JSON.stringify({ auths: { [`127.0.0.1:${port}`]: { auth: btoa("tester:s3cret") } } }),
      );
      const r = await nemotron(["squash", image, "-o", `${home}/d.sqsh`], {
        HOME: home,
        NEMOTRON_HOME: `${home}/n3`,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await sqshListing(`${home}/d.sqsh`), want);
    });
  } finally {
    await stopRegistry(port);
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test({
  name: "squash: Bearer token auth (token server), anonymous pull and with credentials",
  ignore: why !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const port = 5133;
  const tokenPort = 5134;
  const dir = await Deno.makeTempDir({ prefix: "squash-token-" });
  const ssl = await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=local-token",
    "-keyout",
    `${dir}/token.key`,
    "-out",
    `${dir}/token.crt`,
  ]);
  assert.equal(ssl.code, 0, ssl.stderr);
  const server = new Deno.Command("node", {
    args: [`${REGISTRY_SCRIPTS}token-server.mjs`],
    env: {
      TOKEN_KEY: `${dir}/token.key`,
      TOKEN_CERT: `${dir}/token.crt`,
      TOKEN_PORT: String(tokenPort),
      TOKEN_USERS: "tester:s3cret",
      TOKEN_ANONYMOUS_PULL: "1",
      TOKEN_MAX_SECONDS: "300",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    for (let i = 0; i < 50; i++) {
      const r = await fetch(`http://127.0.0.1:${tokenPort}/token`).catch(() => undefined);
      await r?.body?.cancel();
      if (r) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const regEnv = {
      LOCAL_REGISTRY_TOKEN_REALM: `http://127.0.0.1:${tokenPort}/token`,
      LOCAL_REGISTRY_TOKEN_ROOTCERT: `${dir}/token.crt`,
      TEST_IMAGE_CREDS: "tester:s3cret",
    };
    const { expected } = await startRegistryWithImage(port, regEnv);
    const want = byPath([...expectedList(expected), ...ENROOT_FILES]);
    await t.step("anonymous pull gets a token and succeeds", async () => {
      const r = await nemotron([
        "squash",
        `127.0.0.1:${port}/test/img:1-list`,
        "-o",
        `${dir}/a.sqsh`,
      ], {
        HOME: dir,
        NEMOTRON_HOME: `${dir}/n1`,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await sqshListing(`${dir}/a.sqsh`), want);
    });
    await t.step("docker://USER@REGISTRY#IMAGE with netrc credentials", async () => {
      await Deno.mkdir(`${dir}/enroot`);
      await Deno.writeTextFile(
        `${dir}/enroot/.credentials`,
        `machine 127.0.0.1\n  login tester\n  password s3cret\n`,
      );
      const r = await nemotron(
        ["squash", `docker://tester@127.0.0.1:${port}#test/img:1`, "-o", `${dir}/b.sqsh`],
        { HOME: dir, NEMOTRON_HOME: `${dir}/n2`, ENROOT_CONFIG_PATH: `${dir}/enroot` },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await sqshListing(`${dir}/b.sqsh`), want);
    });
    await t.step("bad credentials: the token server refuses", async () => {
      await Deno.writeTextFile(
        `${dir}/enroot/.credentials`,
        `machine 127.0.0.1 login tester password wrong\n`,
      );
      const r = await nemotron(["squash", `127.0.0.1:${port}/test/img:1`, "-o", `${dir}/c.sqsh`], {
        HOME: dir,
        NEMOTRON_HOME: `${dir}/n3`,
        ENROOT_CONFIG_PATH: `${dir}/enroot`,
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /token server .* refused: HTTP 401/);
      await assert.rejects(Deno.stat(`${dir}/c.sqsh`));
    });
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await stopRegistry(port);
    await Deno.remove(dir, { recursive: true });
  }
});
