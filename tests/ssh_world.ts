/**
 * Test helper for the ssh tunnel tests (tests/ssh_tunnel.test.ts, tests/bench/ssh.ts): a real
 * OpenSSH server (Debian openssh-server, `/usr/sbin/sshd`) on a loopback port (2222–2260) as the
 * "cluster login node" in front of the local Slurm cluster, and a "laptop": the local user
 * `nemotron-laptop` (created when missing) whose home is a fresh temp dir holding its own
 * `~/.ssh/config`, `known_hosts` and key — OpenSSH reads those from the passwd home, not from
 * $HOME, so the laptop must be a user of its own. nemotron runs as that user from the one-file
 * bundle, with a PATH that has ssh, rsync and the usual tools but NO Slurm command: every Slurm
 * call provably goes through the tunnel.
 *
 * Everything lives under one root-owned 0755 dir in /var/tmp (the Slurm nodes see the cluster
 * side's remote_job_dir there), removed by `close()`. Each sshd has its own host key,
 * `authorized_keys` (for root, the cluster account) and pid file. The test sshd runs with
 * `StrictModes no` because its files live under /var/tmp (1777), which StrictModes refuses for
 * files outside the account's home. Needs root; otherwise `sshSkipReason()` says why.
 */
import * as path from "node:path";
import { buildBundle } from "../tools/build.ts";
import { ensureSlurm } from "./slurm_cluster.ts";

export const LAPTOP = "nemotron-laptop";
const DEFAULT_LAPTOP = LAPTOP;
const dec = new TextDecoder();

/** Output of a command. */
export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; stdin?: string } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args: [...args],
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const o = await child.output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

let ready: Promise<string | undefined> | undefined;
let bundleFile = "";
let bundleDir = "";

/** Build the bundle, create the laptop user and check the tools; a skip reason if impossible. */
export function sshSkipReason(): Promise<string | undefined> {
  ready ??= (async () => {
    if (Deno.uid() !== 0) return "the ssh tunnel tests need root (sshd, runuser, useradd)";
    for (const f of ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen"]) {
      try {
        Deno.statSync(f);
      } catch {
        return `${f} is missing (apt-get install openssh-server openssh-client)`;
      }
    }
    const slurm = await ensureSlurm();
    if (slurm) return slurm;
    if ((await run("id", ["-u", LAPTOP])).code !== 0) {
      const r = await run("useradd", ["-M", "-d", "/nonexistent", "-s", "/bin/sh", LAPTOP]);
      if (r.code !== 0 && r.code !== 9) return `useradd ${LAPTOP} failed: ${r.stderr.trim()}`;
    }
    bundleDir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "nemotron-ssh-bundle-" });
    Deno.chmodSync(bundleDir, 0o755);
    bundleFile = path.join(bundleDir, "nemotron.js");
    if (await buildBundle(bundleFile, true) !== 0) return "deno bundle failed";
    Deno.chmodSync(bundleFile, 0o644);
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(bundleDir, { recursive: true });
      } catch { /* gone */ }
    });
    Deno.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // sshd's privsep dir
    return undefined;
  })();
  return ready;
}

/** Slurm's client commands: left out of the laptop's PATH. */
const SLURM_COMMANDS = new Set([
  "sacct",
  "sacctmgr",
  "salloc",
  "sattach",
  "sbatch",
  "sbcast",
  "scancel",
  "scontrol",
  "scrontab",
  "sdiag",
  "sh5util",
  "sinfo",
  "sprio",
  "squeue",
  "sreport",
  "srun",
  "sshare",
  "sstat",
  "strigger",
  "sview",
]);

