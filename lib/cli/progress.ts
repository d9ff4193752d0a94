/**
 * The one progress mechanism of the CLI: a {@link Meter} (bytes done/total, the current rate over a
 * moving window — never the average since the start — and the ETA from it), a line renderer that
 * fits a width, and a {@link StatusLine} on stderr: on a terminal one line redrawn in place; piped,
 * a plain line at most every {@link PIPED_INTERVAL_MS}. Used by `squash` (lib/squash/progress.ts)
 * and the code packager. Time comes from a {@link Clock} so tests drive it by hand.
 */
import type { TarEntry } from "../packaging/tar.ts";
import { formatDuration as formatDurationMs } from "./time.ts";

/** Milliseconds, monotonic. */
export interface Clock {
  now(): number;
}

export const REAL_CLOCK: Clock = { now: () => performance.now() };

/** Rate window: the rate shown is over the last this many milliseconds. */
export const RATE_WINDOW_MS = 5000;
/** Piped output: at most one progress line per this many milliseconds. */
export const PIPED_INTERVAL_MS = 10_000;
/** Terminal: redraw period. */
export const TTY_INTERVAL_MS = 200;

export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

/** `7s`, `2m05s`, `1h02m` (the project's one duration format, lib/cli/time.ts). */
export function formatDuration(seconds: number): string {
  return formatDurationMs(seconds * 1000);
}

/** `SIZE in T (RATE)`: the tail of a summary line. */
export function formatSummary(bytes: number, seconds: number): string {
  const t = seconds < 60 ? `${seconds.toFixed(1)} s` : formatDuration(seconds);
  const rate = seconds >= 0.05 ? ` (${formatBytes(bytes / seconds)}/s)` : "";
  return `${formatBytes(bytes)} in ${t}${rate}`;
}

/**
 * Progress of one phase. The rate is the bytes added over the last `windowMs` (from samples kept at
 * most every 100 ms), divided by the time since the oldest sample in the window; the ETA is what is
 * left at that rate.
 */
export class Meter {
  done = 0;
  readonly started: number;
  #samples: { t: number; done: number }[];

  constructor(
    readonly label: string,
    public total: number | undefined,
    readonly clock: Clock = REAL_CLOCK,
    readonly windowMs = RATE_WINDOW_MS,
    /** What is counted: bytes, or a count of things named by this word (`blocks`). */
    readonly unit: "bytes" | string = "bytes",
  ) {
    this.started = clock.now();
    this.#samples = [{ t: this.started, done: 0 }];
  }

  update(done: number): void {
    this.done = done;
    const t = this.clock.now();
    const last = this.#samples[this.#samples.length - 1];
    if (t - last.t >= 100) this.#samples.push({ t, done });
    this.#trim(t);
  }

  #trim(now: number): void {
    // Keep the newest sample at or before the window start as the baseline.
    while (this.#samples.length > 1 && this.#samples[1].t <= now - this.windowMs) {
      this.#samples.shift();
    }
  }

  /** Bytes per second over the window; undefined in the first half second. */
  rate(): number | undefined {
    const now = this.clock.now();
    this.#trim(now);
    let base = this.#samples[0];
    // A baseline older than the window (sparse samples) would stretch it: use the oldest inside.
    if (base.t < now - this.windowMs && this.#samples.length > 1) base = this.#samples[1];
    const span = (now - base.t) / 1000;
    if (span < 0.5) return undefined;
    return Math.max(0, this.done - base.done) / span;
  }

  /** Seconds left at the current rate; undefined without a total or a rate. */
  eta(): number | undefined {
    if (this.total === undefined) return undefined;
    const r = this.rate();
    if (r === undefined || r <= 0) return undefined;
    return Math.max(0, this.total - this.done) / r;
  }

  elapsed(): number {
    return (this.clock.now() - this.started) / 1000;
  }
}

/**
 * One progress line for `m`, at most `width - 1` columns (the last column is left free so a
 * terminal never wraps): `LABEL [bar] PCT DONE/TOTAL RATE ETA`, dropping the bar, then the byte
 * counts, then the rate when narrow; the label is cut last.
 */
export function renderLine(m: Meter, width: number): string {
  const unit = m.unit;
  const fmt = unit === "bytes" ? formatBytes : (n: number) => String(Math.round(n));
  const max = Math.max(10, width - 1);
  const rate = m.rate();
  const eta = m.eta();
  const pct = m.total ? Math.min(100, Math.floor((100 * m.done) / m.total)) : undefined;
  const pctText = pct === undefined ? undefined : `${String(pct).padStart(3)}%`;
  const amount = (m.total === undefined ? fmt(m.done) : `${fmt(m.done)}/${fmt(m.total)}`) +
    (unit === "bytes" ? "" : ` ${unit}`);
  const rateText = rate === undefined
    ? undefined
    : unit === "bytes"
    ? `${formatBytes(rate)}/s`
    : `${Math.round(rate)} ${unit}/s`;
  const etaText = eta === undefined
    ? (m.total === undefined ? undefined : "ETA -")
    : `ETA ${formatDuration(Math.round(eta))}`;
  const join = (parts: (string | undefined)[]) => parts.filter(Boolean).join("  ");
  const tries: (string | undefined)[][] = [
    [m.label, "BAR", pctText, amount, rateText, etaText],
    [m.label, pctText, amount, rateText, etaText],
    [m.label, pctText, rateText, etaText],
    [m.label, pctText, etaText],
  ];
  for (const parts of tries) {
    const hasBar = parts.includes("BAR");
    const text = join(parts.filter((p) => p !== "BAR"));
    if (!hasBar) {
      if (text.length <= max) return text;
      continue;
    }
    if (pct === undefined) continue;
    const room = max - text.length - 2; // two more separators' worth
    const barWidth = Math.min(30, room - 2);
    if (barWidth < 10) continue;
    const filled = Math.round((barWidth * pct) / 100);
    const bar = `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]`;
    return join([m.label, bar, pctText, amount, rateText, etaText]);
  }
  const last = join([m.label, pctText, etaText]);
  // Too narrow for everything: cut the label, keep the numbers.
  const tail = join([pctText, etaText]);
  if (tail.length + 3 > max) return last.slice(0, max);
  return `${m.label.slice(0, max - tail.length - 2)}  ${tail}`;
}

