/**
 * `squash` on this node, with hostile neighbours and odd settings (issue 15 §1 and §5, issue 10
 * §4): symlinks planted at the output, at the old `<output>.partial` name and in the blob cache
 * (pointing at a victim file that must stay unchanged), another user's file at the output (uid
 * 4242, simulated as root with chown), device nodes / fifos / setuid files in a layer, a set
 * SOURCE_DATE_EPOCH, and an mksquashfs that fails on bad ENROOT_SQUASH_OPTIONS. Real CLI runs
 * (subprocesses), real mksquashfs/unsquashfs.
 */
import assert from "node:assert/strict";
import {
  byPath,
  ENROOT_FILES,
  nemotron,
  run,
  sqshListing,
  unsquash,
} from "./fixtures/squash/registry.ts";
import {
  concat,
  fakeImage,
  gzip,
  registryResponse,
  serve,
  TAR_END,
  tarFile,
} from "./fixtures/squash/hostile.ts";
import { ensureSquashedImage } from "../lib/squash/ensure.ts";
import { SILENT } from "../lib/squash/progress.ts";
import { UsageError } from "../lib/errors.ts";

const why = (await run("sh", ["-c", "command -v mksquashfs && command -v unsquashfs"])).code !== 0
  ? "mksquashfs/unsquashfs are not installed (apt-get install squashfs-tools)"
  : Deno.uid() !== 0
  ? "needs root (chown to another uid simulates another user's file)"
  : undefined;
if (why) console.log(`squash_local: SKIPPED: ${why}`);
const opts = { ignore: why !== undefined, sanitizeResources: false, sanitizeOps: false };

const MAKE_ARCHIVE = new URL("./fixtures/squash/make_archive.py", import.meta.url).pathname;
const OTHER_UID = 4242;

async function archive(dir: string, layers: unknown[][], name = "img.tar"): Promise<string> {
  await Deno.writeTextFile(`${dir}/spec.json`, JSON.stringify({ layers }));
  const mk = await run("/usr/bin/python3", [MAKE_ARCHIVE, `${dir}/${name}`, `${dir}/spec.json`]);
  assert.equal(mk.code, 0, mk.stderr);
  return `docker-archive://${dir}/${name}`;
}

const SIMPLE = [[
  { name: "etc", type: "dir" },
  { name: "hello", type: "file", data: "hi\n" },
]];

/** A victim file and a way to check it is untouched. */
async function victim(dir: string): Promise<() => Promise<void>> {
  const path = `${dir}/victim`;
  await Deno.writeTextFile(path, "precious\n");
  const before = await Deno.stat(path);
  return async () => {
    assert.equal(await Deno.readTextFile(path), "precious\n", "victim content unchanged");
    const now = await Deno.stat(path);
    assert.equal(now.mtime?.getTime(), before.mtime?.getTime(), "victim not rewritten");
    assert.equal(now.ino, before.ino);
  };
}

function leftovers(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes(".partial"));
}

