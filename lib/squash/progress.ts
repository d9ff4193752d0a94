/**
 * Progress of one squash on stderr, per phase — `download` (layer bytes from the registry),
 * `merge` (stored layer bytes read by the merge) and `mksquashfs` (its own count of blocks written,
 * parsed from its progress bar) — each with done/total, the rate over a moving window, percentage
 * and ETA (the meter and the line live in lib/cli/progress.ts). On a terminal one line is redrawn
 * in place; piped, a status line at most every 10 s. Either way each finished phase leaves one
 * line (`download: 27.1 MiB in 3.2 s (8.4 MiB/s)`). Warnings always get their own line.
 */
import { type LineOutput, Meter, renderLine, StatusLine, stderrOutput } from "../cli/progress.ts";
import { formatDuration, formatSummary } from "../cli/progress.ts";

export { formatBytes } from "../cli/progress.ts";

export type Phase = "download" | "merge" | "mksquashfs";
const PHASES: readonly Phase[] = ["download", "merge", "mksquashfs"];

export interface Reporter {
  info(message: string): void;
  warn(message: string): void;
  /** Declare the layers (compressed sizes) about to be fetched: starts the `download` phase. */
  layers(sizes: readonly number[]): void;
  /** Bytes of layer `i` on disk so far. */
  layerBytes(i: number, bytes: number): void;
  layerDone(i: number, label: string): void;
  /** What is happening now (shown after the progress on a terminal; never printed piped). */
  phase(name: string): void;
  /**
   * `done` of `phase` (bytes; blocks for mksquashfs) of `total` when known. The phase starts with
   * its first call and ends (leaving its summary line) with `end`, or for download and merge when
   * `done` reaches `total`.
   */
  progress(phase: Phase, done: number, total?: number): void;
  end(phase: Phase): void;
  /** Stop redrawing (call once at the end, also on failure). */
  close(): void;
}

/** A reporter that prints nothing (library callers, tests). */
export const SILENT: Reporter = {
  info() {},
  warn() {},
  layers() {},
  layerBytes() {},
  layerDone() {},
  phase() {},
  progress() {},
  end() {},
  close() {},
};

/** A reporter with its status line: `tick()` is what its timer calls (tests call it by hand). */
export interface LiveReporter extends Reporter {
  tick(): void;
}

/**
 * The reporter for the CLI: live line on a TTY, plain lines otherwise. `timer: false` leaves the
 * ticking to the caller (tests with a fake clock).
 */
export function stderrReporter(
  out: LineOutput = stderrOutput(),
  { timer = true }: { timer?: boolean } = {},
): LiveReporter {
  let sizes: number[] = [];
  let got: number[] = [];
  let label = "";
  const meters = new Map<Phase, Meter>();
  const ended = new Set<Phase>();
  const maxWarnings = 20;
  let warnings = 0;
  const active = (): Meter | undefined => {
    for (const p of PHASES) {
      const m = meters.get(p);
      if (m && !ended.has(p)) return m;
    }
    return undefined;
  };
  const status = new StatusLine(out, (width) => {
    const m = active();
    if (!m) return label ? label.slice(0, width - 1) : undefined;
    const text = renderLine(m, width);
    const more = label ? `  | ${label}` : "";
    return text.length + more.length <= width - 1 ? text + more : text;
  });
  const end = (p: Phase) => {
    const m = meters.get(p);
    if (!m || ended.has(p)) return;
    ended.add(p);
    const secs = m.elapsed();
    status.print(
      m.unit === "bytes"
        ? `${p}: ${formatSummary(m.done, secs)}`
        : `${p}: ${m.done} ${m.unit} in ${
          secs < 60 ? `${secs.toFixed(1)} s` : formatDuration(secs)
        }`,
    );
  };
  const update = (p: Phase, done: number, total?: number) => {
    let m = meters.get(p);
    if (!m) {
      m = new Meter(p, total, out.clock, undefined, p === "mksquashfs" ? "blocks" : "bytes");
      meters.set(p, m);
      if (timer) status.start();
    }
    if (total !== undefined) m.total = total;
    m.update(m.total === undefined ? done : Math.min(done, m.total));
    // mksquashfs's total grows while the tar streams in (it may catch up on the way): it ends
    // only with end(); the others end when they reach their total.
    if (p !== "mksquashfs" && m.total !== undefined && m.done >= m.total) end(p);
  };
  return {
    info: (m) => status.print(m),
    warn: (m) => {
      warnings++;
      if (warnings <= maxWarnings) status.print(`warning: ${m}`);
      else if (warnings === maxWarnings + 1) status.print("warning: (more warnings not shown)");
    },
    layers: (s) => {
      label = ""; // the resolve is over
      sizes = [...s];
      got = s.map(() => 0);
      update("download", 0, sizes.reduce((a, b) => a + b, 0));
    },
    layerBytes: (i, b) => {
      got[i] = b;
      update("download", got.reduce((a, x) => a + x, 0));
    },
    layerDone: (i) => {
      got[i] = sizes[i];
      update("download", got.reduce((a, x) => a + x, 0));
    },
    phase: (p) => {
      label = p;
      if (timer && p) status.start(); // a slow resolve shows what it waits for
    },
    progress: (p, done, total) => update(p, done, total),
    end: (p) => end(p),
    close: () => {
      status.stop();
    },
    tick: () => status.tick(),
  };
}