/** One running sshd. */
export interface Sshd {
  readonly port: number;
  readonly dir: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 …`: the known_hosts line of its host key. */
  readonly knownHostsLine: string;
  /** The sshd log (`-E`). */
  log(): string;
  /** Stop it: the listener and every session it forked (SIGKILL, by pid). */
  stop(): Promise<void>;
}

/** One test's world. */
export interface SshWorld {
  readonly base: string;
  /** The laptop user's name. */
  readonly laptop: string;
  /** The laptop user's home (its ~/.ssh holds config, known_hosts, id_ed25519). */
  readonly home: string;
  /** A working directory on the laptop. */
  readonly cwd: string;
  /** A root-owned dir (0700) on the "cluster" for remote_job_dir. */
  readonly remoteJobDir: string;
  /** The laptop's public key (what authorized_keys of the cluster account holds). */
  readonly publicKey: string;
  /** Start an sshd on `port` that lets the laptop's key (or `authorizedKeys`) in as root. */
  startSshd(
    port: number,
    opts?: { authorizedKeys?: string; logLevel?: string; extraConfig?: string },
  ): Promise<Sshd>;
  /** Write the laptop's ~/.ssh/config and known_hosts. */
  sshConfig(config: string, knownHosts: string): void;
  /** Write the laptop's env.toml (in `cwd`). */
  envToml(text: string): void;
  /** Run `nemotron ARGS…` as the laptop user (PATH without Slurm). */
  nemotron(args: readonly string[], opts?: { env?: Record<string, string> }): Promise<RunResult>;
  /** Spawn it instead (for watching a running submit). */
  spawnNemotron(
    args: readonly string[],
    opts?: { env?: Record<string, string> },
  ): Deno.ChildProcess;
  /** Run a one-file bundle (`deno run -A FILE ARGS…`) as the laptop user. */
  denoRun(file: string, args: readonly string[]): Promise<RunResult>;
  /** Directory of the laptop's PATH. */
  readonly binDir: string;
  close(): Promise<void>;
}

async function keygen(file: string, comment: string): Promise<string> {
  const r = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
  if (r.code !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
  return Deno.readTextFileSync(`${file}.pub`).trim();
}

async function waitPort(port: number, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`sshd on port ${port} did not come up`);
}

/** Pids of the process tree below `pid` (children first found through /proc/*\/stat). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e.name)]);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/**
 * Create a world: dirs, laptop home and key, PATH dir. Call `close()` in a finally. `laptop`
 * names the laptop user (default `LAPTOP`; created when missing): a test file that may run while
 * another one runs its own world uses a user of its own, since a world sets that user's home.
 */
export async function makeSshWorld(opts: { laptop?: string } = {}): Promise<SshWorld> {
  const LAPTOP = opts.laptop ?? DEFAULT_LAPTOP;
  if ((await run("id", ["-u", LAPTOP])).code !== 0) {
    const r = await run("useradd", ["-M", "-d", "/nonexistent", "-s", "/bin/sh", LAPTOP]);
    if (r.code !== 0 && r.code !== 9) throw new Error(`useradd ${LAPTOP}: ${r.stderr.trim()}`);
  }
  const base = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "nm-ssh-" });
  Deno.chmodSync(base, 0o755);
  const uid = Number((await run("id", ["-u", LAPTOP])).stdout.trim());
  const gid = Number((await run("id", ["-g", LAPTOP])).stdout.trim());
  const home = path.join(base, "h");
  Deno.mkdirSync(path.join(home, ".ssh"), { recursive: true });
  // usermod refuses while a process of the user runs (a previous world's ssh master that is
  // still exiting): retry for a few seconds; on failure leave nothing behind.
  let r = await run("usermod", ["-d", home, LAPTOP]);
  for (let i = 0; r.code !== 0 && /currently used by process/.test(r.stderr) && i < 50; i++) {
    await new Promise((res) => setTimeout(res, 100));
    r = await run("usermod", ["-d", home, LAPTOP]);
  }
  if (r.code !== 0) {
    Deno.removeSync(base, { recursive: true });
    throw new Error(`usermod -d: ${r.stderr}`);
  }
  const publicKey = await keygen(path.join(home, ".ssh", "id_ed25519"), "laptop");
  const cwd = path.join(home, "work");
  Deno.mkdirSync(cwd);
  const denoDir = path.join(home, ".deno");
  Deno.mkdirSync(denoDir);
  await run("chown", ["-R", `${uid}:${gid}`, home]);
  Deno.chmodSync(home, 0o755);
  Deno.chmodSync(path.join(home, ".ssh"), 0o700);
  const remoteJobDir = path.join(base, "cluster", "jobs-root");
  Deno.mkdirSync(remoteJobDir, { recursive: true, mode: 0o700 });
  Deno.chmodSync(path.join(base, "cluster"), 0o755);
  // The laptop's PATH: every command of /usr/bin and /bin except Slurm's.
  const binDir = path.join(base, "laptop-bin");
  Deno.mkdirSync(binDir);
  for (const dir of ["/usr/bin", "/bin"]) {
    for (const e of Deno.readDirSync(dir)) {
      if (SLURM_COMMANDS.has(e.name)) continue;
      try {
        Deno.symlinkSync(path.join(dir, e.name), path.join(binDir, e.name));
      } catch { /* same name in both */ }
    }
  }
  Deno.chmodSync(binDir, 0o755);
  const sshds: Sshd[] = [];

  const envFor = (extra: Record<string, string> = {}) => ({
    HOME: home,
    USER: LAPTOP,
    LOGNAME: LAPTOP,
    PATH: binDir,
    DENO_DIR: denoDir,
    NO_COLOR: "1",
    ...extra,
  });
  const argvFor = (
    args: readonly string[],
    extra?: Record<string, string>,
    file = bundleFile,
  ) => [
    "-u",
    LAPTOP,
    "--",
    "/usr/bin/env",
    "-i",
    ...Object.entries(envFor(extra)).map(([k, v]) => `${k}=${v}`),
    "/usr/bin/deno",
    "run",
    "-A",
    "--quiet",
    file,
    ...args,
  ];

  const world: SshWorld = {
    base,
    laptop: LAPTOP,
    home,
    cwd,
    remoteJobDir,
    publicKey,
    binDir,
    async startSshd(port, opts = {}) {
      const dir = path.join(base, `sshd-${port}-${sshds.length}`);
      Deno.mkdirSync(dir, { mode: 0o700 });
      const hostPub = await keygen(path.join(dir, "host_ed25519"), `host-${port}`);
      Deno.writeTextFileSync(
        path.join(dir, "authorized_keys"),
        (opts.authorizedKeys ?? publicKey) + "\n",
        { mode: 0o600 },
      );
      const cfg = [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${dir}/host_ed25519`,
        `AuthorizedKeysFile ${dir}/authorized_keys`,
        `PidFile ${dir}/sshd.pid`,
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AllowTcpForwarding yes",
        "PermitUserEnvironment no",
        "MaxSessions 50",
        "MaxStartups 50",
        `LogLevel ${opts.logLevel ?? "INFO"}`,
        ...(opts.extraConfig ? [opts.extraConfig] : []),
      ].join("\n") + "\n";
      Deno.writeTextFileSync(path.join(dir, "sshd_config"), cfg);
      const logFile = path.join(dir, "sshd.log");
      const child = new Deno.Command("/usr/sbin/sshd", {
        args: ["-D", "-f", path.join(dir, "sshd_config"), "-E", logFile],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      await waitPort(port);
      const sshd: Sshd = {
        port,
        dir,
        knownHostsLine: `[127.0.0.1]:${port} ${hostPub.split(" ").slice(0, 2).join(" ")}`,
        log: () => {
          try {
            return Deno.readTextFileSync(logFile);
          } catch {
            return "";
          }
        },
        async stop() {
          const pids = descendants(child.pid);
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
          for (const p of pids) {
            try {
              Deno.kill(p, "SIGKILL");
            } catch { /* gone */ }
          }
          await child.status;
        },
      };
      sshds.push(sshd);
      return sshd;
    },
    sshConfig(config, knownHosts) {
      const ssh = path.join(home, ".ssh");
      Deno.writeTextFileSync(path.join(ssh, "config"), config, { mode: 0o600 });
      Deno.writeTextFileSync(path.join(ssh, "known_hosts"), knownHosts, { mode: 0o600 });
      Deno.chownSync(path.join(ssh, "config"), uid, gid);
      Deno.chownSync(path.join(ssh, "known_hosts"), uid, gid);
    },
    envToml(text) {
      const f = path.join(cwd, "env.toml");
      Deno.writeTextFileSync(f, text, { mode: 0o600 });
      Deno.chownSync(f, uid, gid);
    },
    async nemotron(args, opts = {}) {
      return await run("runuser", argvFor(args, opts.env), { cwd });
    },
    async denoRun(file, args) {
      return await run("runuser", argvFor(args, {}, file), { cwd });
    },
    spawnNemotron(args, opts = {}) {
      return new Deno.Command("runuser", {
        args: argvFor(args, opts.env),
        cwd,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    },
    async close() {
      // Stop the laptop's ssh masters (started by nemotron, persisting 60 s), then the sshds.
      const ctl = path.join(home, ".nemotron", "ssh");
      try {
        for (const e of Deno.readDirSync(ctl)) {
          if (!/^[0-9a-f]{40}$/.test(e.name)) continue;
          await run("runuser", [
            "-u",
            LAPTOP,
            "--",
            "/usr/bin/ssh",
            "-o",
            `ControlPath=${path.join(ctl, e.name)}`,
            "-O",
            "exit",
            "x",
          ]);
        }
      } catch { /* none */ }
      for (const s of sshds) await s.stop();
      await run("usermod", ["-d", "/nonexistent", LAPTOP]);
      try {
        Deno.removeSync(base, { recursive: true });
      } catch { /* best effort */ }
    },
  };
  return world;
}

/** A Deno.test that runs when root, sshd and Slurm are there; otherwise it prints why and passes. */
export function sshTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const reason = await sshSkipReason();
      if (reason) {
        console.log(`SKIP ${name}: ${reason}`);
        return;
      }
      await fn();
    },
  });
}

