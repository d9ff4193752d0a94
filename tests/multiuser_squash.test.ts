/**
 * Multi-user attacks on `squash` (issue 15 §1 and §3), replayed by the real user `nemotron-other`
 * against the real user `nemotron-victim` running the one-file bundle (tests/multiuser.ts): a
 * symlink planted in the shared 1777 scratch dir at the victim's output and at the old predictable
 * `<output>.partial` name, pointing at the victim's ~/.bashrc; a `.sqsh` the other user owns (and
 * left writable by everyone) at the victim's output, with and without `--force`; and the blob
 * cache, which must be out of the other user's reach. With fs.protected_symlinks = 0 (the build
 * machine's setting) the kernel does not stop a write through another user's symlink in a sticky
 * dir: only nemotron's own checks do. Images come from a `docker-archive://` tarball
 * (tests/fixtures/squash/make_archive.py) and, for the blob cache, a fake registry on 127.0.0.1
 * (tests/fixtures/squash/hostile.ts); and the same .sqsh rule where a recipe submission asks for its
 * image in a shared `remote_job_dir` (on the shared local Slurm cluster). Needs mksquashfs.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import {
  exists,
  mkdirAs,
  multiuserTest,
  OTHER,
  scancel,
  VICTIM,
  type World,
  writeAs,
} from "./multiuser.ts";
import { unsquash } from "./fixtures/squash/registry.ts";
import {
  concat,
  fakeImage,
  gzip,
  registryResponse,
  serve,
  TAR_END,
  tarFile,
} from "./fixtures/squash/hostile.ts";

const MAKE_ARCHIVE = new URL("./fixtures/squash/make_archive.py", import.meta.url).pathname;
const BASHRC = "# the victim's .bashrc\nexport PS1='$ '\n";

const noMksquashfs = (await new Deno.Command("sh", {
  args: ["-c", "command -v mksquashfs && command -v unsquashfs"],
  stdout: "null",
  stderr: "null",
}).output()).code !== 0;

function squashTest(
  name: string,
  fn: (w: World) => Promise<void>,
  opts: { slurm?: boolean } = {},
): void {
  multiuserTest(name, async (w) => {
    if (noMksquashfs) {
      console.log(`SKIP ${name}: mksquashfs/unsquashfs are not installed (squashfs-tools)`);
      return;
    }
    await fn(w);
  }, opts);
}

/** A docker-archive tarball (root-made, readable by everyone) with one file `hello`. */
async function archive(w: World): Promise<string> {
  const dir = path.join(w.base, "img");
  Deno.mkdirSync(dir, { mode: 0o755 });
  const spec = path.join(dir, "spec.json");
  Deno.writeTextFileSync(
    spec,
    JSON.stringify({
      layers: [[{ name: "etc", type: "dir" }, { name: "hello", type: "file", data: "hi\n" }]],
    }),
  );
  const tar = path.join(dir, "img.tar");
  const mk = await new Deno.Command("/usr/bin/python3", { args: [MAKE_ARCHIVE, tar, spec] })
    .output();
  assert.equal(mk.code, 0, new TextDecoder().decode(mk.stderr));
  Deno.chmodSync(tar, 0o644);
  return `docker-archive://${tar}`;
}

/** The victim's ~/.bashrc with known content, and a check that it is exactly as it was. */
function victimBashrc(w: World): { file: string; unchanged: () => void } {
  const file = path.join(w.home(VICTIM), ".bashrc");
  writeAs(w, VICTIM, file, BASHRC);
  const before = Deno.statSync(file);
  return {
    file,
    unchanged: () => {
      assert.equal(Deno.readTextFileSync(file), BASHRC, "the victim's .bashrc changed");
      const now = Deno.statSync(file);
      assert.equal(now.ino, before.ino, "the victim's .bashrc was replaced");
      assert.equal(now.mtime?.getTime(), before.mtime?.getTime(), "the victim's .bashrc rewritten");
    },
  };
}

