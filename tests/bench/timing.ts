/** Small timing helpers shared by the benchmarks (never used by tests). */

/** Median of a list of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Run a command `runs` times (after one warm-up) and return the wall times in ms. */
export async function timeCommand(
  cmd: string,
  args: readonly string[],
  runs: number,
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<number[]> {
  return (await timeInTurns([{ cmd, args }], runs, opts))[0];
}

/**
 * Run several commands in turns (a, b, a, b, …, after one warm-up each), `runs` times each, and
 * return each one's wall times in ms: a machine that slows down or speeds up during the run
 * weighs on all of them alike, so their ratio holds better than from back-to-back series.
 */
export async function timeInTurns(
  cmds: readonly { cmd: string; args: readonly string[] }[],
  runs: number,
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<number[][]> {
  const once = async ({ cmd, args }: { cmd: string; args: readonly string[] }) => {
    const t0 = performance.now();
    const out = await new Deno.Command(cmd, {
      args: [...args],
      cwd: opts.cwd,
      env: opts.env,
      stdout: "null",
      stderr: "piped",
    }).output();
    const t = performance.now() - t0;
    if (out.code !== 0) {
      throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return t;
  };
  for (const c of cmds) await once(c);
  const times: number[][] = cmds.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [j, c] of cmds.entries()) times[j].push(await once(c));
  }
  return times;
}

/** Peak RSS (KiB) of one run of a command, via /usr/bin/time -f %M when available. */
export async function peakRssKiB(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("/usr/bin/time", {
      args: ["-f", "%M", cmd, ...args],
      cwd: opts.cwd,
      env: opts.env,
      stdout: "null",
      stderr: "piped",
    }).output();
    const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
    const kib = Number(lines[lines.length - 1]);
    return Number.isFinite(kib) ? kib : undefined;
  } catch {
    return undefined;
  }
}

/** `12.3 ms` */
export function ms(x: number): string {
  return `${x.toFixed(1)} ms`;
}
