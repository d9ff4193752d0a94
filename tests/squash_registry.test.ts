/**
 * Integration: `nemotron squash` of the shared test image from a real local registry (no auth),
 * each manifest kind, compared with the expected rootfs the image script prints (owners 0:0, as
 * enroot's -all-root makes them), plus enroot's config files; and a docker-archive / oci-archive
 * of the same image giving the same tree.
 */
import assert from "node:assert/strict";
import {
  byPath,
  ENROOT_FILES,
  expectedList,
  nemotron,
  registryUnavailable,
  run,
  sqshListing,
  startRegistryWithImage,
  stopRegistry,
  unsquash,
} from "./fixtures/squash/registry.ts";

const PORT = 5131;
const why = await registryUnavailable();
if (why) console.log(`squash_registry: SKIPPED: ${why}`);

Deno.test({
  name: "squash: test image from the local registry, all manifest kinds and archives",
  ignore: why !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const { expected } = await startRegistryWithImage(PORT);
  const home = await Deno.makeTempDir({ prefix: "squash-home-" });
  const out = await Deno.makeTempDir({ prefix: "squash-out-" });
  const env = { NEMOTRON_HOME: home, ENROOT_SQUASH_OPTIONS: "-comp lzo -noD", HOME: home };
  const want = byPath([...expectedList(expected), ...ENROOT_FILES]);
  const contents = expected.split("\n").filter((l) => l.startsWith("content ")).map((l) => {
    const [p, text] = l.slice(8).split("\t");
    return { p, text };
  });
  const hardlinks = expected.split("\n").filter((l) => l.startsWith("hardlink ")).map((l) =>
    l.split(" ").slice(1)
  );
  assert.ok(
    want.length > 30 && contents.length >= 5 && hardlinks.length === 1,
    "expected list parsed",
  );

  const checkTree = async (sqsh: string, extra: string[] = []) => {
    assert.deepEqual(await sqshListing(sqsh), byPath([...want, ...extra]));
    const dir = await unsquash(sqsh);
    for (const { p, text } of contents) {
      assert.equal((await Deno.readTextFile(dir + p)).split("\n")[0], text, p);
    }
    for (const [a, b] of hardlinks) {
      assert.equal(
        (await Deno.lstat(dir + a)).ino,
        (await Deno.lstat(dir + b)).ino,
        `${a} == ${b}`,
      );
    }
    // enroot's config files, written by hand from the image config make-test-image.sh sets.
    assert.equal(
      await Deno.readTextFile(`${dir}/etc/environment`),
      "PATH=/usr/local/bin:/usr/bin:/bin\nFOO=bar=baz\n",
    );
    assert.equal(
      await Deno.readTextFile(`${dir}/etc/fstab`),
      "${ENROOT_ROOTFS}/data /data none x-create=dir,bind,rw,nosuid,nodev\n",
    );
    const rc = await Deno.readTextFile(`${dir}/etc/rc`);
    assert.equal(
      rc,
      [
        "# org.example.test 1",
        "",
        "mkdir -p /srv 2> /dev/null",
        "cd /srv && unset OLDPWD || exit 1",
        "",
        "if [ -s /etc/rc.local ]; then",
        "    . /etc/rc.local",
        "fi",
        "",
        "if [ $# -gt 0 ]; then",
        '    exec /bin/sh "$@"',
        "else",
        "    exec /bin/sh /bin/hello",
        "fi",
        "",
      ].join("\n"),
    );
    assert.equal((await run("sh", ["-n", `${dir}/etc/rc`])).code, 0);
    await Deno.remove(dir, { recursive: true });
  };

  for (
    const [tag, platform] of [["1", ""], ["1-v2s2", ""], ["1-index", "linux/amd64"], [
      "1-list",
      "linux/amd64",
    ]]
  ) {
    await t.step(`127.0.0.1:${PORT}/test/img:${tag} ${platform}`, async () => {
      const o = `${out}/img-${tag}.sqsh`;
      const args = ["squash", `127.0.0.1:${PORT}/test/img:${tag}`, "-o", o, "--json"];
      if (platform) args.push("--platform", platform);
      const r = await nemotron(args, env);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.output, o);
      assert.equal(j.layers, 3);
      assert.match(j.digest, /^sha256:[0-9a-f]{64}$/);
      assert.doesNotMatch(r.stderr, /already exists/);
      await checkTree(o);
      await assert.rejects(Deno.stat(`${o}.partial`));
    });
  }

  await t.step("digests the script reports (:1 OCI and :1-v2s2)", async () => {
    // From the registry README table (reproducible build).
    const r = await nemotron([
      "squash",
      `docker://127.0.0.1:${PORT}#test/img:1`,
      "-o",
      `${out}/x.sqsh`,
      "--json",
    ], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      JSON.parse(r.stdout).digest,
      "sha256:8934024b1e772da2e6805474a9c0aee89f53e7d909d841688eabd427ac140475",
    );
  });

  await t.step("arm64 from the index: 4 layers, /etc/arch added", async () => {
    const o = `${out}/arm.sqsh`;
    const r = await nemotron([
      "squash",
      `127.0.0.1:${PORT}/test/img:1-index`,
      "--platform",
      "linux/arm64",
      "-o",
      o,
      "--json",
    ], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).layers, 4);
    await checkTree(o, ["f 0644 0:0 /etc/arch"]);
  });

  await t.step("unknown platform is a usage error listing what exists", async () => {
    const r = await nemotron([
      "squash",
      `127.0.0.1:${PORT}/test/img:1-index`,
      "--platform",
      "linux/s390x",
      "-o",
      `${out}/no.sqsh`,
    ], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no image for platform linux\/s390x/);
    assert.match(r.stderr, /linux\/amd64, linux\/arm64/);
    await assert.rejects(Deno.stat(`${out}/no.sqsh`));
  });

  await t.step("existing output is reused without --force, re-created with it", async () => {
    const o = `${out}/img-1.sqsh`;
    const before = (await Deno.stat(o)).mtime!.getTime();
    const r = await nemotron(["squash", `127.0.0.1:${PORT}/test/img:1`, "-o", o], env);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /Using existing squashed image: .*img-1\.sqsh \(pass --force/);
    assert.equal((await Deno.stat(o)).mtime!.getTime(), before);
    const f = await nemotron(["squash", `127.0.0.1:${PORT}/test/img:1`, "-o", o, "--force"], env);
    assert.equal(f.code, 0, f.stderr);
    assert.ok((await Deno.stat(o)).mtime!.getTime() >= before);
    await checkTree(o);
  });

  await t.step("dry run prints digest and layers and writes nothing", async () => {
    const r = await nemotron([
      "squash",
      `127.0.0.1:${PORT}/test/img:1-v2s2`,
      "-d",
      "-o",
      `${out}/dry.sqsh`,
    ], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /digest: +sha256:37c8286a5cb48916f5bf7304a92fcf27f0b7896da6be585fc6b7d55e973cc96d/,
    );
    assert.match(r.stdout, /layers: +3,/);
    assert.equal(
      r.stdout.match(/application\/vnd\.docker\.image\.rootfs\.diff\.tar\.gzip/g)?.length,
      3,
    );
    await assert.rejects(Deno.stat(`${out}/dry.sqsh`));
  });

  await t.step(
    "docker-archive:// and oci-archive:// of the same image give the same tree",
    async () => {
      for (const kind of ["docker-archive", "oci-archive"]) {
        const tar = `${out}/img-${kind}.tar`;
        const c = await run("skopeo", [
          "copy",
          "-q",
          "--src-tls-verify=false",
          `docker://127.0.0.1:${PORT}/test/img:1`,
          `${kind}:${tar}`,
        ]);
        assert.equal(c.code, 0, c.stderr);
        const r = await nemotron(["squash", `${kind}://${tar}`, "-o", `${out}/`, "--json"], env);
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout);
        assert.equal(j.output, `${out}/img_${kind.replace("-", "_")}_tar.sqsh`);
        await checkTree(j.output);
      }
    },
  );

  await Deno.remove(home, { recursive: true });
  await Deno.remove(out, { recursive: true });
  await stopRegistry(PORT);
});
