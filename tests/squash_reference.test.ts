/**
 * IMAGE parsing (every accepted form), the `.sqsh` naming rule with the reference vectors
 * (nemotron-features §3.5), the enroot command and build_* precedence vectors, and credentials.
 */
import assert from "node:assert/strict";
import { parseImageRef, splitRegistry, sqshName } from "../lib/squash/reference.ts";
import {
  buildSallocArgs,
  renderEnrootImport,
  resolveBuildCacheDir,
  resolveBuildImage,
  resolveBuildPartition,
  resolveBuildTime,
} from "../lib/squash/enroot.ts";
import { lookupCredentials, parseNetrc } from "../lib/squash/credentials.ts";
import { checkRemoteUrl, parseWwwAuthenticate } from "../lib/squash/registry.ts";
import { openDockerArchive } from "../lib/squash/archive.ts";
import { parsePlatform, selectPlatform } from "../lib/squash/manifest.ts";
import { defaultSqshPath, ensureSquashedImage } from "../lib/squash/ensure.ts";
import { RuntimeFailure, UsageError } from "../lib/errors.ts";
import { SILENT } from "../lib/squash/progress.ts";
import { nemotron } from "./fixtures/squash/registry.ts";

Deno.test("sqshName: reference vectors (§3.5)", () => {
  const v: [string, string][] = [
    [
      "docker://nvcr.io/nvidian/nemo:25.11-nano-v3.rc2",
      "nvcr_io_nvidian_nemo_25_11_nano_v3_rc2.sqsh",
    ],
    [
      "dockerd://rayproject/ray:nightly-extra-py312-cpu",
      "rayproject_ray_nightly_extra_py312_cpu.sqsh",
    ],
    ["podman://quay.io/podman/stable:v5.3", "quay_io_podman_stable_v5_3.sqsh"],
    ["docker-archive:///home/test/.cache/nemotron/containers/omni3-sft.tar", "omni3_sft_tar.sqsh"],
    ["oci-archive:///home/test/.cache/nemotron/containers/omni3-rl.tar", "omni3_rl_tar.sqsh"],
    ["nvcr.io/nvidian/nemo:25.11-nano-v3.rc2", "nvcr_io_nvidian_nemo_25_11_nano_v3_rc2.sqsh"],
    ["ubuntu:24.04", "ubuntu_24_04.sqsh"],
    ["docker://__a--b__", "a_b.sqsh"],
  ];
  for (const [image, name] of v) assert.equal(sqshName(image), name, image);
});

Deno.test("parseImageRef: docker references", () => {
  assert.deepEqual(parseImageRef("ubuntu:24.04"), {
    kind: "registry",
    registry: "registry-1.docker.io",
    repository: "library/ubuntu",
    tag: "24.04",
    digest: undefined,
    user: undefined,
    source: "ubuntu:24.04",
  });
  const n = parseImageRef("nvcr.io/nvidia/nemo:25.11");
  assert.equal(
    n.kind === "registry" && `${n.registry}|${n.repository}|${n.tag}`,
    "nvcr.io|nvidia/nemo|25.11",
  );
  const l = parseImageRef("localhost:5000/a/b");
  assert.equal(
    l.kind === "registry" && `${l.registry}|${l.repository}|${l.tag}`,
    "localhost:5000|a/b|latest",
  );
  const u = parseImageRef("someuser/img");
  assert.equal(
    u.kind === "registry" && `${u.registry}|${u.repository}`,
    "registry-1.docker.io|someuser/img",
  );
  const d = parseImageRef("docker.io/library/alpine@sha256:" + "a".repeat(64));
  assert.equal(
    d.kind === "registry" && `${d.registry}|${d.repository}|${d.tag}|${d.digest}`,
    `registry-1.docker.io|library/alpine|undefined|sha256:${"a".repeat(64)}`,
  );
  const td = parseImageRef("127.0.0.1:5000/x:1@sha256:" + "b".repeat(64));
  assert.equal(td.kind === "registry" && `${td.tag}|${td.digest?.slice(0, 8)}`, "1|sha256:b");
});