// ---- what the tests look for: a secret in files and in process argvs ----

/** Every file under `dir` whose bytes contain `needle` (skipping `skip`). */
export function filesContaining(
  dir: string,
  needle: string,
  skip: (p: string) => boolean = () => false,
) {
  const hits: string[] = [];
  const bytes = new TextEncoder().encode(needle);
  const walk = (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (skip(p)) continue;
      if (e.isDirectory) walk(p);
      else if (e.isFile) {
        try {
          const data = Deno.readFileSync(p);
          if (indexOf(data, bytes) >= 0) hits.push(p);
        } catch { /* unreadable socket etc. */ }
      }
    }
  };
  walk(dir);
  return hits;
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Scan every process's argv until stopped; returns the argvs that contained a needle. */
export function watchArgv(
  needle: string | readonly string[],
): { stop: () => Promise<string[]>; seen: () => number } {
  const needles = typeof needle === "string" ? [needle] : needle;
  let running = true;
  let scans = 0;
  const hits: string[] = [];
  const loop = (async () => {
    while (running) {
      for (const e of Deno.readDirSync("/proc")) {
        if (!/^\d+$/.test(e.name)) continue;
        try {
          const argv = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
          if (needles.some((n) => argv.includes(n))) hits.push(argv.replaceAll("\0", " "));
        } catch { /* gone */ }
      }
      scans++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return hits;
    },
    seen: () => scans,
  };
}