/** Where a status line goes: stderr in the CLI, a buffer in tests. */
export interface LineOutput {
  readonly tty: boolean;
  /** Terminal width (tty only). */
  width(): number;
  write(text: string): void;
  readonly clock: Clock;
}

const enc = new TextEncoder();

function terminalWidth(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 80;
  }
}

export function stderrOutput(tty = Deno.stderr.isTerminal()): LineOutput {
  return {
    tty,
    width: terminalWidth,
    write: (s) => {
      Deno.stderr.writeSync(enc.encode(s));
    },
    clock: REAL_CLOCK,
  };
}

/**
 * A status line for a long operation. On a terminal `tick()` redraws it in place (`\r`, clear to
 * end of line) and `print()` puts a permanent line above it; piped, `tick()` prints the status as
 * a plain line only when {@link PIPED_INTERVAL_MS} passed since the last one, so a log never
 * floods. `start()` ticks on a timer that never keeps the process alive.
 */
export class StatusLine {
  #shown = false;
  #lastPiped: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly out: LineOutput,
    readonly render: (width: number) => string | undefined,
    readonly pipedIntervalMs = PIPED_INTERVAL_MS,
  ) {
    this.#lastPiped = out.clock.now();
  }

  start(): void {
    if (this.#timer !== undefined) return;
    const timer = setInterval(() => this.tick(), this.out.tty ? TTY_INTERVAL_MS : 1000);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.clear();
  }

  clear(): void {
    if (this.#shown) this.out.write("\r\x1b[K");
    this.#shown = false;
  }

  tick(): void {
    if (this.out.tty) {
      const text = this.render(this.out.width());
      if (text === undefined) return this.clear();
      this.out.write(`\r\x1b[K${text}`);
      this.#shown = true;
      return;
    }
    const now = this.out.clock.now();
    if (now - this.#lastPiped < this.pipedIntervalMs) return;
    const text = this.render(100);
    if (text === undefined) return;
    this.#lastPiped = now;
    this.out.write(`${text}\n`);
  }

  /** A permanent line (above the status line on a terminal). Restarts the piped interval. */
  print(text: string): void {
    const redraw = this.#shown;
    this.clear();
    this.out.write(`${text}\n`);
    this.#lastPiped = this.out.clock.now();
    if (redraw) this.tick();
  }
}

/** Progress of the code packager: files and bytes written to the archive. */
export interface PackProgress {
  /** Count what passes through (an entry is done when the next one is asked for). */
  track(entries: readonly TarEntry[]): Iterable<TarEntry>;
}

/** Packaging this long shows progress (below it: silent). */
export const PACK_QUIET_MS = 2000;

/**
 * The packager's progress on stderr: nothing for the first {@link PACK_QUIET_MS}; then on a
 * terminal a live `packaging code  [####--]  41%  1200/2900 files  12.0/30.1 MiB …` line and, at
 * the end, `packaged code: N files, SIZE in T`; piped, a line every {@link PIPED_INTERVAL_MS}.
 */
export function packProgress(out: LineOutput = stderrOutput()): PackProgress {
  return {
    *track(entries) {
      const sizeOf = (e: TarEntry) =>
        e.kind === "bytes" ? e.data.length : e.kind === "symlink" ? 0 : e.size;
      const total = entries.reduce((a, e) => a + sizeOf(e), 0);
      const meter = new Meter("packaging code", total, out.clock);
      let files = 0;
      let visible = false;
      const line = new StatusLine(out, (w) => {
        if (!visible) {
          if (out.clock.now() - meter.started < PACK_QUIET_MS) return undefined;
          visible = true;
        }
        const text = renderLine(meter, w);
        const more = `  ${files}/${entries.length} files`;
        return text.length + more.length <= w - 1 ? text + more : text;
      });
      line.start();
      try {
        for (const e of entries) {
          yield e;
          files++;
          meter.update(meter.done + sizeOf(e));
        }
      } finally {
        line.stop();
        if (visible || meter.elapsed() * 1000 >= PACK_QUIET_MS) {
          line.print(
            `packaged code: ${files} files, ${formatSummary(meter.done, meter.elapsed())}`,
          );
        }
      }
    },
  };
}