Deno.test("parseImageRef: enroot docker:// form", () => {
  const a = parseImageRef("docker://nvcr.io#nvidia/nemo:25.11");
  assert.equal(
    a.kind === "registry" && `${a.registry}|${a.repository}|${a.tag}|${a.user}`,
    "nvcr.io|nvidia/nemo|25.11|undefined",
  );
  const b = parseImageRef("docker://$oauthtoken@nvcr.io#nvidia/pytorch:24.01-py3");
  assert.equal(
    b.kind === "registry" && `${b.user}|${b.registry}|${b.repository}`,
    "$oauthtoken|nvcr.io|nvidia/pytorch",
  );
  const c = parseImageRef("docker://ubuntu");
  assert.equal(
    c.kind === "registry" && `${c.registry}|${c.repository}|${c.tag}`,
    "registry-1.docker.io|library/ubuntu|latest",
  );
  const d = parseImageRef("docker://alpine@sha256:" + "c".repeat(64));
  assert.equal(d.kind === "registry" && `${d.user}|${d.digest?.slice(0, 8)}`, "undefined|sha256:c");
  const e = parseImageRef("docker://me@127.0.0.1:5000#test/img:1");
  assert.equal(
    e.kind === "registry" && `${e.user}|${e.registry}|${e.repository}|${e.tag}`,
    "me|127.0.0.1:5000|test/img|1",
  );
  assert.deepEqual(parseImageRef("docker-archive:///x/y.tar"), {
    kind: "docker-archive",
    path: "/x/y.tar",
    source: "docker-archive:///x/y.tar",
  });
  assert.deepEqual(parseImageRef("oci-archive://rel.tar"), {
    kind: "oci-archive",
    path: "rel.tar",
    source: "oci-archive://rel.tar",
  });
  assert.equal(parseImageRef("dockerd://img:1").kind, "dockerd");
  assert.equal(parseImageRef("podman://quay.io/podman/stable:v5.3").kind, "podman");
});

Deno.test("parseImageRef: bad input is a UsageError", () => {
  for (
    const bad of [
      "",
      "Ubuntu:24.04",
      "ubuntu:",
      "img:tag with space",
      "s3://bucket/x",
      "docker://",
      "a//b",
      "x@sha256:short",
      "docker-archive://",
    ]
  ) {
    assert.throws(() => parseImageRef(bad), UsageError, bad);
  }
});

