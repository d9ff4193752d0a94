/**
 * Local execution of a recipe script: startup commands, the launch command chosen by the runspec,
 * a log of the run in the job dir, Ctrl-C forwarded to the child, and the child's exit code.
 */
import { RuntimeFailure, UsageError } from "../errors.ts";
import type { Runspec } from "../runspec.ts";
import { shellQuote } from "../shell.ts";
import { recordLocalRun } from "./local_jobs.ts";

type Profile = Readonly<Record<string, unknown>>;

/** The exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const INTERRUPTED_EXIT_CODE = 130;

/** The Python interpreter for local runs: $NEMOTRON_PYTHON, else `python3` from PATH. */
export function localPython(): string {
  return Deno.env.get("NEMOTRON_PYTHON") || "python3";
}

/**
 * The startup commands of a profile, validated: a list of strings (original messages).
 * `where` names the env.toml file for the error location.
 */
export function startupCommands(profile: Profile | undefined, where?: string): string[] {
  const v = profile?.startup_commands;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    throw new UsageError(`startup_commands must be a list, got ${typeof v}`, {
      location: where ? { file: where } : undefined,
      hint: 'write startup_commands = ["module load cuda", "source env.sh"]',
    });
  }
  for (const item of v) {
    if (typeof item !== "string") {
      throw new UsageError(`startup_commands must be a list of strings, got ${typeof item}`, {
        location: where ? { file: where } : undefined,
        hint: "quote each command as a TOML string",
      });
    }
  }
  return v as string[];
}

/** `{ a && b; } && cmd` (the command itself when there are no startup commands). */
export function prependStartup(commands: readonly string[], cmd: string): string {
  return commands.length === 0 ? cmd : `{ ${commands.join(" && ")}; } && ${cmd}`;
}

/**
 * The argv that runs `script` with `config`:
 * - `run.cmd` set → `bash -c '<cmd with {script}/{config} filled in, shell-quoted> "$@"'
 *   nemotron-cmd <passthrough…>` (just `bash -c '<cmd>'` without passthrough);
 * - `torchrun` → `python3 -m torch.distributed.run --nproc_per_node=N script --config cfg …`;
 * - `direct`/`ray` → `python3 script --config cfg …`.
 */
export function launchArgv(opts: {
  readonly runspec: Runspec;
  readonly script: string;
  readonly config: string;
  readonly passthrough: readonly string[];
  readonly nprocPerNode?: number | string;
  readonly python?: string;
}): string[] {
  const py = opts.python ?? localPython();
  const { runspec } = opts;
  if (runspec.run.cmd) {
    const cmd = runspec.run.cmd
      .replaceAll("{script}", shellQuote(opts.script))
      .replaceAll("{config}", shellQuote(opts.config));
    // Passthrough arguments are bash's positional parameters, not text of the command line: they
    // stay separate argv words, so a dry run redacts secret ones (`--password=…`) like any other.
    if (opts.passthrough.length === 0) return ["bash", "-c", cmd];
    return ["bash", "-c", `${cmd} "$@"`, "nemotron-cmd", ...opts.passthrough];
  }
  const tail = [opts.script, "--config", opts.config, ...opts.passthrough];
  if (runspec.run.launch === "torchrun") {
    return [
      py,
      "-m",
      "torch.distributed.run",
      `--nproc_per_node=${opts.nprocPerNode ?? 1}`,
      ...tail,
    ];
  }
  return [py, ...tail];
}

/** Run each startup command with bash, printing `[startup] <cmd>`; stop at the first failure. */
export async function runStartupLocal(
  commands: readonly string[],
  env: Record<string, string>,
): Promise<void> {
  for (const c of commands) {
    console.error(`[startup] ${c}`);
    const { code } = await new Deno.Command("bash", {
      args: ["-c", c],
      env,
      stdout: "inherit",
      stderr: "inherit",
    })
      .output();
    if (code !== 0) {
      throw new RuntimeFailure(`startup command failed with code ${code}: ${c}`, {
        hint: "fix the command in the profile's startup_commands",
      });
    }
  }
}

