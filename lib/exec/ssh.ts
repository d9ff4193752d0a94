/**
 * The ssh tunnel (`tunnel = "ssh"` profiles): submit to, follow and inspect a Slurm cluster from
 * a laptop through the system's OpenSSH client, so the user's `~/.ssh/config` works as it is
 * (Host aliases, ProxyJump, IdentityFile, agents, certificates, known_hosts).
 *
 * - One multiplexed connection per nemotron command: the first use starts a master
 *   (`ControlMaster=yes`, `ControlPersist` 60 s) whose socket lives in `$NEMOTRON_HOME/ssh/`
 *   (0700); every later call of the same command (and of the next command within a minute)
 *   runs through it with `ControlMaster=no`, so a submit costs one handshake, not ten.
 * - Host keys are never accepted silently: `StrictHostKeyChecking=yes` always; an unknown host
 *   key is an error that says how to check and add it.
 * - Every remote command is one `sh -c` word built with the one quoting function
 *   (lib/shell.ts), so the login shell of the cluster account does not matter; secret values
 *   only ever travel on stdin.
 *
 * Errors: a bad tunnel key is a UsageError (exit 2); unreachable host, failed login, unknown or
 * changed host key, a dropped connection are RuntimeFailures (exit 1) naming the host and the fix.
 */
import * as path from "../path.ts";
import { RuntimeFailure, type SourceLocation, UsageError } from "../errors.ts";
import { ensureNemotronHome } from "../home.ts";
import { shellJoin, shellQuote } from "../shell.ts";
import type { CommandRunner } from "./slurm_state.ts";

/** The tunnel keys of a profile. */
export interface TunnelSpec {
  /** Host name or a `Host` alias of `~/.ssh/config`. */
  readonly host: string;
  readonly user?: string;
  readonly port?: number;
  /** Private key file (`ssh -i`); a leading `~` is this machine's home. */
  readonly identity?: string;
}

type Profile = Readonly<Record<string, unknown>>;

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const WORD = /^[A-Za-z0-9_.%+@:\[\]-]+$/;

/**
 * The tunnel a profile asks for: undefined for `tunnel` unset, `""` or `"local"`; the checked
 * keys for `tunnel = "ssh"`; a UsageError (exit 2, naming the key and its env.toml line) for
 * anything else or a bad `host`/`user`/`port`/`identity`.
 */
export function tunnelSpecOf(
  profile: Profile,
  opts: { profileName?: string; locate?: (key: string) => SourceLocation | undefined } = {},
): TunnelSpec | undefined {
  const fail = (key: string, message: string, hint?: string): never => {
    const where = opts.profileName ? `profile '${opts.profileName}': ` : "";
    throw new UsageError(`${where}${key}: ${message}`, { location: opts.locate?.(key), hint });
  };
  const t = profile.tunnel;
  if (t === undefined || t === null || t === "" || t === "local") return undefined;
  if (t !== "ssh") {
    fail("tunnel", `must be "ssh" or "local", got ${JSON.stringify(t)}`);
  }
  const str = (key: string): string | undefined => {
    const v = profile[key];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") return fail(key, `must be a string, got ${JSON.stringify(v)}`);
    if (CONTROL.test(v)) fail(key, "must be one line without control characters");
    return v;
  };
  const host = str("host");
  if (host === undefined) {
    fail(
      "host",
      'is required with tunnel = "ssh"',
      "set host to the cluster's login node (or a Host alias of ~/.ssh/config)",
    );
  }
  if (!WORD.test(host!) || host!.startsWith("-")) {
    fail("host", `${JSON.stringify(host)} is not a host name`);
  }
  const user = str("user");
  if (user !== undefined && (!/^[A-Za-z0-9_.][A-Za-z0-9_.@$-]*$/.test(user))) {
    fail("user", `${JSON.stringify(user)} is not a user name`);
  }
  let port: number | undefined;
  const pv = profile.port;
  if (pv !== undefined && pv !== null && pv !== "") {
    const n = typeof pv === "bigint" ? Number(pv) : typeof pv === "string" ? Number(pv) : pv;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) {
      fail("port", `must be a port number 1-65535, got ${JSON.stringify(String(pv))}`);
    }
    port = n as number;
  }
  let identity = str("identity");
  if (identity !== undefined) {
    const home = Deno.env.get("HOME") ?? "";
    if (identity === "~" || identity.startsWith("~/")) {
      identity = path.join(home, identity.slice(1));
    }
    identity = path.resolve(identity);
    try {
      Deno.statSync(identity);
    } catch {
      fail("identity", `key file ${identity} not found`, "point identity at your private key");
    }
  }
  return { host: host!, user, port, identity };
}