Deno.test(
  { name: "squash: planted symlinks and another user's file at the output", ...opts },
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "squash-local-" });
    try {
      const image = await archive(dir, SIMPLE);
      const unchanged = await victim(dir);
      const out = `${dir}/out`;
      await Deno.mkdir(out);
      await Deno.chmod(out, 0o1777); // a shared scratch directory
      const env = { HOME: dir, NEMOTRON_HOME: `${dir}/home` };

      await t.step(
        "symlink at the output: not reused, not followed; --force replaces it",
        async () => {
          await Deno.symlink(`${dir}/victim`, `${out}/a.sqsh`);
          for (const extra of [[], ["-d"]]) {
            const r = await nemotron(["squash", image, "-o", `${out}/a.sqsh`, ...extra], env);
            assert.equal(r.code, 2, r.stderr);
            assert.match(
              r.stderr,
              /existing image .*\/out\/a\.sqsh is a symbolic link: not reusing it/,
            );
            assert.match(r.stderr, /hint: .*--force/);
          }
          const f = await nemotron(["squash", image, "-o", `${out}/a.sqsh`, "--force"], env);
          assert.equal(f.code, 0, f.stderr);
          assert.ok((await Deno.lstat(`${out}/a.sqsh`)).isFile, "a regular file replaced the link");
          await unchanged();
        },
      );

      await t.step(
        "symlink at the old <output>.partial name is never written through",
        async () => {
          await Deno.symlink(`${dir}/victim`, `${out}/b.sqsh.partial`);
          const r = await nemotron(["squash", image, "-o", `${out}/b.sqsh`], env);
          assert.equal(r.code, 0, r.stderr);
          assert.ok((await Deno.lstat(`${out}/b.sqsh`)).isFile);
          assert.ok((await Deno.lstat(`${out}/b.sqsh.partial`)).isSymlink, "left alone");
          await unchanged();
          const x = await unsquash(`${out}/b.sqsh`);
          assert.equal(await Deno.readTextFile(`${x}/hello`), "hi\n");
          await Deno.remove(x, { recursive: true });
        },
      );

      await t.step("another user's .sqsh at the output is not reused", async () => {
        await Deno.writeTextFile(`${out}/c.sqsh`, "not an image\n");
        await Deno.chown(`${out}/c.sqsh`, OTHER_UID, OTHER_UID);
        const r = await nemotron(["squash", image, "-o", `${out}/c.sqsh`], env);
        assert.equal(r.code, 2, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`c\\.sqsh belongs to uid ${OTHER_UID}, not to you \\(uid 0\\)`),
        );
        assert.equal(await Deno.readTextFile(`${out}/c.sqsh`), "not an image\n");
        // The same rule where recipes ask for their image.
        await assert.rejects(
          ensureSquashedImage({ remote_job_dir: out }, "docker-archive:///x/c", {
            reporter: SILENT,
          }),
          (e) => e instanceof UsageError && /belongs to uid 4242/.test(e.message),
        );
      });
      assert.deepEqual(leftovers(out), ["b.sqsh.partial"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  { name: "squash: planted files in the blob cache are refused, never followed", ...opts },
  async () => {
    const layer = await gzip(concat([tarFile("hello", "hi\n"), TAR_END]));
    const img = await fakeImage([{ bytes: layer, gzip: true }]);
    const hex = img.layerDigests[0].slice(7);
    const registry = serve("127.0.0.1", (_req, url) => registryResponse(img, url));
    const dir = await Deno.makeTempDir({ prefix: "squash-cache-" });
    try {
      const unchanged = await victim(dir);
      const cache = `${dir}/home/cache/blobs/sha256`;
      await Deno.mkdir(cache, { recursive: true });
      const env = { HOME: dir, NEMOTRON_HOME: `${dir}/home` };
      const plant: [string, () => Promise<void>, RegExp][] = [
        [
          `${hex}.partial`,
          () => Deno.symlink(`${dir}/victim`, `${cache}/${hex}.partial`),
          /is a symbolic link/,
        ],
        [
          `${hex}.lock`,
          () => Deno.symlink(`${dir}/victim`, `${cache}/${hex}.lock`),
          /is a symbolic link/,
        ],
        [hex, () => Deno.symlink(`${dir}/victim`, `${cache}/${hex}`), /is a symbolic link/],
        [hex, async () => {
          await Deno.writeFile(`${cache}/${hex}`, new Uint8Array(layer.length));
          await Deno.chown(`${cache}/${hex}`, OTHER_UID, OTHER_UID);
        }, /belongs to uid 4242/],
      ];
      for (const [name, make, re] of plant) {
        await make();
        const r = await nemotron(
          ["squash", `${registry.host}/test/img:1`, "-o", `${dir}/x.sqsh`],
          env,
        );
        assert.equal(r.code, 1, `${name}: ${r.stderr}`);
        assert.match(r.stderr, re);
        assert.match(r.stderr, new RegExp(`${name.replace(".", "\\.")}`));
        await assert.rejects(Deno.lstat(`${dir}/x.sqsh`));
        await unchanged();
        for (const e of Deno.readDirSync(cache)) await Deno.remove(`${cache}/${e.name}`);
      }
      // With the cache clean again, the same image squashes.
      const ok = await nemotron(
        ["squash", `${registry.host}/test/img:1`, "-o", `${dir}/x.sqsh`],
        env,
      );
      assert.equal(ok.code, 0, ok.stderr);
      await unchanged();
    } finally {
      await registry.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({
  name: "squash: device nodes outside /dev dropped; fifos and setuid/setgid kept",
  ...opts,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "squash-dev-" });
  try {
    const image = await archive(dir, [[
      { name: "bin", type: "dir" },
      { name: "bin/su", type: "file", data: "su\n", mode: "4755" },
      { name: "bin/wall", type: "file", data: "wall\n", mode: "2755" },
      { name: "dev", type: "dir" },
      { name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: "666" },
      { name: "etc", type: "dir" },
      { name: "opt", type: "dir" },
      { name: "opt/null", type: "char", devmajor: 1, devminor: 3, mode: "666" },
      { name: "opt/sda", type: "block", devmajor: 8, devminor: 0, mode: "660" },
      { name: "opt/nl", type: "hardlink", linkname: "opt/null" },
      { name: "srv", type: "dir" },
      { name: "srv/fifo", type: "fifo", mode: "600" },
    ]]);
    const r = await nemotron(["squash", image, "-o", `${dir}/d.sqsh`], { NEMOTRON_HOME: dir });
    assert.equal(r.code, 0, r.stderr);
    // Hand-written: what enroot's unprivileged import keeps.
    assert.deepEqual(
      await sqshListing(`${dir}/d.sqsh`),
      byPath([
        "d 0755 0:0 /",
        "d 0755 0:0 /bin",
        "f 4755 0:0 /bin/su",
        "f 2755 0:0 /bin/wall",
        "d 0755 0:0 /dev",
        "d 0755 0:0 /etc",
        "d 0755 0:0 /opt",
        "d 0755 0:0 /srv",
        "p 0600 0:0 /srv/fifo",
        ...ENROOT_FILES,
      ]),
    );
    assert.match(r.stderr, /dropped char device '\/opt\/null' \(1:3\): device nodes outside \/dev/);
    assert.match(r.stderr, /dropped block device '\/opt\/sda' \(8:0\)/);
    assert.match(r.stderr, /dropped hard link '\/opt\/nl'/);
    assert.doesNotMatch(r.stderr, /dev\/null/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "squash: SOURCE_DATE_EPOCH set → every time is the epoch (clean mksquashfs env)",
  ...opts,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "squash-epoch-" });
  try {
    const image = await archive(dir, SIMPLE);
    const r = await nemotron(["squash", image, "-o", `${dir}/e.sqsh`], {
      NEMOTRON_HOME: dir,
      SOURCE_DATE_EPOCH: "1000000000",
    });
    assert.equal(r.code, 0, r.stderr);
    const x = await unsquash(`${dir}/e.sqsh`);
    for (const p of ["hello", "etc/rc", "etc"]) {
      assert.equal((await Deno.lstat(`${x}/${p}`)).mtime?.getTime(), 1000000000 * 1000, p);
    }
    await Deno.remove(x, { recursive: true });
    const bad = await nemotron(["squash", image, "-o", `${dir}/f.sqsh`], {
      NEMOTRON_HOME: dir,
      SOURCE_DATE_EPOCH: "yesterday",
    });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /SOURCE_DATE_EPOCH must be an integer/);
    await assert.rejects(Deno.lstat(`${dir}/f.sqsh`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "squash: a failing mksquashfs is error:/hint: and exit 1, never a stack trace",
  ...opts,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "squash-mkfail-" });
  try {
    const image = await archive(dir, SIMPLE);
    await Deno.mkdir(`${dir}/out`);
    const r = await nemotron(["squash", image, "-o", `${dir}/out/g.sqsh`], {
      NEMOTRON_HOME: dir,
      ENROOT_SQUASH_OPTIONS: "-comp bogus",
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^error: mksquashfs failed \(exit 1\):\n.*Compressor "bogus" is not supported/m,
    );
    assert.match(r.stderr, /^ {2}hint: check ENROOT_SQUASH_OPTIONS \(now '-comp bogus'/m);
    assert.doesNotMatch(r.stderr, /Uncaught|RuntimeFailure|at file:\/\/|at async /);
    assert.deepEqual([...Deno.readDirSync(`${dir}/out`)], [], "no output, no temp dir");
    // An output directory that cannot be made: the same plain error, exit 1.
    await Deno.writeTextFile(`${dir}/afile`, "");
    const d = await nemotron(["squash", image, "-o", `${dir}/afile/sub/x.sqsh`], {
      NEMOTRON_HOME: dir,
    });
    assert.equal(d.code, 1, d.stderr);
    assert.match(d.stderr, /^error: cannot write in .*\/afile\/sub: Not a directory/m);
    assert.doesNotMatch(d.stderr, /at file:\/\//);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