Deno.test("build_* precedence and salloc args (§3.5)", () => {
  assert.equal(
    resolveBuildPartition({
      build_partition: "cpu",
      run_partition: "interactive",
      partition: "batch",
    }),
    "cpu",
  );
  assert.equal(
    resolveBuildPartition({ run_partition: "interactive", partition: "batch" }),
    "interactive",
  );
  assert.equal(resolveBuildPartition({ partition: "batch" }), "batch");
  assert.equal(resolveBuildPartition({}), undefined);
  assert.equal(resolveBuildPartition(undefined), undefined);
  assert.equal(resolveBuildTime({ build_time: "02:00:00", time: "08:00:00" }), "02:00:00");
  assert.equal(resolveBuildTime({ time: "08:00:00" }), "08:00:00");
  assert.equal(resolveBuildTime({}), "04:00:00");
  assert.equal(resolveBuildTime(undefined, "06:00:00"), "06:00:00");
  assert.equal(resolveBuildImage({ build_image: "custom/podman:v1" }), "custom/podman:v1");
  assert.equal(resolveBuildImage({}), "quay.io/podman/stable:v5.3");
  assert.equal(resolveBuildImage(undefined), "quay.io/podman/stable:v5.3");
  assert.equal(
    resolveBuildCacheDir({ build_cache_dir: "/lustre/team/cache/nemotron" }, "/d"),
    "/lustre/team/cache/nemotron",
  );
  assert.equal(resolveBuildCacheDir({ build_cache_dir: "" }, "/d"), "/d");
  assert.equal(resolveBuildCacheDir({ build_cache_dir: null }, "/d"), "/d");
  assert.equal(resolveBuildCacheDir({}, "/d"), "/d");
  const base = buildSallocArgs({});
  for (const a of ["--nodes=1", "--ntasks-per-node=1", "--time=04:00:00"]) {
    assert.ok(base.includes(a), a);
  }
  const full = buildSallocArgs({
    account: "dl-algo",
    build_partition: "cpu",
    build_time: "02:00:00",
    gpus_per_node: 8,
  });
  for (
    const a of ["--account=dl-algo", "--partition=cpu", "--time=02:00:00", "--gpus-per-node=8"]
  ) assert.ok(full.includes(a), a);
  assert.ok(!buildSallocArgs({ gpus_per_node: 8 }, false).some((a) => a.includes("gpus-per-node")));
  assert.deepEqual(
    buildSallocArgs({ build_partition: "cpu", run_partition: "x", partition: "batch" }).filter((
      a,
    ) => a.startsWith("--partition")),
    ["--partition=cpu"],
  );
  assert.ok(
    buildSallocArgs({ build_gpus_per_node: 0, gpus_per_node: 8 }).every((a) => !a.includes("gpus")),
  );
});

