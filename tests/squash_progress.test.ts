/**
 * Progress rendering with a hand-driven clock: the rate is over the moving window (not the average
 * since the start), the ETA follows from it, lines fit the width, a piped log gets at most one
 * status line per interval, each squash phase leaves one summary line, the packager is silent
 * below 2 s; and mksquashfs's own progress bar (real mksquashfs) is parsed.
 */
import assert from "node:assert/strict";
import {
  type Clock,
  formatBytes,
  formatDuration,
  type LineOutput,
  Meter,
  packProgress,
  PIPED_INTERVAL_MS,
  renderLine,
  StatusLine,
} from "../lib/cli/progress.ts";
import { stderrReporter } from "../lib/squash/progress.ts";
import { mksquashfsArgs, MksquashfsProgress, startMksquashfs } from "../lib/squash/mksquashfs.ts";
import type { TarEntry } from "../lib/packaging/tar.ts";

class FakeClock implements Clock {
  t = 1_000_000;
  now() {
    return this.t;
  }
  advance(ms: number) {
    this.t += ms;
  }
}

function fakeOutput(tty: boolean, width = 80): LineOutput & { text: string; clock: FakeClock } {
  const clock = new FakeClock();
  const o = {
    tty,
    width: () => width,
    text: "",
    write(s: string) {
      o.text += s;
    },
    clock,
  };
  return o;
}

const MiB = 1024 * 1024;

Deno.test("meter: the rate is over the last 5 s, not the average since the start", () => {
  const clock = new FakeClock();
  const m = new Meter("download", 200 * MiB, clock);
  // 10 s at 10 MiB/s, then 6 s at 1 MiB/s, updated every 250 ms.
  let done = 0;
  for (let i = 0; i < 40; i++) {
    clock.advance(250);
    m.update(done += 2.5 * MiB);
  }
  assert.equal(Math.round(m.rate()! / MiB), 10);
  for (let i = 0; i < 24; i++) {
    clock.advance(250);
    m.update(done += 0.25 * MiB);
  }
  // Average since start would be 106/16 = 6.6 MiB/s; the window sees only the slow part.
  assert.ok(Math.abs(m.rate()! / MiB - 1) < 0.01, `rate ${m.rate()! / MiB}`);
  // ETA: 200 - 106 = 94 MiB left at 1 MiB/s.
  assert.ok(Math.abs(m.eta()! - 94) < 1, `eta ${m.eta()}`);
  // A stall: no bytes for 6 s → the rate falls to 0 and there is no ETA.
  clock.advance(6000);
  assert.equal(m.rate(), 0);
  assert.equal(m.eta(), undefined);
});

Deno.test("meter: no rate in the first half second, none without progress samples", () => {
  const clock = new FakeClock();
  const m = new Meter("merge", 100, clock);
  clock.advance(300);
  m.update(50);
  assert.equal(m.rate(), undefined);
  assert.equal(m.eta(), undefined);
  clock.advance(700); // 1 s: 50 bytes → 50 B/s, 50 left → 1 s
  assert.equal(m.rate(), 50);
  assert.equal(m.eta(), 1);
});

Deno.test("renderLine: full line at 100 columns (checked by hand), fits every width", () => {
  const clock = new FakeClock();
  const m = new Meter("download", 100 * MiB, clock);
  for (let i = 0; i < 20; i++) {
    clock.advance(250);
    m.update((i + 1) * 2 * MiB); // 8 MiB/s
  }
  // 40 of 100 MiB, 8 MiB/s → 60/8 = 7.5 s → "8s".
  assert.equal(
    renderLine(m, 100),
    "download  [############------------------]   40%  40.0 MiB/100.0 MiB  8.0 MiB/s  ETA 8s",
  );
  assert.equal(
    renderLine(m, 60),
    "download   40%  40.0 MiB/100.0 MiB  8.0 MiB/s  ETA 8s",
  );
  for (let w = 12; w <= 200; w++) {
    const line = renderLine(m, w);
    assert.ok(line.length <= Math.max(10, w - 1), `width ${w}: ${line.length} '${line}'`);
    if (w >= 30) assert.match(line, /40%.*ETA 8s/, `width ${w}`);
  }
  const blocks = new Meter("mksquashfs", 1679, clock, undefined, "blocks");
  clock.advance(1000);
  blocks.update(900);
  assert.equal(renderLine(blocks, 60), "mksquashfs   53%  900/1679 blocks  900 blocks/s  ETA 1s");
});

