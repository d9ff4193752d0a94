/**
 * Running `mksquashfs - OUT.partial -tar -noappend -all-root -processors N ENROOT_SQUASH_OPTIONS`
 * (default options `-comp lzo -noD`, enroot's), fed with the merged tar on stdin. The root
 * directory gets 0755 (enroot's root is a fresh directory); with SOURCE_DATE_EPOCH every time
 * is fixed, as enroot does.
 *
 * mksquashfs runs with a clean environment (only PATH and LC_ALL=C): squashfs-tools ≥ 4.5 read
 * SOURCE_DATE_EPOCH themselves and refuse it together with `-mkfs-time`/`-all-time`, so the epoch
 * reaches mksquashfs only as those options.
 */
import { RuntimeFailure, UsageError } from "../errors.ts";

export const DEFAULT_SQUASH_OPTIONS = "-comp lzo -noD";

/** The argument list after `mksquashfs`. */
export function mksquashfsArgs(
  output: string,
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
): string[] {
  const processors = env("ENROOT_MAX_PROCESSORS") || String(navigator.hardwareConcurrency || 1);
  if (!/^[1-9]\d*$/.test(processors)) {
    throw new UsageError(`ENROOT_MAX_PROCESSORS must be a positive integer, got '${processors}'`);
  }
  const opts = (env("ENROOT_SQUASH_OPTIONS") ?? DEFAULT_SQUASH_OPTIONS).split(/\s+/).filter(
    Boolean,
  );
  const args = [
    "-",
    output,
    "-tar",
    "-noappend",
    "-all-root",
    "-root-mode",
    "0755",
  ];
  const epoch = env("SOURCE_DATE_EPOCH");
  if (epoch) {
    if (!/^\d+$/.test(epoch)) {
      throw new UsageError(`SOURCE_DATE_EPOCH must be an integer, got '${epoch}'`);
    }
    args.push("-mkfs-time", epoch, "-all-time", epoch);
  }
  args.push("-processors", processors, ...opts);
  return args;
}

/**
 * Reads mksquashfs's progress from its stdout: the `\r[===…/] DONE/TOTAL PCT%` bar it redraws (also when stdout is a pipe). With `-tar` from stdin
 * TOTAL is the blocks read so far, so it grows while the tar streams in and is final once the tar
 * ends. Reports blocks (a block is up to the block size of data, or one file's tail fragment: not
 * convertible to bytes).
 */
export class MksquashfsProgress {
  #tail = "";
  constructor(readonly onProgress: (doneBlocks: number, totalBlocks: number) => void) {}

  feed(text: string): void {
    const s = this.#tail + text;
    const re = /\] +(\d+)\/(\d+) +\d+%/g;
    let last: RegExpExecArray | undefined;
    let end = 0;
    for (let m = re.exec(s); m; m = re.exec(s)) {
      last = m;
      end = re.lastIndex;
    }
    if (last) {
      this.onProgress(Number(last[1]), Number(last[2]));
    }
    // Keep an unfinished bar for the next chunk.
    this.#tail = s.slice(Math.max(end, s.length - 200));
  }
}

/** A running mksquashfs: write the tar to `stdin`, then await `done`. */
export interface MksquashfsRun {
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly done: Promise<void>;
  kill(): void;
}

/** Fail with a clear message if mksquashfs is missing or too old for `-tar` (needs 4.5+). */
export async function checkMksquashfs(): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("mksquashfs", {
      args: ["-version"],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new RuntimeFailure("mksquashfs not found on PATH", {
        hint:
          "install the squashfs-tools package (apt-get install squashfs-tools / dnf install squashfs-tools)",
      });
    }
    throw e;
  }
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const m = /version (\d+)\.(\d+)/.exec(text);
  if (m && (Number(m[1]) < 4 || (Number(m[1]) === 4 && Number(m[2]) < 5))) {
    throw new RuntimeFailure(
      `mksquashfs ${m[1]}.${m[2]} cannot read tar input (-tar needs 4.5 or newer)`,
      {
        hint: "install squashfs-tools 4.5+, or use --enroot",
      },
    );
  }
  return m ? `${m[1]}.${m[2]}` : "unknown";
}

/** The whole environment mksquashfs gets. */
export function mksquashfsEnv(
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
): Record<string, string> {
  return { PATH: env("PATH") ?? "/usr/local/bin:/usr/bin:/bin", LC_ALL: "C" };
}

/**
 * Start mksquashfs with `args`; its output is kept and shown only if it fails. `done` rejects with
 * a RuntimeFailure (never unhandled: mksquashfs may fail before anyone awaits it).
 */
export function startMksquashfs(
  args: readonly string[],
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
  onProgress?: (doneBlocks: number, totalBlocks: number) => void,
): MksquashfsRun {
  const child = new Deno.Command("mksquashfs", {
    args: [...args],
    clearEnv: true,
    env: mksquashfsEnv(env),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const parser = onProgress ? new MksquashfsProgress(onProgress) : undefined;
  const collect = async (s: ReadableStream<Uint8Array>, p?: MksquashfsProgress) => {
    let text = "";
    const dec = new TextDecoder();
    for await (const c of s) {
      const chunk = dec.decode(c, { stream: true });
      p?.feed(chunk);
      text += chunk;
      if (text.length > 64 * 1024) text = text.slice(-32 * 1024);
    }
    return text;
  };
  const out = collect(child.stdout, parser);
  const err = collect(child.stderr);
  const done = (async () => {
    const status = await child.status;
    const [o, e] = await Promise.all([out, err]);
    if (!status.success) {
      const options = env("ENROOT_SQUASH_OPTIONS");
      throw new RuntimeFailure(
        `mksquashfs failed (exit ${status.code}${status.signal ? `, ${status.signal}` : ""}):\n${
          (e + o.replace(/\r?\[[^\]\n]*\] +\d+\/\d+ +\d+%\n?/g, "")).trim().slice(-4000)
        }`,
        {
          hint: options !== undefined
            ? `check ENROOT_SQUASH_OPTIONS (now '${options}'; unset it for enroot's default '${DEFAULT_SQUASH_OPTIONS}')`
            : "see mksquashfs's message above (disk space and write access to the output directory)",
        },
      );
    }
  })();
  done.catch(() => {}); // observed by whoever awaits `done`; never an unhandled rejection
  return {
    stdin: child.stdin.getWriter(),
    done,
    kill: () => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    },
  };
}
