/**
 * `nemotron doctor [PROFILE] [--json]`: what this login node offers nemotron — the Slurm client
 * tools and whether slurmctld answers, accounting on or off, enroot / mksquashfs / python3, the
 * env.toml in use, whether each Slurm profile's `remote_job_dir` (or the one named) is safe (no
 * other user can swap it: the StrictModes check of lib/exec/job_dir.ts) and writable, and whether
 * `$NEMOTRON_HOME` is private. Exit 1 when something a Slurm submission needs is missing or unsafe.
 */
import { Command } from "../lib/cli/command.ts";
import * as path from "../lib/path.ts";
import type { CliContext } from "../lib/cli/args.ts";

interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** A failed required check makes doctor exit 1. */
  readonly required: boolean;
}

/** The absolute path of `cmd` on PATH, or undefined. */
function which(cmd: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      const st = Deno.statSync(p);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111)) return p;
    } catch { /* not here */ }
  }
  return undefined;
}

async function output(cmd: string, args: string[]): Promise<{ code: number; text: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" })
      .output();
    const dec = new TextDecoder();
    return { code: o.code, text: (dec.decode(o.stdout) + dec.decode(o.stderr)).trim() };
  } catch (err) {
    return { code: 127, text: String(err) };
  }
}

/**
 * Whether other users could swap `dir` (see `untrustedPathComponent`); then try to create and
 * remove a file in it (creating `dir`, 0700, if needed).
 */
async function safeAndWritable(dir: string): Promise<{ ok: boolean; detail: string }> {
  const { remoteJobDirProblem } = await import("../lib/exec/job_dir.ts");
  const problem = remoteJobDirProblem(dir);
  if (problem) {
    return {
      ok: false,
      detail: `${dir} is not safe: ${problem.dir}: ${problem.reason}; ${problem.fix}`,
    };
  }
  const w = writable(dir);
  return w.ok
    ? { ok: true, detail: `${dir} is safe (only you or root can write the path) and writable` }
    : w;
}

