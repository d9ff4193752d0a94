/**
 * `nemotron squash cache list|prune` against a blob cache the test fills by hand (files with set
 * sizes and mtimes), the lock rule (a blob whose lock another process holds — a download in
 * progress — is never removed), bad input, `squash cache` vs an image named `cache`, and what
 * `squash --dry-run` says about an existing output.
 */
import assert from "node:assert/strict";
import { nemotron } from "./fixtures/squash/registry.ts";
import { choosePrune, parseAge, parseSize } from "../lib/squash/blobs.ts";

const DAY = 86400e3;
const NOW = Date.now();

interface Blob {
  hex: string;
  bytes: number;
  daysAgo: number;
  partial?: boolean;
}

const hex = (c: string) => c.repeat(64);
// Hand-made cache: sizes and last uses chosen so each rule picks a different set.
const BLOBS: Blob[] = [
  { hex: hex("a"), bytes: 1000, daysAgo: 30 },
  { hex: hex("b"), bytes: 2000, daysAgo: 10 },
  { hex: hex("c"), bytes: 3000, daysAgo: 2 },
  { hex: hex("d"), bytes: 500, daysAgo: 0.01 },
  { hex: hex("e"), bytes: 700, daysAgo: 9, partial: true },
];

async function fillCache(): Promise<{ home: string; dir: string }> {
  const home = await Deno.makeTempDir({ prefix: "squash-cache-home-" });
  await Deno.chmod(home, 0o700);
  const dir = `${home}/cache/blobs/sha256`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  for (const b of BLOBS) {
    const path = `${dir}/${b.hex}${b.partial ? ".partial" : ""}`;
    await Deno.writeFile(path, new Uint8Array(b.bytes));
    const t = new Date(NOW - b.daysAgo * DAY);
    await Deno.utime(path, t, t);
  }
  // Not blobs: ignored by list and prune.
  await Deno.writeTextFile(`${dir}/${hex("a")}.lock`, "");
  await Deno.writeTextFile(`${dir}/README`, "not a blob");
  return { home, dir };
}

async function remaining(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const d of Deno.readDir(dir)) {
    if (/^[0-9a-f]{64}(\.partial)?$/.test(d.name)) out.push(d.name[0]);
  }
  return out.sort();
}

