/**
 * Integration: `nemotron squash --enroot` under the local Slurm cluster. `salloc … srun … bash -c
 * '… enroot import --output OUT SOURCE'` really runs; `enroot` is a stand-in this test writes
 * (skopeo + umoci + mksquashfs), since enroot itself is not installable here.
 */
import assert from "node:assert/strict";
import {
  byPath,
  expectedList,
  nemotron,
  registryUnavailable,
  run,
  sqshListing,
  startRegistryWithImage,
  stopRegistry,
} from "./fixtures/squash/registry.ts";

const why = (await registryUnavailable()) ??
  ((await run("sh", ["-c", "command -v salloc && sinfo -h -o %T | grep -qE 'idle|mix|alloc'"]))
      .code !== 0
    ? "no local Slurm cluster is up (CI: start ../shared/slurm's cluster before the tests)"
    : undefined);
if (why) console.log(`squash_enroot: SKIPPED: ${why}`);

const STAND_IN = `#!/bin/bash
# Stand-in for 'enroot import --output OUT docker://[REG#]IMG[:TAG]' (test only).
set -euo pipefail
[ "$1" = import ] && [ "$2" = --output ] || { echo "unexpected: $*" >&2; exit 2; }
out="$3"; src="$4"
[ -e "$out" ] && { echo "File already exists: $out" >&2; exit 1; }
ref="\${src#docker://}"; ref="\${ref/\\#//}"
mkdir -p "$ENROOT_CACHE_PATH" "$ENROOT_DATA_PATH"
w="$(mktemp -d "$ENROOT_CACHE_PATH/standin.XXXXXX")"
skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$w/oci:img"
umoci raw unpack --image "$w/oci:img" "$w/rootfs" >/dev/null
mksquashfs "$w/rootfs" "$out" -noappend -all-root -no-progress $ENROOT_SQUASH_OPTIONS >/dev/null
rm -rf "$w"
echo "stand-in enroot imported $ref (env: $ENROOT_RUNTIME_PATH)"
`;

Deno.test({
  name: "squash --enroot: salloc/srun runs enroot import (stand-in) under local Slurm",
  ignore: why !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const port = 5137;
  const { expected } = await startRegistryWithImage(port);
  const dir = await Deno.makeTempDir({ prefix: "squash-enroot-" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/bin/enroot`, STAND_IN, { mode: 0o755 });
    await Deno.writeTextFile(
      `${dir}/env.toml`,
      `[cluster]\nremote_job_dir = "${dir}/jobs"\nsquash = "enroot"\nbuild_time = "00:05:00"\n`,
    );
    const env = {
      PATH: `${dir}/bin:${Deno.env.get("PATH")}`,
      ENROOT_SQUASH_OPTIONS: "-comp lzo -noD",
      NEMOTRON_ENV_FILE: `${dir}/env.toml`,
    };
    const image = `docker://127.0.0.1:${port}#test/img:1`;
    const dry = await nemotron(["squash", image, "-r", "cluster", "-d"], env, dir);
    assert.equal(dry.code, 0, dry.stderr);
    const out = `${dir}/jobs/127_0_0_1_${port}_test_img_1.sqsh`;
    assert.equal(
      dry.stdout,
      `salloc --nodes=1 --ntasks-per-node=1 --time=00:05:00 srun --export=ALL bash -c 'export ` +
        `ENROOT_RUNTIME_PATH=${dir}/jobs/.enroot ENROOT_CACHE_PATH=${dir}/jobs/.enroot/cache ` +
        `ENROOT_DATA_PATH=${dir}/jobs/.enroot/data && mkdir -p ${dir}/jobs/.enroot/cache ${dir}/jobs/.enroot/data && ` +
        // '#' is quoted (inside the outer single quotes: '"'"'…'"'"').
        `enroot import --output ${out} '"'"'docker://127.0.0.1:${port}#test/img:1'"'"''\n`,
    );
    await assert.rejects(Deno.stat(`${dir}/jobs`));
    const r = await nemotron(["squash", image, "-r", "cluster", "--json"], env, dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).output, out);
    assert.match(
      r.stderr,
      new RegExp(
        `stand-in enroot imported 127.0.0.1:${port}/test/img:1 \\(env: ${dir}/jobs/.enroot\\)`,
      ),
    );
    // The stand-in is the reference chain (umoci), owners forced to root: the expected list as is.
    assert.deepEqual(await sqshListing(out), byPath(expectedList(expected)));
    const again = await nemotron(["squash", image, "-r", "cluster"], env, dir);
    assert.match(again.stderr, /Using existing squashed image/);
    const forced = await nemotron(["squash", image, "-r", "cluster", "--force"], env, dir);
    assert.equal(forced.code, 0, forced.stderr);
  } finally {
    await stopRegistry(port);
    await Deno.remove(dir, { recursive: true });
  }
});