/**
 * How the job store names the cluster of a job submitted through a tunnel:
 * `ssh://[user@]host[:port]` plus `?identity=PATH` — enough to reach it again later.
 */
export function tunnelClusterKey(spec: TunnelSpec): string {
  const enc = encodeURIComponent;
  let s = "ssh://" + (spec.user ? `${enc(spec.user)}@` : "") + enc(spec.host);
  if (spec.port !== undefined) s += `:${spec.port}`;
  if (spec.identity) s += `?identity=${enc(spec.identity)}`;
  return s;
}

/** Whether a job store `cluster` value names a cluster reached through an ssh tunnel. */
export function isTunnelCluster(cluster: string | undefined | null): boolean {
  return typeof cluster === "string" && cluster.startsWith("ssh://");
}

/** The tunnel of a job store `cluster` value written by `tunnelClusterKey`. */
export function parseTunnelClusterKey(cluster: string): TunnelSpec {
  const m = /^ssh:\/\/(?:([^@/?]+)@)?([^:/?]+)(?::(\d+))?(?:\?identity=(.*))?$/.exec(cluster);
  if (!m) throw new RuntimeFailure(`bad tunnel cluster in the job store: ${cluster}`);
  const dec = decodeURIComponent;
  return {
    user: m[1] ? dec(m[1]) : undefined,
    host: dec(m[2]),
    port: m[3] ? Number(m[3]) : undefined,
    identity: m[4] ? dec(m[4]) : undefined,
  };
}

/** `user@host:port` for messages. */
export function tunnelLabel(spec: TunnelSpec): string {
  return (spec.user ? `${spec.user}@` : "") + spec.host + (spec.port ? `:${spec.port}` : "");
}

/**
 * The `ssh` command a person types to run something on the cluster of `spec` (`-t` for an
 * interactive command), for printed instructions: the profile's user, port and identity.
 */
export function sshCommandLine(spec: TunnelSpec, tty = false): string {
  return shellJoin([
    "ssh",
    ...(tty ? ["-t"] : []),
    ...(spec.user ? ["-l", spec.user] : []),
    ...(spec.port ? ["-p", String(spec.port)] : []),
    ...(spec.identity ? ["-i", spec.identity] : []),
    spec.host,
  ]);
}

/** Output of a remote command. */
export interface RemoteOutput {
  readonly code: number;
  readonly stdout: Uint8Array;
  readonly stderr: string;
}

const dec = new TextDecoder();

/** The private directory of control sockets and staged job dirs: `$NEMOTRON_HOME/ssh` (0700). */
export function tunnelDir(): string {
  const dir = path.join(ensureNemotronHome(), "ssh");
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const st = Deno.lstatSync(dir);
  const uid = Deno.uid();
  if (!st.isDirectory || (uid !== null && st.uid !== uid)) {
    throw new RuntimeFailure(`${dir} is not a private directory of yours`, {
      hint: "remove it; nemotron keeps its ssh control sockets there",
    });
  }
  if (((st.mode ?? 0) & 0o077) !== 0) Deno.chmodSync(dir, 0o700);
  return dir;
}

/**
 * Where control sockets go: `$NEMOTRON_HOME/ssh`, unless that path is too long for a Unix socket
 * (108 bytes, and ssh appends a temp suffix while binding); then a private
 * `/tmp/nemotron-ssh-<uid>` (0700, must be yours).
 */
