/**
 * `nemotron doctor PROFILE` finds the problems a submission would hit, on the real local Slurm
 * cluster: a partition Slurm does not have (Slurm's own reason, from `sbatch --test-only`), pyxis
 * missing for a container profile (the real srun has no --container-image; a stand-in srun that
 * offers it shows the other side), mount sources that do not exist, a missing `.sqsh`, and a
 * registry image whose manifest does (not) answer a HEAD request (a loopback fake registry; no
 * blob is fetched). A named profile that does not exist is exit 2 with a suggestion. And a recipe
 * submit asks Slurm the same question before it squashes anything.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { slurmTest } from "./slurm_cluster.ts";
import { runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { fakeImage, registryResponse, serve } from "./fixtures/squash/hostile.ts";

async function project(extra = ""): Promise<string> {
  const dir = await tempDir("nemotron-doctor-");
  await writeTree(dir, {
    "env.toml": `[good]
executor = "slurm"
partition = "debug"
remote_job_dir = "${dir}/rjd"
container_image = ""

[typo]
executor = "slurm"
partition = "debgu"
remote_job_dir = "${dir}/rjd"
container_image = ""
${extra}`,
  });
  await Deno.mkdir(path.join(dir, "rjd"), { mode: 0o700 });
  return dir;
}

/** The report line(s) of one check: its row plus the wrapped continuation lines under it. */
function row(report: string, name: string): string {
  const lines = report.split("\n");
  const i = lines.findIndex((l) => l.slice(5) === name || l.slice(5).startsWith(`${name} `));
  assert.ok(i >= 0, `no '${name}' row in:\n${report}`);
  let out = lines[i];
  for (let j = i + 1; j < lines.length && /^ {10,}\S/.test(lines[j]); j++) {
    out += ` ${lines[j].trim()}`;
  }
  return out;
}

slurmTest("doctor: Slurm's verdict on the profile's partition; exit 1 names the fix", async () => {
  const dir = await project();
  const good = await runCli(["doctor", "good"], { cwd: dir });
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(row(good.stdout, "profile good: sbatch --test-only"), /^ok .*to start at/);
  const bad = await runCli(["doctor", "typo"], { cwd: dir });
  assert.equal(bad.code, 1);
  const line = row(bad.stdout, "profile typo: sbatch --test-only");
  assert.match(line, /^FAIL .*invalid partition specified: debgu/);
  assert.match(line, /sinfo -s/);
});

slurmTest("doctor NOSUCH: did you mean, exit 2, like env show", async () => {
  const dir = await project();
  const r = await runCli(["doctor", "godo"], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Profile 'godo' not found/);
  assert.match(r.stderr, /Did you mean 'good'\?/);
});

slurmTest(
  "doctor: pyxis, mount sources, .sqsh and registry images of a container profile",
  async () => {
    const image = await fakeImage([{ bytes: new TextEncoder().encode("x"), gzip: false }]);
    // Serves the image under any tag but `nosuchtag`, which is 404 as a real registry answers.
    const registry = serve(
      "127.0.0.1",
      (_req, url) =>
        url.pathname.endsWith("/manifests/nosuchtag")
          ? new Response('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', { status: 404 })
          : registryResponse(image, url),
    );
    try {
      const dir = await project(`
[ctr]
executor = "slurm"
remote_job_dir = "RJD"
container_image = "${registry.host}/test/img:v1"
mounts = ["DATA:/data", "/nonexistent-nemotron-src:/x"]
lustre_mount = ""

[sqsh]
executor = "slurm"
remote_job_dir = "RJD"
container_image = "MISSING.sqsh"
lustre_mount = ""

[gone]
executor = "slurm"
remote_job_dir = "RJD"
container_image = "${registry.host}/test/img:nosuchtag"
lustre_mount = ""
`);
      const envFile = path.join(dir, "env.toml");
      await Deno.mkdir(path.join(dir, "data"));
      await Deno.writeTextFile(
        envFile,
        (await Deno.readTextFile(envFile)).replaceAll("RJD", `${dir}/rjd`)
          .replace("DATA", `${dir}/data`).replace("MISSING", `${dir}/missing`),
      );
      const r = await runCli(["doctor", "ctr"], { cwd: dir });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(
        row(r.stdout, "profile ctr: pyxis"),
        /^FAIL .*--container-image.*container_image = ""/,
      );
      assert.match(row(r.stdout, `profile ctr: mount ${dir}/data`), /^ok /);
      assert.match(
        row(r.stdout, "profile ctr: mount /nonexistent-nemotron-src"),
        /^FAIL .*does not exist on this login node/,
      );
      assert.match(row(r.stdout, "profile ctr: container_image"), /^ok .*the registry answers/);
      // Only the manifest was asked for, with HEAD: nothing was downloaded.
      assert.deepEqual(
        registry.seen.filter((s) => s.path !== "/v2/").map((s) => `${s.method} ${s.path}`),
        ["HEAD /v2/test/img/manifests/v1"],
      );

      // A stand-in srun that offers --container-image (pyxis is not installable here).
      const bin = path.join(dir, "bin");
      await writeTree(bin, {
        "srun": "#!/bin/sh\necho '      --container-image=[USER@][REGISTRY#]IMAGE[:TAG]|PATH'\n",
      });
      await Deno.chmod(path.join(bin, "srun"), 0o755);
      const withPyxis = await runCli(["doctor", "ctr"], {
        cwd: dir,
        env: { PATH: `${bin}:${Deno.env.get("PATH")}` },
      });
      assert.match(row(withPyxis.stdout, "profile ctr: pyxis"), /^ok /);

      const sqsh = await runCli(["doctor", "sqsh"], { cwd: dir });
      assert.match(
        row(sqsh.stdout, "profile sqsh: container_image"),
        new RegExp(`^FAIL .*${dir}/missing.sqsh does not exist: nemotron squash`),
      );
      const gone = await runCli(["doctor", "gone"], { cwd: dir });
      assert.match(row(gone.stdout, "profile gone: container_image"), /^-- .*HTTP 404/);
    } finally {
      await registry.close();
    }
  },
);

slurmTest(
  "a recipe submit asks Slurm first: a partition typo stops before any image pull",
  async () => {
    const dir = await project(`
[typo-ctr]
executor = "slurm"
partition = "debgu"
remote_job_dir = "RJD"
container_image = "127.0.0.1:9/never/pulled:v1"
`);
    const envFile = path.join(dir, "env.toml");
    await Deno.writeTextFile(
      envFile,
      (await Deno.readTextFile(envFile)).replaceAll("RJD", `${dir}/rjd`),
    );
    const r = await runCli(["demo", "data", "-c", "tiny", "--batch", "typo-ctr"], { cwd: dir });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /Slurm would refuse this job: invalid partition specified: debgu/);
    assert.match(r.stderr, /nemotron doctor typo-ctr/);
    assert.doesNotMatch(r.stderr, /127\.0\.0\.1:9|squash/i);
    // Nothing was written: no job dir, no squashed image.
    assert.deepEqual([...Deno.readDirSync(path.join(dir, "rjd"))], []);
  },
);
