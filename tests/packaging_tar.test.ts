/**
 * The deterministic tar.gz writer, checked against Python's tarfile and GNU tar as oracles.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { compareNames, TAR_MTIME, type TarEntry, writeTarGz } from "../lib/packaging/tar.ts";

const enc = new TextEncoder();

function bytes(name: string, text: string, executable = false): TarEntry {
  return { kind: "bytes", name, data: enc.encode(text), executable };
}

/** Python's view of an archive: name, type, mode, size, mtime, uid, gid, uname, gname, link, data. */
async function pyList(archive: string): Promise<Record<string, unknown>[]> {
  const code = `
import json, sys, tarfile
out = []
with tarfile.open(sys.argv[1], "r:gz") as t:
    for m in t.getmembers():
        data = t.extractfile(m).read().decode("utf-8", "replace") if m.isfile() else None
        out.append(dict(name=m.name, type=m.type.decode(), mode=m.mode, size=m.size, mtime=m.mtime,
                        uid=m.uid, gid=m.gid, uname=m.uname, gname=m.gname, link=m.linkname, data=data))
print(json.dumps(out))
`;
  const out = await new Deno.Command("/usr/bin/python3", { args: ["-c", code, archive] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

function sha256File(path: string): string {
  return createHash("sha256").update(Deno.readFileSync(path)).digest("hex");
}

Deno.test("tar: headers are normalised and read back by Python's tarfile", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const src = join(dir, "on-disk.sh");
    Deno.writeTextFileSync(src, "#!/bin/sh\necho hi\n");
    const long = "a/".repeat(60) + "deep.py"; // 127 bytes: ustar prefix split
    const veryLong = "d".repeat(120) + "/" + "n".repeat(130) + ".txt"; // needs PAX
    const entries: TarEntry[] = [
      bytes("config.yaml", "a: 1\n"),
      { kind: "file", name: "bin/run.sh", path: src, size: 18, executable: true },
      bytes(long, "x = 1\n"),
      bytes(veryLong, "long\n"),
      bytes("ünï/cödé.py", "print('é')\n"),
      { kind: "symlink", name: "link", target: "config.yaml" },
      { kind: "symlink", name: "longlink", target: "t/".repeat(70) + "x" },
    ];
    const res = await writeTarGz(join(dir, "p.tar.gz"), entries);
    assert.equal(res.entries, 7);
    assert.equal(res.sha256, sha256File(join(dir, "p.tar.gz")));
    const got = await pyList(join(dir, "p.tar.gz"));
    assert.deepEqual(got.map((m) => m.name), entries.map((e) => e.name));
    for (const m of got) {
      assert.equal(m.mtime, TAR_MTIME);
      assert.equal(m.uid, 0);
      assert.equal(m.gid, 0);
      assert.equal(m.uname, "root");
      assert.equal(m.gname, "root");
    }
    const by = new Map(got.map((m) => [m.name as string, m]));
    assert.equal(by.get("config.yaml")!.mode, 0o644);
    assert.equal(by.get("config.yaml")!.data, "a: 1\n");
    assert.equal(by.get("bin/run.sh")!.mode, 0o755);
    assert.equal(by.get("bin/run.sh")!.data, "#!/bin/sh\necho hi\n");
    assert.equal(by.get(long)!.data, "x = 1\n");
    assert.equal(by.get(veryLong)!.data, "long\n");
    assert.equal(by.get("ünï/cödé.py")!.data, "print('é')\n");
    assert.equal(by.get("link")!.type, "2");
    assert.equal(by.get("link")!.link, "config.yaml");
    assert.equal(by.get("longlink")!.link, "t/".repeat(70) + "x");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar: GNU tar extracts the archive with the same contents and no warnings", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const veryLong = "p".repeat(150) + "/" + "q".repeat(150);
    await writeTarGz(join(dir, "p.tar.gz"), [
      bytes("a.txt", "A"),
      bytes(veryLong, "deep"),
      bytes("x/run", "#!/bin/sh\n", true),
    ]);
    Deno.mkdirSync(join(dir, "out"));
    const out = await new Deno.Command("tar", {
      args: ["-xzf", join(dir, "p.tar.gz"), "-C", join(dir, "out")],
    }).output();
    assert.equal(out.code, 0);
    assert.equal(new TextDecoder().decode(out.stderr), "");
    assert.equal(Deno.readTextFileSync(join(dir, "out", "a.txt")), "A");
    assert.equal(Deno.readTextFileSync(join(dir, "out", veryLong)), "deep");
    assert.equal(Deno.statSync(join(dir, "out", "x/run")).mode! & 0o777, 0o755);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar: the same entries give the same sha256; any change gives another", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.writeTextFileSync(join(dir, "f"), "on disk\n");
    const make = (): TarEntry[] => [
      bytes("a", "1"),
      bytes("b/c", "2", true),
      { kind: "file", name: "d", path: join(dir, "f"), size: 8, executable: false },
      { kind: "symlink", name: "l", target: "a" },
    ];
    const r1 = await writeTarGz(join(dir, "1.tar.gz"), make());
    // The file's own mtime does not reach the archive.
    Deno.utimeSync(join(dir, "f"), 1234567, 1234567);
    const r2 = await writeTarGz(join(dir, "2.tar.gz"), make());
    assert.equal(r1.sha256, r2.sha256);
    assert.deepEqual(
      Deno.readFileSync(join(dir, "1.tar.gz")),
      Deno.readFileSync(join(dir, "2.tar.gz")),
    );
    const r3 = await writeTarGz(join(dir, "3.tar.gz"), [bytes("a", "1"), bytes("b/c", "2", false)]);
    assert.notEqual(r1.sha256, r3.sha256);
    // gzip header: magic, deflate, no flags, mtime 0.
    assert.deepEqual([...Deno.readFileSync(join(dir, "1.tar.gz")).subarray(0, 8)], [
      0x1f,
      0x8b,
      8,
      0,
      0,
      0,
      0,
      0,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar: a failed write leaves neither archive nor temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      writeTarGz(join(dir, "p.tar.gz"), [bytes("ok", "1"), bytes("../escape", "2")]),
      /invalid archive entry name/,
    );
    await assert.rejects(
      writeTarGz(join(dir, "p.tar.gz"), [{
        kind: "file",
        name: "f",
        path: join(dir, "missing"),
        size: 1,
        executable: false,
      }]),
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar: a file that shrinks while packaged is an error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.writeTextFileSync(join(dir, "f"), "abc");
    await assert.rejects(
      writeTarGz(join(dir, "p.tar.gz"), [{
        kind: "file",
        name: "f",
        path: join(dir, "f"),
        size: 10,
        executable: false,
      }]),
      /size changed/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar: compareNames orders by code point (UTF-8 byte order)", () => {
  const names = ["b", "a/b", "a", "\u{1F600}", "\uFFFD", "a.b", "A"];
  const sorted = [...names].sort(compareNames);
  // Expected order checked by hand from the UTF-8 bytes: 'A' 41, 'a' 61, 'a.b' 61 2e, 'a/b' 61 2f,
  // 'b' 62, U+FFFD ef bf bd, U+1F600 f0 9f 98 80.
  assert.deepEqual(sorted, ["A", "a", "a.b", "a/b", "b", "\uFFFD", "\u{1F600}"]);
});
