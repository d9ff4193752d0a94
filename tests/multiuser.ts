/**
 * Test helper for the multi-user suite (tests/multiuser_*.test.ts): two real local users on this
 * machine, `nemotron-victim` and `nemotron-other` (the attacker), created with `useradd -m` when
 * missing, and the one-file bundle (tools/build.ts `buildBundle`) built once into a directory
 * everyone can read. `runAs(user, …)` runs the bundle as that user through `runuser`, with a clean
 * environment (HOME, PATH, a per-user DENO_DIR); `shAs(user, …)` runs a shell command as them (the
 * attacker's moves). Everything lives under one scratch tree in /var/tmp (slurmd sees it too),
 * removed at the end of each test. Needs root: otherwise each test prints why and passes.
 */
import * as path from "node:path";
import { buildBundle } from "../tools/build.ts";
import { ensureSlurm } from "./slurm_cluster.ts";

export const VICTIM = "nemotron-victim";
export const OTHER = "nemotron-other";

/** Output of a command run as a user. */
export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** One test's world: a root-owned base dir (0755) with a 1777 `scratch` dir inside. */
export interface World {
  /** Root-owned, 0755: only root writes here. */
  readonly base: string;
  /** Root-owned, 1777 (a `/scratch`-style directory every user can create things in). */
  readonly scratch: string;
  /** A fresh home dir for `user` (owned by them, 0755), created on first use. */
  home(user: string): string;
  uid(user: string): number;
  /** Run the bundle as `user`: `nemotron ARGS…` with HOME = `home(user)`. */
  runAs(user: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Run `bash -c SCRIPT` as `user` (umask 022), in `cwd` (default: scratch). */
  shAs(user: string, script: string, cwd?: string): Promise<RunResult>;
}

/** Options of `World.runAs`. */
export interface RunOptions {
  /** Working directory (default: the user's home). */
  readonly cwd?: string;
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>;
}

const dec = new TextDecoder();

async function run(cmd: string, args: string[], cwd?: string): Promise<RunResult> {
  const o = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

let ready: Promise<string | undefined> | undefined;
let bundleFile = "";

/** Create the users and build the bundle once; a skip reason when that is not possible. */
function setup(): Promise<string | undefined> {
  ready ??= (async () => {
    if (Deno.uid() !== 0) return "the multi-user tests need root (to create users and runuser)";
    for (const tool of ["useradd", "runuser"]) {
      if ((await run("sh", ["-c", `command -v ${tool}`])).code !== 0) return `no ${tool}`;
    }
    for (const user of [VICTIM, OTHER]) {
      if ((await run("id", ["-u", user])).code === 0) continue;
      const r = await run("useradd", ["-m", "-s", "/bin/bash", user]);
      // 9 = the user exists (another test process created it at the same moment)
      if (r.code !== 0 && r.code !== 9) return `useradd ${user} failed: ${r.stderr.trim()}`;
    }
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "nemotron-mu-bundle-" });
    Deno.chmodSync(dir, 0o755);
    bundleFile = path.join(dir, "nemotron.js");
    if (await buildBundle(bundleFile, true) !== 0) return "deno bundle failed";
    Deno.chmodSync(bundleFile, 0o644);
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already gone */ }
    });
    return undefined;
  })();
  return ready;
}

async function uidOf(user: string): Promise<number> {
  return Number((await run("id", ["-u", user])).stdout.trim());
}

async function makeWorld(): Promise<World> {
  const base = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "nemotron-mu-" });
  Deno.chmodSync(base, 0o755);
  const scratch = path.join(base, "scratch");
  Deno.mkdirSync(scratch);
  Deno.chmodSync(scratch, 0o1777);
  const uids = new Map<string, number>([["root", 0]]);
  for (const u of [VICTIM, OTHER]) uids.set(u, await uidOf(u));
  const homes = new Map<string, string>();
  const home = (user: string) => {
    let h = homes.get(user);
    if (!h) {
      h = path.join(base, `home-${user}`);
      Deno.mkdirSync(h, { mode: 0o755 });
      Deno.chownSync(h, uids.get(user)!, uids.get(user)!);
      homes.set(user, h);
    }
    return h;
  };
  const denoDir = (user: string) => {
    const d = path.join(base, `denodir-${user}`);
    try {
      Deno.mkdirSync(d, { mode: 0o700 });
      Deno.chownSync(d, uids.get(user)!, uids.get(user)!);
    } catch { /* exists */ }
    return d;
  };
  const userPath = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  return {
    base,
    scratch,
    home,
    uid: (user) => uids.get(user)!,
    runAs: (user, args, opts = {}) => {
      const h = home(user);
      const env = {
        HOME: h,
        USER: user,
        LOGNAME: user,
        PATH: userPath,
        DENO_DIR: denoDir(user),
        NO_COLOR: "1",
        ...(opts.env ?? {}),
      };
      return run("runuser", [
        "-u",
        user,
        "--",
        "env",
        "-i",
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        "sh",
        "-c",
        'umask 022 && exec "$@"',
        "sh",
        Deno.execPath(),
        "run",
        "-A",
        "--no-config",
        "--no-lock",
        "--cached-only",
        bundleFile,
        ...args,
      ], opts.cwd ?? h);
    },
    shAs: (user, script, cwd) =>
      run("runuser", [
        "-u",
        user,
        "--",
        "env",
        "-i",
        `HOME=${home(user)}`,
        `PATH=${userPath}`,
        "bash",
        "-c",
        `umask 022\n${script}`,
      ], cwd ?? scratch),
  };
}

/**
 * A Deno.test with a fresh world, removed afterwards. With `slurm: true` it also needs the shared
 * local Slurm cluster (started if needed, never stopped). Prints why and passes when it cannot run.
 */
export function multiuserTest(
  name: string,
  fn: (w: World) => Promise<void>,
  opts: { slurm?: boolean } = {},
): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const reason = await setup() ?? (opts.slurm ? await ensureSlurm() : undefined);
      if (reason) {
        console.log(`SKIP ${name}: ${reason}`);
        return;
      }
      const w = await makeWorld();
      try {
        await fn(w);
      } finally {
        Deno.removeSync(w.base, { recursive: true });
      }
    },
  });
}

/** Write `text` to `file` as root, then give it to `user` with `mode`. */
export function writeAs(w: World, user: string, file: string, text: string, mode = 0o644): void {
  Deno.writeTextFileSync(file, text);
  Deno.chownSync(file, w.uid(user), w.uid(user));
  Deno.chmodSync(file, mode);
}

/** `mkdir` as root, then give it to `user` with `mode`. */
export function mkdirAs(w: World, user: string, dir: string, mode = 0o755): void {
  Deno.mkdirSync(dir, { recursive: true });
  Deno.chownSync(dir, w.uid(user), w.uid(user));
  Deno.chmodSync(dir, mode);
}

export { exists } from "./cli_helpers.ts";

/** The Slurm state of job `id` (`squeue`, else `sacct`), e.g. RUNNING, PENDING, CANCELLED. */
export async function slurmState(id: string): Promise<string> {
  const q = await run("squeue", ["-h", "-j", id, "-o", "%T"]);
  if (q.code === 0 && q.stdout.trim()) return q.stdout.trim();
  const a = await run("sacct", ["-n", "-X", "-P", "-j", id, "-o", "State"]);
  return a.stdout.trim().split("\n")[0] || "GONE";
}

/** `scancel` as root (cleanup of jobs a test started). */
export async function scancel(...ids: string[]): Promise<void> {
  if (ids.length) await run("scancel", ids);
}