/**
 * Run `argv` with `env` added to ours, in `cwd`; stdout and stderr go to the terminal and to
 * `logPath`. Ctrl-C (SIGINT to the process group) reaches the child directly and makes the result
 * 130 (`INTERRUPTED_EXIT_CODE`) whatever the child exits with; a second SIGINT and SIGTERM are sent
 * on as SIGTERM. Returns the child's exit code (128+signal when it was killed by a signal).
 */
export async function runLocal(opts: {
  readonly argv: readonly string[];
  readonly env: Record<string, string>;
  readonly cwd: string;
  readonly logPath: string;
  /** Record the run in the job store under this name (so `jobs list|logs` know it). */
  readonly record?: string;
}): Promise<number> {
  const log = await Deno.open(opts.logPath, { write: true, create: true, append: true });
  const job = opts.record === undefined ? undefined : await recordLocalRun(opts.record, opts.cwd);
  if (job) console.error(`[nemotron] local job ${job.id} (nemotron jobs status ${job.id})`);
  let exitCode = 1;
  // Set when the run is stopped from outside (Ctrl-C, or SIGTERM as `jobs cancel` sends).
  let stopped = false;
  try {
    exitCode = await runChild();
    return exitCode;
  } finally {
    await job?.finish(exitCode, stopped || exitCode === INTERRUPTED_EXIT_CODE);
  }

  async function runChild(): Promise<number> {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(opts.argv[0], {
        args: opts.argv.slice(1),
        cwd: opts.cwd,
        env: opts.env,
        stdin: "inherit",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      log.close();
      if (err instanceof Deno.errors.NotFound) {
        throw new RuntimeFailure(`cannot run '${opts.argv[0]}': not found on PATH`, {
          hint: opts.argv[0].startsWith("python")
            ? "install python3 or set NEMOTRON_PYTHON"
            : undefined,
        });
      }
      throw err;
    }
    const kill = (sig: Deno.Signal) => {
      try {
        child.kill(sig);
      } catch { /* already gone */ }
    };
    // Ctrl-C goes to the whole foreground process group, the child included: passing it on again
    // would interrupt the script's own clean-up (a second KeyboardInterrupt inside the first
    // traceback). A second Ctrl-C stops the child with SIGTERM; SIGTERM is passed on as is.
    let interrupts = 0;
    const onInt = () => {
      stopped = true;
      if (++interrupts > 1) kill("SIGTERM");
    };
    const onTerm = () => {
      stopped = true;
      kill("SIGTERM");
    };
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
    // A reader that goes away (`… | head -1`) stops the echo, not the run: run.log stays complete.
    const pump = async (
      stream: ReadableStream<Uint8Array>,
      out: { write(p: Uint8Array): Promise<number> },
    ) => {
      let echo = true;
      for await (const chunk of stream) {
        if (echo) {
          try {
            await writeAll(out, chunk);
          } catch (err) {
            if (!(err instanceof Deno.errors.BrokenPipe)) throw err;
            echo = false;
          }
        }
        await writeAll(log, chunk);
      }
    };
    try {
      await Promise.all([pump(child.stdout, Deno.stdout), pump(child.stderr, Deno.stderr)]);
      const status = await child.status;
      // Ctrl-C reaches the child and us at once, but our listener runs on the event loop: a child
      // that exits quickly (its own KeyboardInterrupt handler, `exit 1`) can be seen first. A
      // failed exit gives a signal already on its way a moment to land before the result is told.
      if (!status.success && interrupts === 0 && !stopped) {
        await new Promise((r) => setTimeout(r, 100));
      }
      if (interrupts > 0) return INTERRUPTED_EXIT_CODE;
      return status.signal ? 128 + signalNumber(status.signal) : status.code;
    } finally {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
      log.close();
    }
  }
}

async function writeAll(
  w: { write(p: Uint8Array): Promise<number> },
  data: Uint8Array,
): Promise<void> {
  let off = 0;
  while (off < data.length) off += await w.write(data.subarray(off));
}

function signalNumber(sig: Deno.Signal): number {
  const table: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGKILL: 9,
    SIGTERM: 15,
  };
  return table[sig] ?? 1;
}
