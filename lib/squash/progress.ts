/**
 * Progress of one squash on stderr: a single redrawn status line on a terminal (bytes per layer,
 * overall rate, current phase), plain log lines otherwise. Warnings always get their own line.
 */

export interface Reporter {
  info(message: string): void;
  warn(message: string): void;
  /** Declare the layers (compressed sizes) about to be fetched. */
  layers(sizes: readonly number[]): void;
  /** Bytes of layer `i` on disk so far. */
  layerBytes(i: number, bytes: number): void;
  layerDone(i: number, label: string): void;
  phase(name: string): void;
  /** Stop redrawing (call once at the end, also on failure). */
  close(): void;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

const enc = new TextEncoder();
const write = (s: string) => Deno.stderr.writeSync(enc.encode(s));

/** A reporter that prints nothing (library callers, tests). */
export const SILENT: Reporter = {
  info() {},
  warn() {},
  layers() {},
  layerBytes() {},
  layerDone() {},
  phase() {},
  close() {},
};

/** The reporter for the CLI: live line on a TTY, plain lines otherwise. */
export function stderrReporter(tty = Deno.stderr.isTerminal()): Reporter {
  let sizes: number[] = [];
  let got: number[] = [];
  let done = 0;
  let phase = "";
  const start = performance.now();
  let timer: ReturnType<typeof setInterval> | undefined;
  let lineShown = false;
  const maxWarnings = 20;
  let warnings = 0;
  const status = () => {
    const total = sizes.reduce((a, b) => a + b, 0);
    const have = got.reduce((a, b) => a + b, 0);
    const secs = Math.max(0.001, (performance.now() - start) / 1000);
    const perLayer = got.map((g, i) => `${Math.floor((100 * g) / Math.max(1, sizes[i]))}%`).join(
      " ",
    );
    return `layers ${done}/${sizes.length} [${perLayer}] ${formatBytes(have)}/${
      formatBytes(total)
    } ` +
      `${formatBytes(have / secs)}/s${phase ? ` | ${phase}` : ""}`;
  };
  const clear = () => {
    if (lineShown) write("\r\x1b[K");
    lineShown = false;
  };
  const draw = () => {
    write(`\r\x1b[K${status().slice(0, 200)}`);
    lineShown = true;
  };
  const line = (s: string) => {
    clear();
    write(`${s}\n`);
    if (tty && timer !== undefined) draw();
  };
  return {
    info: (m) => line(m),
    warn: (m) => {
      warnings++;
      if (warnings <= maxWarnings) line(`warning: ${m}`);
      else if (warnings === maxWarnings + 1) line("warning: (more warnings not shown)");
    },
    layers: (s) => {
      sizes = [...s];
      got = s.map(() => 0);
      if (tty && timer === undefined) timer = setInterval(draw, 200);
    },
    layerBytes: (i, b) => {
      got[i] = b;
    },
    layerDone: (i, label) => {
      done++;
      got[i] = sizes[i];
      if (!tty) line(`fetched layer ${i + 1}/${sizes.length} ${label} (${formatBytes(sizes[i])})`);
    },
    phase: (p) => {
      phase = p;
      if (!tty) line(p);
    },
    close: () => {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      clear();
    },
  };
}