Deno.test("enroot import command (§1.9 / §3.5 vectors), checked by bash -n and shellcheck", async () => {
  const images = [
    "docker://nvcr.io/nvidian/nemo:25.11-nano-v3.rc2",
    "dockerd://rayproject/ray:nightly-extra-py312-cpu",
    "podman://quay.io/podman/stable:v5.3",
    "docker-archive:///home/test/.cache/nemotron/containers/omni3-sft.tar",
    "oci-archive:///home/test/.cache/nemotron/containers/omni3-rl.tar",
  ];
  const env = { account: "acct", build_partition: "cpu", build_time: "02:00:00" };
  for (const image of images) {
    const out = defaultSqshPath(image, { remote_job_dir: "/remote/jobs" });
    assert.equal(out, `/remote/jobs/${sqshName(image)}`);
    const c = renderEnrootImport(image, out, "/remote/jobs", env);
    assert.ok(c.display.includes("--partition=cpu") && c.display.includes("--time=02:00:00"));
    assert.ok(c.argv.at(-1)!.endsWith(`enroot import --output ${out} ${image}`), c.argv.at(-1));
  }
  const bare = "nvcr.io/nvidian/nemo:25.11-nano-v3.rc2";
  const out = defaultSqshPath(bare, { remote_job_dir: "/remote/jobs" });
  assert.equal(out, "/remote/jobs/nvcr_io_nvidian_nemo_25_11_nano_v3_rc2.sqsh");
  const c = renderEnrootImport(bare, out, "/remote/jobs", {
    partition: "batch",
    time: "04:00:00",
    gpus_per_node: 8,
  });
  // Written out by hand from §1.9.
  assert.equal(
    c.display,
    "salloc --partition=batch --nodes=1 --ntasks-per-node=1 --time=04:00:00 srun --export=ALL bash -c " +
      "'export ENROOT_RUNTIME_PATH=/remote/jobs/.enroot ENROOT_CACHE_PATH=/remote/jobs/.enroot/cache " +
      "ENROOT_DATA_PATH=/remote/jobs/.enroot/data && mkdir -p /remote/jobs/.enroot/cache /remote/jobs/.enroot/data && " +
      "enroot import --output /remote/jobs/nvcr_io_nvidian_nemo_25_11_nano_v3_rc2.sqsh " +
      "docker://nvcr.io/nvidian/nemo:25.11-nano-v3.rc2'",
  );
  const g = renderEnrootImport(bare, out, "/remote/jobs", {
    gpus_per_node: 8,
    build_include_gpus: true,
  });
  assert.ok(g.argv.includes("--gpus-per-node=8"));
  // Hostile path: the quoting keeps it one word for both shells.
  const evil = renderEnrootImport("ubuntu", "/tmp/a b/$(touch x)'q.sqsh", "/tmp/a b", {});
  for (const cmd of [c.display, evil.display, evil.argv.at(-1)!]) {
    const n = await new Deno.Command("bash", { args: ["-n", "-c", cmd] }).output();
    assert.equal(n.code, 0, cmd);
  }
  const sc = await new Deno.Command("sh", { args: ["-c", "command -v shellcheck"] }).output();
  if (sc.code === 0) {
    for (const cmd of [c.display, evil.display, evil.argv.at(-1)!]) {
      const p = new Deno.Command("shellcheck", {
        args: ["-S", "warning", "-s", "bash", "-"],
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const w = p.stdin.getWriter();
      await w.write(new TextEncoder().encode(cmd + "\n"));
      await w.close();
      const o = await p.output();
      assert.equal(o.code, 0, new TextDecoder().decode(o.stdout));
    }
  }
  // The inner script, run by bash with echo standing in, sees the path as one argument.
  const inner = evil.argv.at(-1)!.replace("enroot import", "printf '%s\\n'").replace(
    /^export .*? && mkdir -p .*? && /,
    "",
  );
  const o = await new Deno.Command("bash", { args: ["-c", inner], stdout: "piped" }).output();
  assert.equal(
    new TextDecoder().decode(o.stdout),
    "--output\n/tmp/a b/$(touch x)'q.sqsh\ndocker://ubuntu\n",
  );
});

Deno.test("ensureSquashedImage: .sqsh passthrough, reuse, dry run", async () => {
  const dir = await Deno.makeTempDir();
  assert.equal(
    await ensureSquashedImage({}, "/lustre/img.sqsh", { reporter: SILENT }),
    "/lustre/img.sqsh",
  );
  const p = { remote_job_dir: dir, squash: "enroot", partition: "batch" };
  const lines: string[] = [];
  const rep = { ...SILENT, info: (m: string) => lines.push(m) };
  assert.equal(
    await ensureSquashedImage(p, "ubuntu:24.04", { dryRun: true, reporter: rep }),
    `${dir}/ubuntu_24_04.sqsh`,
  );
  assert.match(
    lines[0],
    /^would run: salloc --partition=batch .*enroot import --output .*ubuntu_24_04\.sqsh docker:\/\/ubuntu:24\.04'$/,
  );
  await assert.rejects(Deno.stat(`${dir}/ubuntu_24_04.sqsh`));
  await Deno.writeTextFile(`${dir}/ubuntu_24_04.sqsh`, "x");
  lines.length = 0;
  assert.equal(
    await ensureSquashedImage(p, "ubuntu:24.04", { reporter: rep }),
    `${dir}/ubuntu_24_04.sqsh`,
  );
  assert.equal(lines[0], `✓ Using existing squashed image: ${dir}/ubuntu_24_04.sqsh`);
  await assert.rejects(
    ensureSquashedImage({ squash: "magic" }, "ubuntu", { reporter: rep }),
    UsageError,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("credentials: netrc, $VAR passwords, docker config.json, USER@ selection", async () => {
  assert.deepEqual(
    parseNetrc(
      "machine a login u password p\n# c\nmachine b\n login v\n password $X\ndefault login z password w",
    ),
    [
      { machine: "a", login: "u", password: "p", line: 1 },
      { machine: "b", login: "v", password: "$X", line: 3 },
    ],
  );
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/.credentials`,
    "machine nvcr.io login $oauthtoken password ${NGC_KEY}\nmachine r.io login alice password a1\nmachine r.io login bob password b2\n",
  );
  await Deno.mkdir(`${dir}/.docker`);
  await Deno.writeTextFile(
    `${dir}/.docker/config.json`,
    JSON.stringify({
      auths: {
        "https://index.docker.io/v1/": { username: "hub", password: "hp" },
        "q.io:5000": { auth: btoa("qu:qp:x") },
      },
    }),
  );
  const env = (vars: Record<string, string>) => (k: string) =>
    ({ ENROOT_CONFIG_PATH: dir, HOME: dir, ...vars } as Record<string, string>)[k];
  const ngc = lookupCredentials("nvcr.io", undefined, env({ NGC_KEY: "k" }));
  assert.deepEqual(ngc && [ngc.username, ngc.password], ["$oauthtoken", "k"]);
  assert.throws(() => lookupCredentials("nvcr.io", undefined, env({})), /NGC_KEY .* is not set/);
  assert.equal(lookupCredentials("r.io:443", "bob", env({}))?.password, "b2");
  assert.equal(lookupCredentials("r.io", undefined, env({}))?.username, "alice");
  assert.throws(() => lookupCredentials("r.io", "carol", env({})), UsageError);
  assert.equal(lookupCredentials("registry-1.docker.io", undefined, env({}))?.password, "hp");
  const q = lookupCredentials("q.io:5000", undefined, env({}));
  assert.deepEqual(q && [q.username, q.password], ["qu", "qp:x"]);
  assert.equal(lookupCredentials("other.io", undefined, env({})), undefined);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Www-Authenticate, --platform, platform selection", () => {
  assert.deepEqual(
    parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"',
    ),
    {
      scheme: "Bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/ubuntu:pull",
      },
    },
  );
  assert.deepEqual(parseWwwAuthenticate('Basic realm="local-registry"'), {
    scheme: "Basic",
    params: { realm: "local-registry" },
  });
  assert.deepEqual(parsePlatform("linux/aarch64"), {
    os: "linux",
    architecture: "arm64",
    variant: undefined,
  });
  assert.deepEqual(parsePlatform("linux/arm/v7"), {
    os: "linux",
    architecture: "arm",
    variant: "v7",
  });
  assert.throws(() => parsePlatform("amd64"), UsageError);
  const m = (architecture: string, variant?: string) => ({
    mediaType: "x",
    digest: `${architecture}${variant ?? ""}`,
    size: 1,
    platform: { os: "linux", architecture, variant },
  });
  const list = [m("unknown"), m("arm", "v6"), m("arm", "v7"), m("arm64", "v8"), m("amd64")];
  assert.equal(selectPlatform(list, { os: "linux", architecture: "amd64" })?.digest, "amd64");
  assert.equal(selectPlatform(list, { os: "linux", architecture: "arm64" })?.digest, "arm64v8");
  assert.equal(
    selectPlatform(list, { os: "linux", architecture: "arm", variant: "v7" })?.digest,
    "armv7",
  );
  assert.equal(selectPlatform(list, { os: "windows", architecture: "amd64" }), undefined);
});

Deno.test("nemotron squash: usage errors exit 2 and write nothing", async () => {
  const dir = await Deno.makeTempDir();
  for (
    const [args, re] of [
      [["squash", "Bad:Name"], /invalid image reference/],
      [["squash", "dockerd://img:1", "-o", `${dir}/x.sqsh`], /only with --enroot/],
      [["squash", "ubuntu", "--platform", "amd64"], /invalid --platform/],
      [["squash", "ubuntu", "-r", "nosuch"], /profile|env\.toml/],
    ] as [string[], RegExp][]
  ) {
    const r = await nemotron(args, { HOME: dir, NEMOTRON_HOME: dir }, dir);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  const e = await nemotron(["squash", "--enroot", "-d", "dockerd://img:1", "-o", `${dir}/x.sqsh`], {
    HOME: dir,
  }, dir);
  assert.equal(e.code, 0, e.stderr);
  assert.match(
    e.stdout,
    /^salloc --nodes=1 --ntasks-per-node=1 --time=04:00:00 srun --export=ALL bash -c .*enroot import --output .*x\.sqsh dockerd:\/\/img:1'\n$/,
  );
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("registry hosts are parsed strictly: HOST[:PORT], no '@', no userinfo (issue 15 §2)", () => {
  assert.deepEqual(splitRegistry("nvcr.io"), { host: "nvcr.io", port: undefined });
  assert.deepEqual(splitRegistry("NVCR.io:443"), { host: "nvcr.io", port: 443 });
  assert.deepEqual(splitRegistry("127.0.0.1:5000"), { host: "127.0.0.1", port: 5000 });
  assert.deepEqual(splitRegistry("[::1]:5000"), { host: "[::1]", port: 5000 });
  assert.deepEqual(splitRegistry("localhost"), { host: "localhost", port: undefined });
  for (
    const bad of [
      "nvcr.io:443@evil-host",
      "user@nvcr.io",
      "nvcr.io:",
      "nvcr.io:0",
      "nvcr.io:65536",
      "nvcr.io/x",
      "-a.io",
      "a..io",
      "nvcr.io:443:1",
      "",
    ]
  ) {
    assert.equal(splitRegistry(bad), undefined, bad);
  }
  for (
    const bad of [
      "docker://$oauthtoken@nvcr.io:443@evil-host#nvidia/nemo:1",
      "docker://u@nvcr.io@evil#nvidia/nemo:1",
      "docker://u@a.io:1:2#x/y",
      "nvcr.io:99999/nvidia/nemo:1",
    ]
  ) {
    assert.throws(() => parseImageRef(bad), /is not a registry host/, bad);
  }
  const ok = parseImageRef("docker://$oauthtoken@nvcr.io:443#nvidia/nemo:1");
  assert.equal(
    ok.kind === "registry" && `${ok.user}|${ok.registry}|${ok.repository}`,
    "$oauthtoken|nvcr.io:443|nvidia/nemo",
  );
  // Credentials are never looked up for a host that is not well-formed (no cutting at ':').
  const env = (k: string) => ({ HOME: "/nonexistent", ENROOT_CONFIG_PATH: "/nonexistent" })[k];
  assert.throws(() => lookupCredentials("nvcr.io:443@evil-host", undefined, env), UsageError);
});

Deno.test("redirects and token realms: https only (http to loopback or with --allow-http)", () => {
  const ok = (u: string, allow = false) => checkRemoteUrl(new URL(u), "x", allow);
  ok("https://auth.docker.io/token");
  ok("http://127.0.0.1:5000/token");
  ok("http://localhost/token");
  ok("http://registry.lan/token", true);
  assert.throws(() => ok("http://registry.lan/token"), /uses plain HTTP.*/);
  for (const u of ["file:///etc/passwd", "file:///dev/zero", "data:,x", "ftp://a/b", "blob:x"]) {
    assert.throws(() => ok(u, true), /has the URL scheme .*: refused/, u);
  }
});

Deno.test("docker-archive: an oversized manifest.json is refused, not read into memory", async () => {
  const dir = await Deno.makeTempDir();
  const py = "import tarfile,io,sys\n" +
    "t=tarfile.open(sys.argv[1],'w')\n" +
    "d=b' '*(5*1024*1024)\n" +
    "i=tarfile.TarInfo('manifest.json'); i.size=len(d); t.addfile(i, io.BytesIO(d)); t.close()\n";
  const o = await new Deno.Command("/usr/bin/python3", { args: ["-c", py, `${dir}/a.tar`] })
    .output();
  assert.equal(o.code, 0);
  await assert.rejects(
    openDockerArchive(`${dir}/a.tar`),
    (e) =>
      e instanceof RuntimeFailure && /manifest\.json is 5242880 bytes, larger than 4194304/.test(
        e.message,
      ),
  );
  await Deno.remove(dir, { recursive: true });
});