Deno.test("squash cache list: each blob's size and last use, least recently used first, total", async () => {
  const { home } = await fillCache();
  try {
    const env = { NEMOTRON_HOME: home, TZ: "UTC" };
    const r = await nemotron(["squash", "cache", "list", "--json"], env);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.total_bytes, 1000 + 2000 + 3000 + 500 + 700);
    assert.deepEqual(
      j.blobs.map((b: { digest: string; bytes: number; partial: boolean }) => [
        b.digest[7],
        b.bytes,
        b.partial,
      ]),
      [["a", 1000, false], ["b", 2000, false], ["e", 700, true], ["c", 3000, false], [
        "d",
        500,
        false,
      ]],
    );
    const lastA = new Date(j.blobs[0].last_used).getTime();
    assert.ok(Math.abs(lastA - (NOW - 30 * DAY)) < 2000, j.blobs[0].last_used);

    const t = await nemotron(["squash", "cache", "list"], {
      ...env,
      NEMOTRON_SQUASH_CACHE_MAX: "5K",
    });
    assert.equal(t.code, 0, t.stderr);
    const day = (d: number) => new Date(NOW - d * DAY).toISOString().slice(0, 10);
    assert.match(t.stdout, new RegExp(`sha256:aaaaaaaaaaaa +1000 B +${day(30)} \\d\\d:\\d\\d\\n`));
    assert.match(t.stdout, /sha256:eeeeeeeeeeee +700 B .*\(partial download\)/);
    assert.match(t.stdout, /Total: 5 blobs, 7\.0 KiB \(cap 5\.0 KiB, NEMOTRON_SQUASH_CACHE_MAX\)/);

    const empty = await Deno.makeTempDir();
    const e = await nemotron(["squash", "cache", "list"], { NEMOTRON_HOME: `${empty}/h` });
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /\(empty\)/);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("squash cache prune --older-than: dry run removes nothing, then exactly the old blobs", async () => {
  const { home, dir } = await fillCache();
  try {
    const env = { NEMOTRON_HOME: home };
    const d = await nemotron(["squash", "cache", "prune", "--older-than", "7d", "--dry-run"], env);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /would remove sha256:aaaaaaaaaaaa/);
    assert.match(d.stdout, /Dry run: would remove 3 blobs: 7\.0 KiB → 3\.4 KiB/);
    assert.deepEqual(await remaining(dir), ["a", "b", "c", "d", "e"]);

    const r = await nemotron(["squash", "cache", "prune", "--older-than", "7d"], env);
    assert.equal(r.code, 0, r.stderr);
    // a (30 d), b (10 d), the partial e (9 d) go; c (2 d) and d stay.
    assert.deepEqual(await remaining(dir), ["c", "d"]);
    assert.match(r.stdout, /removed 3 blobs/);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("squash cache prune --max-size: least recently used first until under the cap", async () => {
  const { home, dir } = await fillCache();
  try {
    // 7200 bytes; cap 4000: drop a (6200 left), b (4200), e (3500 ≤ 4000) — c and d stay.
    const r = await nemotron(["squash", "cache", "prune", "--max-size", "4000", "--json"], {
      NEMOTRON_HOME: home,
    });
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.before_bytes, 7200);
    assert.equal(j.after_bytes, 3500);
    assert.deepEqual(await remaining(dir), ["c", "d"]);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("squash cache prune: a blob being downloaded (its lock held) is never removed", async () => {
  const { home, dir } = await fillCache();
  // Hold b's lock the way fetchBlob does while it downloads b.
  const lock = await Deno.open(`${dir}/${hex("b")}.lock`, { write: true, create: true });
  try {
    await lock.lock(true);
    const r = await nemotron(["squash", "cache", "prune", "--older-than", "7d"], {
      NEMOTRON_HOME: home,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kept sha256:bbbbbbbbbbbb: a squash is downloading it right now/);
    assert.deepEqual(await remaining(dir), ["b", "c", "d"]);
    await lock.unlock();
    const again = await nemotron(["squash", "cache", "prune", "--older-than", "7d"], {
      NEMOTRON_HOME: home,
    });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await remaining(dir), ["c", "d"]);
  } finally {
    lock.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("squash cache prune: bad input is exit 2 and removes nothing", async () => {
  const { home, dir } = await fillCache();
  try {
    const env = { NEMOTRON_HOME: home };
    for (
      const [args, extra, msg] of [
        [["--older-than", "7x"], {}, /--older-than: '7x' is not an age/],
        [["--max-size", "lots"], {}, /--max-size: 'lots' is not a size/],
        [[], {}, /say what to remove/],
        [[], { NEMOTRON_SQUASH_CACHE_MAX: "big" }, /NEMOTRON_SQUASH_CACHE_MAX must be a size/],
      ] as const
    ) {
      const r = await nemotron(["squash", "cache", "prune", ...args], { ...env, ...extra });
      assert.equal(r.code, 2, `${args}: ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.doesNotMatch(r.stderr, / {4}at /, "no stack trace");
    }
    assert.deepEqual(await remaining(dir), ["a", "b", "c", "d", "e"]);
    // No option: the cap setting is the rule.
    const capped = await nemotron(["squash", "cache", "prune"], {
      ...env,
      NEMOTRON_SQUASH_CACHE_MAX: "4000",
    });
    assert.equal(capped.code, 0, capped.stderr);
    assert.deepEqual(await remaining(dir), ["c", "d"]);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("squash cache vs an image named cache; --help", async () => {
  const home = await Deno.makeTempDir();
  try {
    const h = await nemotron(["squash", "cache", "--help"], { NEMOTRON_HOME: home });
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /list/);
    assert.match(h.stdout, /prune/);
    // `cache:latest` is an image (here: the enroot command a dry run shows, no network needed).
    const img = await nemotron(
      ["squash", "--enroot", "-d", "cache:latest", "-o", `${home}/c.sqsh`],
      {
        NEMOTRON_HOME: home,
      },
    );
    assert.equal(img.code, 0, img.stderr);
    assert.match(img.stdout, /enroot import .*cache:latest/);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("squash --dry-run on an existing output: what it would do, with and without --force", async () => {
  const home = await Deno.makeTempDir();
  try {
    const out = `${home}/img.sqsh`;
    await Deno.writeFile(out, new Uint8Array(2048));
    const t = new Date("2026-11-30T14:02:00Z");
    await Deno.utime(out, t, t);
    const env = { NEMOTRON_HOME: home, TZ: "UTC" };
    const r = await nemotron(["squash", "-d", "127.0.0.1:1/x/y:1", "-o", out], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `Dry run: nothing is written.\noutput:   ${out}\n` +
        "          exists (2.0 KiB, 2026-11-30 14:02): would reuse it; with --force: would re-create it\n",
    );
    const f = await nemotron(
      ["squash", "--enroot", "-d", "--force", "ubuntu:24.04", "-o", out],
      env,
    );
    assert.equal(f.code, 0, f.stderr);
    assert.match(
      f.stdout,
      /^Dry run: nothing is written\.\noutput: +.*img\.sqsh\n +exists \(2\.0 KiB, 2026-11-30 14:02\): would re-import it with enroot \(--force\)\n.*enroot import/s,
    );
    assert.equal((await Deno.stat(out)).size, 2048, "nothing written");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("prune choice, sizes and ages (hand-checked)", () => {
  assert.equal(parseSize("50G"), 50 * 1024 ** 3);
  assert.equal(parseSize("1.5M"), 1.5 * 1024 ** 2);
  assert.equal(parseSize("2KiB"), 2048);
  assert.equal(parseSize("100"), 100);
  assert.equal(parseSize("-1G"), undefined);
  assert.equal(parseAge("7d"), 7 * DAY);
  assert.equal(parseAge("2w"), 14 * DAY);
  assert.equal(parseAge("7"), undefined);
  const now = new Date(NOW);
  const e = (n: string, bytes: number, daysAgo: number) => ({
    digest: n,
    path: n,
    bytes,
    lastUsed: new Date(NOW - daysAgo * DAY),
    partial: false,
  });
  const all = [e("new", 10, 1), e("old", 10, 20), e("mid", 10, 5)];
  assert.deepEqual(choosePrune(all, { olderThanMs: 4 * DAY, now }).map((x) => x.digest), [
    "old",
    "mid",
  ]);
  assert.deepEqual(choosePrune(all, { maxBytes: 15, now }).map((x) => x.digest), ["old", "mid"]);
  assert.deepEqual(choosePrune(all, { maxBytes: 30, now }), []);
  assert.deepEqual(
    choosePrune(all, { olderThanMs: 10 * DAY, maxBytes: 10, now }).map((x) => x.digest),
    ["old", "mid"],
  );
});