Deno.test("formatBytes / formatDuration", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GiB");
  assert.equal(formatDuration(7.4), "7s");
  assert.equal(formatDuration(125), "2m05s");
  assert.equal(formatDuration(3720), "1h02m");
});

Deno.test("status line: on a terminal redrawn in place; permanent lines go above it", () => {
  const out = fakeOutput(true, 40);
  let n = 0;
  const s = new StatusLine(out, (w) => `tick ${++n}`.padEnd(w + 20, "x").slice(0, w - 1));
  s.tick();
  s.tick();
  s.print("phase done");
  s.stop();
  const x = "x".repeat(39 - "tick 1".length); // the render fills width - 1 = 39 columns
  assert.equal(
    out.text,
    `\r\x1b[Ktick 1${x}\r\x1b[Ktick 2${x}\r\x1b[Kphase done\n\r\x1b[Ktick 3${x}\r\x1b[K`,
  );
});

Deno.test("status line: piped, at most one line per interval", () => {
  const out = fakeOutput(false);
  const s = new StatusLine(out, () => "status");
  for (let i = 0; i < 60; i++) {
    out.clock.advance(1000);
    s.tick(); // the timer ticks every second
  }
  s.stop();
  assert.equal(out.text, "status\n".repeat(60_000 / PIPED_INTERVAL_MS));
});

/** A squash as the reporter sees it, the status line ticked each second as its timer would. */
function driveSquash(out: ReturnType<typeof fakeOutput>) {
  const r = stderrReporter(out, { timer: false });
  r.info("img: 2 layers, 30.0 MiB");
  r.layers([20 * MiB, 10 * MiB]);
  for (let i = 1; i <= 120; i++) {
    out.clock.advance(250); // 30 s of download at 1 MiB/s
    r.layerBytes(0, Math.min(20 * MiB, (i * MiB) / 4));
    r.layerBytes(1, Math.max(0, Math.min(10 * MiB, ((i - 80) * MiB) / 4)));
    if (i % 4 === 0) r.tick();
  }
  r.layerDone(0, "a");
  r.layerDone(1, "b");
  for (let i = 1; i <= 30; i++) {
    out.clock.advance(100);
    r.progress("merge", i * MiB, 30 * MiB);
  }
  for (let i = 1; i <= 40; i++) {
    out.clock.advance(100);
    r.progress("mksquashfs", i * 10, 400);
    if (i % 10 === 0) r.tick();
  }
  r.end("mksquashfs");
  r.close();
}