function controlDir(): string {
  const dir = tunnelDir();
  if (dir.length <= 48) return dir; // + "/" + 40 hex (%C) + ssh's 17-byte temp suffix < 108
  const alt = `/tmp/nemotron-ssh-${Deno.uid() ?? "user"}`;
  try {
    Deno.mkdirSync(alt, { mode: 0o700 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const st = Deno.lstatSync(alt);
  if (!st.isDirectory || st.uid !== Deno.uid() || ((st.mode ?? 0) & 0o077) !== 0) {
    throw new RuntimeFailure(
      `${alt} is not a private directory of yours (needed for ssh control sockets: ${dir} is too long for one)`,
      { hint: "remove it, or set NEMOTRON_HOME to a shorter path" },
    );
  }
  return alt;
}

async function shortHash(s: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  return Array.from(d.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The ssh failure behind exit code 255, as a RuntimeFailure with a fix; undefined if none. */
export function sshFailure(
  spec: TunnelSpec,
  stderr: string,
  resolved?: { hostname: string; port: number },
): RuntimeFailure | undefined {
  const where = tunnelLabel(spec);
  const text = stderr.trim();
  const hostname = resolved?.hostname ?? spec.host;
  const portNo = resolved?.port ?? spec.port ?? 22;
  const port = portNo !== 22 ? `-p ${portNo} ` : "";
  if (
    /Host key verification failed|No \S+ host key is known|host key for .* has changed|REMOTE HOST IDENTIFICATION HAS CHANGED/i
      .test(text)
  ) {
    const changed = /has changed|HAS CHANGED/i.test(text);
    return new RuntimeFailure(
      changed
        ? `ssh ${where}: the host key CHANGED (it differs from the one in known_hosts); nemotron will not connect`
        : `ssh ${where}: the host key is unknown (not in your known_hosts); nemotron never accepts host keys by itself`,
      {
        hint: changed
          ? `ask the cluster admins whether the key changed; if so remove the old one with \`ssh-keygen -R ${
            portNo !== 22 ? `'[${hostname}]:${portNo}'` : hostname
          }\` and add the new one`
          : `get the key's fingerprint from the cluster admins, then either log in once with \`ssh ${
            spec.port ? `-p ${spec.port} ` : ""
          }${
            where.replace(/:\d+$/, "")
          }\`, compare the fingerprint it shows and answer yes, or (without ProxyJump) \`ssh-keyscan ${port}${hostname} > /tmp/k && ssh-keygen -lf /tmp/k\`, compare, then \`cat /tmp/k >> ~/.ssh/known_hosts\``,
      },
    );
  }
  if (/Permission denied|Too many authentication failures|no matching host key type/i.test(text)) {
    return new RuntimeFailure(`ssh ${where}: login failed: ${lastLine(text)}`, {
      hint:
        "check user / identity in the profile (or IdentityFile in ~/.ssh/config) and that your key is loaded (`ssh-add -l`); `ssh -v HOST` shows what is tried",
    });
  }
  if (
    /Connection refused|Could not resolve|Name or service not known|No route to host|timed out|Network is unreachable|Connection closed by|Connection reset|kex_exchange_identification|Broken pipe|mux_client|Control socket connect/i
      .test(text)
  ) {
    return new RuntimeFailure(`ssh ${where}: cannot reach the cluster: ${lastLine(text)}`, {
      hint:
        "check host / port in the profile, your network or VPN, and that `ssh HOST` works from this machine",
    });
  }
  if (text !== "") {
    return new RuntimeFailure(`ssh ${where} failed: ${lastLine(text)}`, {
      hint: "`ssh -v HOST` shows what goes wrong",
    });
  }
  return undefined;
}

function lastLine(s: string): string {
  const lines = s.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return lines[lines.length - 1] ?? s;
}

const open = new Map<string, Promise<SshTunnel>>();

/**
 * A connection to one cluster: a multiplexed OpenSSH master plus the calls made through it.
 * `SshTunnel.open` returns the same tunnel for the same spec within one process.
 */
export class SshTunnel {
  /** Milliseconds the master connection took to come up (0 when an existing one was reused). */
  handshakeMs = 0;
  /** Whether this process started the master. */
  started = false;

  private constructor(
    readonly spec: TunnelSpec,
    readonly controlPath: string,
    private readonly logFile: string,
  ) {}

  /** Connect (or reuse a live master of the same host) and return the tunnel. */
  static open(spec: TunnelSpec): Promise<SshTunnel> {
    const key = tunnelClusterKey(spec);
    let t = open.get(key);
    if (!t) {
      t = SshTunnel.connect(spec);
      open.set(key, t);
      t.catch(() => open.delete(key));
    }
    return t;
  }

  private static async connect(spec: TunnelSpec): Promise<SshTunnel> {
    const dir = controlDir();
    // %C: ssh's hash of the resolved destination (host name, port, user after ~/.ssh/config), so
    // a changed config never reuses a connection to the old place.
    const id = await shortHash(tunnelClusterKey(spec));
    const tunnel = new SshTunnel(spec, path.join(dir, "%C"), path.join(dir, `${id}.log`));
    // Two commands starting at once must not both start a master (the second would stay behind
    // as a plain background connection): check-and-start under an exclusive lock.
    const lock = Deno.openSync(path.join(dir, `${id}.lock`), {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
    try {
      await lock.lock(true);
      await tunnel.startMaster();
    } finally {
      lock.close();
    }
    return tunnel;
  }

  /** Reuse a live master for this destination, or start one (timing the handshake). */
  private async startMaster(): Promise<void> {
    const spec = this.spec;
    const check = await this.ssh(["-O", "check"], { master: true });
    if (check.code === 0) return;
    try {
      Deno.removeSync(this.logFile);
    } catch { /* none */ }
    const t0 = performance.now();
    // -f: into the background once logged in; -E: its messages go to a private log file, so no
    // pipe of ours stays open behind it; prompts (passphrase, OTP) still reach a terminal.
    // ControlMaster=auto (under the lock, no live master): a stale socket left by a killed master
    // is removed by ssh instead of disabling multiplexing.
    const out = await this.ssh(
      ["-f", "-N", "-E", this.logFile, "-o", "ControlMaster=auto", "-o", "ControlPersist=60"],
      { master: true },
    );
    this.handshakeMs = performance.now() - t0;
    if (out.code !== 0) {
      let log = out.stderr;
      try {
        log += "\n" + Deno.readTextFileSync(this.logFile);
      } catch { /* none */ }
      throw sshFailure(spec, log, await this.resolve()) ??
        new RuntimeFailure(`ssh ${tunnelLabel(spec)}: exit code ${out.code}`);
    }
    this.started = true;
  }

  /** Host name and port after ~/.ssh/config (`ssh -G`), for messages. */
  async resolve(): Promise<{ hostname: string; port: number } | undefined> {
    try {
      const out = await this.ssh(["-G"], { master: true });
      const text = dec.decode(out.stdout);
      const hostname = /^hostname (\S+)$/m.exec(text)?.[1];
      const port = Number(/^port (\d+)$/m.exec(text)?.[1]);
      return hostname && port ? { hostname, port } : undefined;
    } catch {
      return undefined;
    }
  }

  /** The ssh options every call uses (before the host). */
  sshOptions(): string[] {
    const s = this.spec;
    const args = [
      "-o",
      `ControlPath=${this.controlPath}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "ConnectTimeout=15",
      "-o",
      "ServerAliveInterval=15",
      "-o",
      "ServerAliveCountMax=3",
    ];
    // Prompts (passphrase, OTP) only when a person is there to answer them.
    if (!Deno.stdin.isTerminal()) args.push("-o", "BatchMode=yes");
    if (s.user) args.push("-l", s.user);
    if (s.port) args.push("-p", String(s.port));
    if (s.identity) args.push("-i", s.identity);
    return args;
  }

  private async ssh(
    extra: string[],
    opts: { master?: boolean; remote?: string; stdin?: Uint8Array } = {},
  ): Promise<RemoteOutput> {
    const args = [...this.sshOptions()];
    if (!opts.master) args.push("-o", "ControlMaster=no");
    args.push(...extra, "--", this.spec.host);
    if (opts.remote !== undefined) args.push(opts.remote);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command("ssh", {
        args,
        stdin: opts.stdin ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new RuntimeFailure('ssh not found on PATH: tunnel = "ssh" needs the OpenSSH client', {
          hint: "install openssh-client",
        });
      }
      throw err;
    }
    if (opts.stdin) {
      const w = child.stdin.getWriter();
      try {
        await w.write(opts.stdin);
        await w.close();
      } catch { /* ssh died; its stderr says why */ }
    }
    const out = await child.output();
    return { code: out.code, stdout: out.stdout, stderr: dec.decode(out.stderr) };
  }

  /**
   * Run the POSIX shell script `script` on the cluster (`sh -c`, with `args` as `$1`…),
   * optionally feeding `stdin`.
   * Exit code 255 with an ssh error becomes a RuntimeFailure naming the cause and the fix.
   */
  async exec(
    script: string,
    stdin?: Uint8Array,
    args: readonly string[] = [],
  ): Promise<RemoteOutput> {
    const remote = `sh -c ${shellJoin([script, "nemotron", ...args])}`;
    const out = await this.ssh([], { remote, stdin });
    if (out.code === 255) {
      const f = sshFailure(this.spec, out.stderr);
      if (f) throw f;
    }
    return out;
  }

  /** A CommandRunner that runs `cmd args…` on the cluster (what lib/exec's Slurm calls take). */
  readonly runner: CommandRunner = async (cmd, args) => {
    const out = await this.exec(`exec ${shellJoin([cmd, ...args])}`);
    if (out.code === 127 && /not found/i.test(out.stderr)) {
      throw new RuntimeFailure(`${cmd} not found on ${tunnelLabel(this.spec)}`, {
        hint:
          "the cluster's non-interactive shell has no Slurm on PATH: check `ssh HOST command -v sbatch`, or add Slurm's bin directory to PATH in the cluster's ~/.bashrc",
      });
    }
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: out.stderr };
  };

  /**
   * Copy the contents of the local directory `localDir` into `remoteDir` (created, with its
   * parent `mkdirParent` made 0700 first). With rsync on PATH: `rsync -rlp --checksum`, and
   * `--link-dest` to earlier job dirs so unchanged files (the code package) are hard-linked on
   * the cluster instead of sent again; without rsync here or on the cluster: `tar | ssh tar`.
   */
  async upload(
    localDir: string,
    remoteDir: string,
    opts: { linkDest?: readonly string[]; exclude?: readonly string[]; mkdirParent: string },
  ): Promise<void> {
    const mkdir = `umask 077 && mkdir -p -- ${shellQuote(opts.mkdirParent)}`;
    if (hasOnPath("rsync")) {
      const rsh = shellJoin(["ssh", ...this.sshOptions(), "-o", "ControlMaster=no"]);
      const args = [
        "-rlp",
        "--checksum",
        "--chmod=Dgo-rwx",
        "-e",
        rsh,
        `--rsync-path=${mkdir} && rsync`,
        ...(opts.exclude ?? []).map((e) => `--exclude=${e}`),
        ...(opts.linkDest ?? []).map((d) => `--link-dest=${d}`),
        localDir.replace(/\/*$/, "/"),
        `${this.spec.host}:${remoteDir}/`,
      ];
      const out = await new Deno.Command("rsync", {
        args,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (out.code === 0) return;
      const err = dec.decode(out.stderr);
      // No rsync on the cluster: copy with tar instead (everything is sent).
      if (!/rsync: (command )?not found/i.test(err)) {
        throw this.copyFailure(remoteDir, err);
      }
    }
    const tar = new Deno.Command("tar", {
      args: [
        "-C",
        localDir,
        "-cf",
        "-",
        ...(opts.exclude ?? []).map((e) => `--exclude=.${e}`),
        ".",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const bytes = new Uint8Array(await new Response(tar.stdout).arrayBuffer());
    await tar.status;
    const out = await this.exec(
      `${mkdir} && mkdir -p -- ${shellQuote(remoteDir)} && tar -xf - -C ${shellQuote(remoteDir)}`,
      bytes,
    );
    if (out.code !== 0) throw this.copyFailure(remoteDir, out.stderr);
  }

  private copyFailure(remoteDir: string, stderr: string): RuntimeFailure {
    const ssh = sshFailure(this.spec, stderr);
    if (/No space left|Disk quota exceeded/i.test(stderr)) {
      return new RuntimeFailure(
        `copying the job dir to ${
          tunnelLabel(this.spec)
        }:${remoteDir} failed: the cluster's disk is full (${lastLine(stderr)})`,
        { hint: "free space or quota in remote_job_dir (`df -h`, `quota -s` on the cluster)" },
      );
    }
    return new RuntimeFailure(
      `copying the job dir to ${tunnelLabel(this.spec)}:${remoteDir} failed: ${
        ssh?.message ?? lastLine(stderr)
      }`,
      {
        hint: ssh?.hint ??
          "check free space and permissions of remote_job_dir (`nemotron doctor PROFILE`)",
      },
    );
  }

  /** Stop the master connection (tests, `doctor`); later calls connect again. */
  async close(): Promise<void> {
    open.delete(tunnelClusterKey(this.spec));
    await this.ssh(["-O", "exit"], { master: true });
  }
}

/** A job planned for a cluster behind a tunnel: its connection and local staging dir. */
export interface TunnelJob {
  readonly tunnel: SshTunnel;
  /** `$NEMOTRON_HOME/ssh/stage/<key>`: where the job dir is built before it is copied. */
  readonly stageDir: string;
  /** Earlier job dirs on the cluster whose unchanged files the copy hard-links. */
  readonly linkDest?: readonly string[];
}

const TUNNEL_JOBS = new WeakMap<object, TunnelJob>();

/** Mark `job` (a SlurmJob) as one that goes through `t` (see lib/exec/ssh_submit.ts). */
export function registerTunnelJob(job: object, t: TunnelJob): void {
  TUNNEL_JOBS.set(job, t);
}

/** The tunnel of a job planned by `planTunnelJob`, or undefined for a login-node job. */
export function tunnelJobOf(job: object): TunnelJob | undefined {
  return TUNNEL_JOBS.get(job);
}

/** Whether `cmd` is an executable on PATH. */
export function hasOnPath(cmd: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const st = Deno.statSync(path.join(dir, cmd));
      if (st.isFile && ((st.mode ?? 0o111) & 0o111)) return true;
    } catch { /* not here */ }
  }
  return false;
}