/** Try to create and remove a file in `dir` (creating `dir`, 0700, if needed). */
function writable(dir: string): { ok: boolean; detail: string } {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const probe = path.join(dir, `.nemotron-doctor-${crypto.randomUUID()}`);
    Deno.writeTextFileSync(probe, "ok\n", { createNew: true, mode: 0o600 });
    Deno.removeSync(probe);
    return { ok: true, detail: `${dir} is writable` };
  } catch (err) {
    return { ok: false, detail: `${dir}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** `$NEMOTRON_HOME` must be yours and private (0700); it is created so if missing. */
function privateHome(dir: string): { ok: boolean; detail: string } {
  const w = writable(dir);
  if (!w.ok) return w;
  const st = Deno.statSync(dir);
  const uid = Deno.uid();
  if (uid !== null && st.uid !== uid) {
    return { ok: false, detail: `${dir} belongs to uid ${st.uid}, not to you` };
  }
  const mode = (st.mode ?? 0) & 0o777;
  if (mode & 0o077) {
    return {
      ok: false,
      detail: `${dir} is readable by others (mode 0${
        mode.toString(8)
      }): chmod 700 ${dir} (nemotron does it when it writes there)`,
    };
  }
  return { ok: true, detail: `${dir} is private and writable` };
}

async function runChecks(profileName: string | undefined): Promise<Check[]> {
  const checks: Check[] = [];
  // ssh tunnel (issue 12): `doctor PROFILE` of a tunnel profile checks the cluster through it.
  const tunnel = profileName ? await tunnelProfile(profileName) : undefined;
  if (tunnel) {
    const { tunnelDoctorChecks } = await import("../lib/exec/ssh_jobs.ts");
    checks.push({ name: "env.toml", ok: true, detail: tunnel.envPath, required: true });
    checks.push(...await tunnelDoctorChecks(tunnel.profile, profileName!));
    const { nemotronHome } = await import("../lib/home.ts");
    checks.push({ name: "job store", ...privateHome(nemotronHome()), required: true });
    return checks;
  }
  for (const tool of ["sbatch", "squeue", "scontrol", "scancel", "srun", "sacct"]) {
    const p = which(tool);
    checks.push({
      name: tool,
      ok: p !== undefined,
      detail: p ?? "not on PATH",
      required: tool !== "sacct" && tool !== "srun",
    });
  }
  if (which("sbatch")) {
    const v = await output("sbatch", ["--version"]);
    checks.push({ name: "slurm version", ok: v.code === 0, detail: v.text, required: false });
  }
  if (which("scontrol")) {
    const ping = await output("scontrol", ["ping"]);
    checks.push({
      name: "slurmctld",
      ok: ping.code === 0 && /UP/.test(ping.text),
      detail: ping.text.split("\n")[0] || `scontrol ping exited ${ping.code}`,
      required: true,
    });
    const { accountingEnabled } = await import("../lib/exec/slurm_state.ts");
    const acct = await accountingEnabled();
    checks.push({
      name: "accounting",
      ok: true,
      detail: acct
        ? "on (sacct knows finished jobs)"
        : "off (states of old jobs come from their job dir's attempts.tsv)",
      required: false,
    });
  }
  for (const tool of ["enroot", "mksquashfs", "python3"]) {
    const p = which(tool);
    checks.push({
      name: tool,
      ok: p !== undefined,
      detail: p ?? "not on PATH",
      required: false,
    });
  }

  const { loadEnvFile, profileNames, resolveProfile } = await import("../lib/env_toml.ts");
  let env;
  try {
    env = loadEnvFile();
    checks.push({
      name: "env.toml",
      ok: env !== undefined,
      detail: env ? `${env.path} (${env.source})` : "none found (local runs only)",
      required: profileName !== undefined,
    });
  } catch (err) {
    checks.push({
      name: "env.toml",
      ok: false,
      detail: err instanceof Error ? err.message : String(err),
      required: true,
    });
  }
  if (env) {
    const names = profileName ? [profileName] : profileNames(env);
    for (const name of names) {
      try {
        const profile = resolveProfile(env, name);
        if (profile.tunnel === "ssh") {
          // ssh tunnel (issue 12): remote_job_dir is on the cluster; `doctor NAME` checks it there.
          checks.push({
            name: `profile ${name}`,
            ok: true,
            detail: `tunnel = "ssh" (${
              String(profile.host)
            }): \`nemotron doctor ${name}\` checks it through ssh`,
            required: false,
          });
          continue;
        }
        const rjd = profile.remote_job_dir;
        if (typeof rjd !== "string" || rjd === "") {
          if (profileName) {
            checks.push({
              name: `profile ${name}`,
              ok: false,
              detail: "no remote_job_dir",
              required: true,
            });
          }
          continue;
        }
        const rjdPath = rjd === "~" || rjd.startsWith("~/")
          ? path.join(Deno.env.get("HOME") ?? "", rjd.slice(1))
          : path.resolve(rjd);
        const w = await safeAndWritable(rjdPath);
        checks.push({ name: `profile ${name}: remote_job_dir`, ...w, required: true });
      } catch (err) {
        checks.push({
          name: `profile ${name}`,
          ok: false,
          detail: err instanceof Error ? err.message : String(err),
          required: true,
        });
      }
    }
  }
  const { nemotronHome } = await import("../lib/home.ts");
  checks.push({ name: "job store", ...privateHome(nemotronHome()), required: true });
  return checks;
}

/** The profile `name` when it says `tunnel = "ssh"` (errors are left to the normal checks). */
async function tunnelProfile(
  name: string,
): Promise<{ profile: Readonly<Record<string, unknown>>; envPath: string } | undefined> {
  try {
    const { loadEnvFile, resolveProfile } = await import("../lib/env_toml.ts");
    const env = loadEnvFile();
    if (!env) return undefined;
    const profile = resolveProfile(env, name);
    return profile.tunnel === "ssh" ? { profile, envPath: env.path } : undefined;
  } catch {
    return undefined;
  }
}

export function doctorCommand(_cli: CliContext): Command {
  return new Command("doctor")
    .description("check what this login node has for nemotron (Slurm, tools, env.toml, job dirs)")
    .argument("[profile]", "check only this env.toml profile")
    .option("--json", "print JSON")
    .action(async (profile: string | undefined, opts: { json?: boolean }) => {
      const checks = await runChecks(profile);
      if (opts.json) console.log(JSON.stringify({ checks }, null, 2));
      else {
        const width = Math.max(...checks.map((c) => c.name.length));
        for (const c of checks) {
          const mark = c.ok ? "ok  " : c.required ? "FAIL" : "--  ";
          console.log(`${mark} ${c.name.padEnd(width)}  ${c.detail.split("\n")[0]}`);
        }
      }
      if (checks.some((c) => c.required && !c.ok)) Deno.exitCode = 1;
    });
}