Deno.test("squash reporter, piped: a line per phase and a status line at most every 10 s", () => {
  const out = fakeOutput(false);
  driveSquash(out);
  const lines = out.text.trimEnd().split("\n");
  // Status lines at 10 s and 20 s (then the phase line at 30 s restarts the interval): 10 of
  // 30 MiB at 1 MiB/s → 33 %, 20 s left; 20 of 30 → 67 %, 10 s left.
  assert.match(lines[1], /^download +\[#+-+\] +33% +10\.0 MiB\/30\.0 MiB +1\.0 MiB\/s +ETA 20s$/);
  assert.match(lines[2], /^download .* 66% +20\.0 MiB\/30\.0 MiB +1\.0 MiB\/s +ETA 10s$/);
  assert.deepEqual([lines[0], ...lines.slice(3)], [
    "img: 2 layers, 30.0 MiB",
    "download: 30.0 MiB in 30.0 s (1.0 MiB/s)",
    // A phase's clock starts at its first report: one 100 ms step after the previous phase.
    "merge: 30.0 MiB in 2.9 s (10.3 MiB/s)",
    "mksquashfs: 400 blocks in 3.9 s",
  ]);
});

Deno.test("squash reporter, terminal: live line, one summary line per phase, cleared at the end", () => {
  const out = fakeOutput(true, 70);
  const r = stderrReporter(out, { timer: false });
  r.layers([10 * MiB]);
  for (let i = 1; i <= 20; i++) {
    out.clock.advance(250);
    r.layerBytes(0, (i * MiB) / 4); // 1 MiB/s
  }
  r.phase("merging layer 1/1");
  r.tick();
  // 5 of 10 MiB at 1 MiB/s: 50 %, 5 s left. The text without the bar is 51 columns, so the bar
  // gets 69 - 51 - 2 (separator) - 2 (brackets) = 14 cells, 7 filled; the label no longer fits.
  const drawn = "\r\x1b[Kdownload  [#######-------]   50%  5.0 MiB/10.0 MiB  1.0 MiB/s  ETA 5s";
  assert.equal(drawn.length - 4, 69);
  assert.equal(out.text, drawn);
  r.info("note");
  // The line is cleared, the note printed, the line drawn again below it.
  assert.equal(out.text.slice(drawn.length), `\r\x1b[Knote\n${drawn}`);
  r.layerDone(0, "a");
  r.close();
  // The phase's line stays; the status line (now only the label) is redrawn, then cleared.
  assert.equal(
    out.text.slice(2 * drawn.length + "\r\x1b[Knote\n".length),
    "\r\x1b[Kdownload: 10.0 MiB in 5.0 s (2.0 MiB/s)\n\r\x1b[Kmerging layer 1/1\r\x1b[K",
  );
});

Deno.test("packager progress: silent under 2 s, then a live line and a summary line", () => {
  const entries: TarEntry[] = Array.from({ length: 10 }, (_, i) => ({
    kind: "bytes",
    name: `f${i}`,
    data: new Uint8Array(1000),
    executable: false,
  }));
  const quick = fakeOutput(true);
  for (const _ of packProgress(quick).track(entries)) quick.clock.advance(100);
  assert.equal(quick.text, "", "1 s of packaging shows nothing");

  const slow = fakeOutput(true);
  const seen: string[] = [];
  for (const e of packProgress(slow).track(entries)) {
    slow.clock.advance(500);
    seen.push(e.name);
  }
  assert.equal(seen.length, 10);
  // The timer is real; no tick ran in this synchronous loop, so only the summary shows.
  assert.match(slow.text, /packaged code: 10 files, 9\.8 KiB in 5\.0 s \(2\.0 KiB\/s\)\n$/);
});

Deno.test("mksquashfs progress bar: parsed across chunk boundaries", () => {
  const got: [number, number][] = [];
  const p = new MksquashfsProgress((d, t) => got.push([d, t]));
  const text = "Parallel mksquashfs: Using 1 processor\nCreating 4.0 filesystem on x, block size " +
    "131072.\n\r[=====/          ]  900/1679  53%\r[========-      ] 1100/1679  65%" +
    "\r[=============|] 1679/1679 100%\n\nSquashfs 4.0 filesystem";
  for (let i = 0; i < text.length; i += 7) p.feed(text.slice(i, i + 7));
  assert.deepEqual(got.at(-1), [1679, 1679]);
  assert.ok(got.some(([d]) => d === 900) && got.some(([d]) => d === 1100), JSON.stringify(got));
});

Deno.test("mksquashfs progress: a real mksquashfs run reports its blocks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mksq-progress-" });
  try {
    const args = mksquashfsArgs(
      `${dir}/out.sqsh`,
      (k) => k === "PATH" ? Deno.env.get(k) : undefined,
    );
    assert.ok(!args.includes("-no-progress"), "the progress bar is on");
    const reports: [number, number][] = [];
    const run = startMksquashfs(
      args,
      (k) => (k === "PATH" ? Deno.env.get(k) : undefined),
      (d, t) => reports.push([d, t]),
    );
    // A tar of one 1 MiB file (8 blocks of 128 KiB), written by hand.
    const header = new Uint8Array(512);
    const put = (s: string, off: number) => header.set(new TextEncoder().encode(s), off);
    put("big", 0);
    put("0000644\0", 100);
    put("0000000\0", 108);
    put("0000000\0", 116);
    put((1 << 20).toString(8).padStart(11, "0") + "\0", 124);
    put("00000000000\0", 136);
    put("0", 156);
    put("ustar\0", 257);
    put("00", 263);
    put("        ", 148);
    const sum = header.reduce((a, b) => a + b, 0);
    put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    await run.stdin.write(header);
    const data = new Uint8Array(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251;
    await run.stdin.write(data);
    await run.stdin.write(new Uint8Array(1024));
    await run.stdin.close();
    await run.done;
    assert.deepEqual(reports.at(-1), [8, 8]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