/** Names in the scratch dir (temp dirs of a failed squash would show up here). */
function scratchNames(w: World): string[] {
  return [...Deno.readDirSync(w.scratch)].map((e) => e.name).sort();
}

squashTest(
  "multiuser: a symlink the other user planted at the victim's squash output (or .partial) is never written through",
  async (w) => {
    // With fs.protected_symlinks = 1 the kernel also refuses to follow the other user's link in
    // the sticky dir; the exit codes and messages below still fail if nemotron's checks go.
    if (Deno.readTextFileSync("/proc/sys/fs/protected_symlinks").trim() !== "0") {
      console.log("note: fs.protected_symlinks is on: the kernel guards the .bashrc as well");
    }
    const image = await archive(w);
    const bashrc = victimBashrc(w);
    const out = path.join(w.scratch, "img.sqsh");
    const planted = await w.shAs(
      OTHER,
      `ln -s ${bashrc.file} ${out} && ln -s ${bashrc.file} ${out}.partial && ` +
        `ln -s ${bashrc.file} ${w.scratch}/b.sqsh.partial`,
    );
    assert.equal(planted.code, 0, planted.stderr);

    // Plain, and as a dry run: refused, exit 2, naming the file.
    for (const extra of [[], ["--dry-run"]]) {
      const r = await w.runAs(VICTIM, ["squash", image, "-o", out, ...extra]);
      assert.equal(r.code, 2, `${extra}: ${r.stdout}${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(`existing image ${out} is a symbolic link: not reusing it`),
      );
      assert.match(r.stderr, /hint: .*--force/);
      assert.doesNotMatch(r.stderr, /^\s+at /m, "a stack trace");
    }
    bashrc.unchanged();

    // --force: the victim may not replace the other user's link in the sticky dir, and nothing is
    // written through it; the private temp dir is cleaned up.
    const f = await w.runAs(VICTIM, ["squash", image, "-o", out, "--force"]);
    assert.equal(f.code, 1, f.stdout + f.stderr);
    assert.match(f.stderr, new RegExp(`cannot put the image in place at ${out}: `));
    assert.doesNotMatch(f.stderr, /^\s+at /m, "a stack trace");
    bashrc.unchanged();
    assert.equal(Deno.readLinkSync(out), bashrc.file, "the planted link is left as it was");

    // The old predictable temp name `<output>.partial` is never used: a link planted there for a
    // fresh output changes nothing, and the victim gets a real image of their own.
    const b = path.join(w.scratch, "b.sqsh");
    const ok = await w.runAs(VICTIM, ["squash", image, "-o", b]);
    assert.equal(ok.code, 0, ok.stderr);
    bashrc.unchanged();
    const st = Deno.lstatSync(b);
    assert.equal(st.isFile, true);
    assert.equal(st.uid, w.uid(VICTIM));
    const x = await unsquash(b);
    try {
      assert.equal(Deno.readTextFileSync(path.join(x, "hello")), "hi\n");
    } finally {
      Deno.removeSync(x, { recursive: true });
    }
    assert.equal(Deno.lstatSync(`${b}.partial`).isSymlink, true, "left alone");
    // No temp dirs left behind by the refused and the forced runs.
    assert.deepEqual(scratchNames(w), ["b.sqsh", "b.sqsh.partial", "img.sqsh", "img.sqsh.partial"]);
  },
);

squashTest(
  "multiuser: a .sqsh the other user owns at the victim's output is not reused, and --force does not write into it",
  async (w) => {
    const image = await archive(w);
    const out = path.join(w.scratch, "img.sqsh");
    // The other user's file, writable by everyone: a write through it would succeed.
    const planted = await w.shAs(OTHER, `printf 'not an image\\n' > ${out} && chmod 666 ${out}`);
    assert.equal(planted.code, 0, planted.stderr);
    const before = Deno.statSync(out);

    const r = await w.runAs(VICTIM, ["squash", image, "-o", out]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `existing image ${out} belongs to uid ${w.uid(OTHER)}, not to you \\(uid ${
          w.uid(VICTIM)
        }\\): not reusing it`,
      ),
    );
    assert.doesNotMatch(r.stdout + r.stderr, /Using existing squashed image/);

    // --force: the fresh image goes to a private temp dir and is renamed into place; the sticky
    // dir forbids replacing the other user's file, so the run fails naming it, and the file is
    // neither written into nor truncated.
    const f = await w.runAs(VICTIM, ["squash", image, "-o", out, "--force"]);
    assert.equal(f.code, 1, f.stdout + f.stderr);
    assert.match(f.stderr, new RegExp(`cannot put the image in place at ${out}: `));
    assert.match(f.stderr, /hint: it may belong to someone else/);
    const now = Deno.statSync(out);
    assert.equal(Deno.readTextFileSync(out), "not an image\n", "written into the other's file");
    assert.equal(now.ino, before.ino);
    assert.equal(now.uid, w.uid(OTHER));
    assert.equal(now.mtime?.getTime(), before.mtime?.getTime());
    assert.deepEqual(scratchNames(w), ["img.sqsh"], "a temp dir was left behind");

    // Control: the same squash to a name nobody planted works.
    const mine = path.join(w.scratch, "mine.sqsh");
    const ok = await w.runAs(VICTIM, ["squash", image, "-o", mine]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(Deno.lstatSync(mine).uid, w.uid(VICTIM));
    // …and the victim's own image there is reused as before.
    const again = await w.runAs(VICTIM, ["squash", image, "-o", mine]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /Using existing squashed image/);
  },
);

squashTest(
  "multiuser: after a victim's registry squash the other user can neither read nor plant files in the blob cache",
  async (w) => {
    const layer = await gzip(concat([tarFile("hello", "hi from the registry\n"), TAR_END]));
    const img = await fakeImage([{ bytes: layer, gzip: true }]);
    const hex = img.layerDigests[0].slice("sha256:".length);
    const registry = serve("127.0.0.1", (_req, url) => registryResponse(img, url));
    try {
      const out = path.join(w.home(VICTIM), "x.sqsh");
      const r = await w.runAs(VICTIM, ["squash", `${registry.host}/test/img:1`, "-o", out]);
      assert.equal(r.code, 0, r.stderr);
      const nh = path.join(w.home(VICTIM), ".nemotron");
      const cache = path.join(nh, "cache", "blobs", "sha256");
      const blob = path.join(cache, hex);
      assert.equal(Deno.lstatSync(blob).isFile, true, "the layer is in the victim's blob cache");
      assert.equal(Deno.statSync(blob).uid, w.uid(VICTIM));
      assert.equal(Deno.statSync(nh).mode! & 0o777, 0o700, "NEMOTRON_HOME is private");
      // Defence in depth: the cache dir itself is private too (with only one of the two, the
      // moves below are still refused; with neither, they succeed).
      assert.equal(Deno.statSync(cache).mode! & 0o777, 0o700, "the blob cache dir is private");

      const listing = () => [...Deno.readDirSync(cache)].map((e) => e.name).sort();
      const before = listing();
      // The attacker's moves, one at a time: each must be refused by the kernel.
      const moves: [string, string][] = [
        ["list the cache", `ls ${cache}`],
        ["read a cached layer", `cat ${blob} > /dev/null`],
        ["plant a .partial", `: > ${blob}.partial`],
        [
          "plant a link at a blob name",
          `ln -s ${w.home(VICTIM)}/.bashrc ${cache}/${"0".repeat(64)}`,
        ],
        ["plant a .lock", `: > ${blob}.lock`],
        ["replace the cache dir", `mv ${cache} ${cache}.x`],
      ];
      for (const [what, script] of moves) {
        const m = await w.shAs(OTHER, script);
        assert.notEqual(m.code, 0, `the other user could ${what}`);
        assert.match(m.stderr, /Permission denied/, `${what}: ${m.stderr}`);
      }
      assert.deepEqual(listing(), before, "something was planted in the cache");
      for (const name of before) {
        assert.equal(Deno.lstatSync(path.join(cache, name)).uid, w.uid(VICTIM), name);
      }
      // The victim's next squash of the same image uses the cache, untouched.
      const seen = registry.seen.length;
      const again = await w.runAs(VICTIM, [
        "squash",
        `${registry.host}/test/img:1`,
        "-o",
        path.join(w.home(VICTIM), "y.sqsh"),
      ]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(
        registry.seen.slice(seen).filter((s) => s.path.endsWith(img.layerDigests[0])).length,
        0,
        "the layer was fetched again",
      );
      assert.equal(exists(path.join(w.home(VICTIM), "y.sqsh")), true);
    } finally {
      await registry.close();
    }
  },
);

squashTest(
  "multiuser: a recipe submission never reuses the other user's .sqsh planted in a shared remote_job_dir",
  async (w) => {
    const image = await archive(w);
    // A team dir the admin made (root, 1777: it passes the remote_job_dir check), where the other
    // user planted the image name the victim's job will look for (hand-derived from img.tar).
    const shared = path.join(w.base, "team");
    mkdirAs(w, "root", shared, 0o1777);
    const planted = path.join(shared, "img_tar.sqsh");
    const p = await w.shAs(OTHER, `printf 'evil image\\n' > ${planted} && chmod 666 ${planted}`);
    assert.equal(p.code, 0, p.stderr);
    const proj = path.join(w.home(VICTIM), "proj");
    mkdirAs(w, VICTIM, proj);
    const profile = (rjd: string) =>
      `[cluster]\nexecutor = "slurm"\ncontainer_image = "${image}"\ntime = "00:10:00"\n` +
      `remote_job_dir = "${rjd}"\n`;
    writeAs(w, VICTIM, path.join(proj, "env.toml"), profile(shared));
    // A regression would submit a job: cancel it at once.
    const submit = async (...extra: string[]) => {
      const r = await w.runAs(VICTIM, [
        "demo",
        "data",
        "-c",
        "tiny",
        "--batch",
        "cluster",
        ...extra,
      ], {
        cwd: proj,
      });
      const id = /Slurm job (\d+)/.exec(r.stdout + r.stderr)?.[1];
      if (id) await scancel(id);
      return r;
    };

    const r = await submit();
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`existing image ${planted} belongs to uid ${w.uid(OTHER)}, not to you`),
    );
    const f = await submit("--force-squash");
    assert.equal(f.code, 1, f.stdout + f.stderr);
    assert.match(f.stderr, new RegExp(`cannot put the image in place at ${planted}: `));
    assert.equal(Deno.readTextFileSync(planted), "evil image\n");
    assert.equal(Deno.statSync(planted).uid, w.uid(OTHER));
    assert.deepEqual(
      [...Deno.readDirSync(shared)].map((e) => e.name),
      ["img_tar.sqsh"],
      "a job dir or temp dir was made",
    );
    assert.doesNotMatch(r.stdout + f.stdout, /slurm_job_id|Submitted/);

    // Control: with a remote_job_dir of the victim's own, the same recipe squashes the image
    // there (staged, not submitted).
    const own = path.join(w.scratch, "victim-rjd");
    mkdirAs(w, VICTIM, own);
    writeAs(w, VICTIM, path.join(proj, "env.toml"), profile(own));
    const s = await submit("--stage");
    assert.equal(s.code, 0, s.stderr);
    const sqsh = path.join(own, "img_tar.sqsh");
    assert.equal(Deno.lstatSync(sqsh).isFile, true);
    assert.equal(Deno.lstatSync(sqsh).uid, w.uid(VICTIM));
  },
  { slurm: true },
);
