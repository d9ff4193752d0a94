/**
 * `nemotron doctor [PROFILE] [--json]`: what this login node offers nemotron — the Slurm client
 * tools and whether slurmctld answers, accounting on or off, enroot / mksquashfs / python3, the
 * env.toml in use, whether each Slurm profile's `remote_job_dir` (or the one named) is safe (no
 * other user can swap it: the StrictModes check of lib/exec/job_dir.ts) and writable, and whether
 * `$NEMOTRON_HOME` is private. For each Slurm profile (or the one named) it also asks Slurm whether
 * it would accept a job with the profile's partition, account, QOS, time and resources
 * (`sbatch --test-only`, nothing queued), whether pyxis is there when the profile runs containers,
 * whether every mount source exists here, and whether the profile's container image is a `.sqsh`
 * that exists or a registry image whose manifest answers (a HEAD request, nothing downloaded).
 * Every failed check says what to fix. Exit 1 when something a Slurm submission needs is missing or
 * unsafe; exit 2 for a profile name that does not exist (as `env show`).
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
  /** The check failed on bad input (e.g. an unknown profile key): doctor exits 2. */
  readonly badInput?: boolean;
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

/**
 * What Slurm and this login node say about one Slurm profile: would Slurm accept its job
 * (`sbatch --test-only` with the directives a recipe job of this profile gets), pyxis for a
 * container profile, mount sources, and its container image.
 */
async function profileChecks(
  name: string,
  profile: Record<string, unknown>,
  envPath: string,
): Promise<Check[]> {
  const checks: Check[] = [];
  const { buildSlurmJob } = await import("../lib/exec/slurm.ts");
  const { preflightSbatch } = await import("../lib/exec/slurm_preflight.ts");
  const image = typeof profile.container_image === "string" ? profile.container_image : undefined;
  const containers = image !== "";
  const job = buildSlurmJob({
    name: "doctor",
    profile,
    profileName: name,
    mode: "batch",
    launch: "direct",
    command: ["true"],
    templateBaseDir: path.dirname(envPath),
    // A stand-in image path: only to learn the container mounts this profile gives a job.
    image: containers ? "/nemotron-doctor.sqsh" : null,
  });
  if (which("sbatch")) {
    const pre = await preflightSbatch(job.directives);
    checks.push({
      name: `profile ${name}: sbatch --test-only`,
      ok: pre.ok,
      detail: pre.ok
        ? `accepted (${pre.message})`
        : `Slurm refuses the profile's job: ${pre.message}; fix partition/account/qos/time/` +
          "resources in the profile (`sinfo -s` lists partitions, `sacctmgr show assoc " +
          "user=$USER` your accounts)",
      required: true,
    });
  }
  if (containers) {
    const srun = which("srun");
    const help = srun ? await output(srun, ["--help"]) : { code: 127, text: "" };
    const pyxis = /--container-image/.test(help.text);
    checks.push({
      name: `profile ${name}: pyxis`,
      ok: pyxis,
      detail: pyxis
        ? "srun --help offers --container-image"
        : "srun has no --container-image (pyxis missing): jobs of this profile cannot start " +
          'containers; ask the admins for pyxis, or set container_image = "" to run on the ' +
          "nodes' own software",
      required: true,
    });
    const container = job.context.container as { mounts?: string[] } | null;
    for (const m of container?.mounts ?? []) {
      const src = m.split(":")[0];
      if (src === job.jobDir || src.startsWith(`${job.remoteJobDir}/`)) continue; // created per job
      let ok = true;
      try {
        Deno.statSync(src);
      } catch {
        ok = false;
      }
      checks.push({
        name: `profile ${name}: mount ${src}`,
        ok,
        detail: ok
          ? `${m}: source exists here`
          : `${m}: ${src} does not exist on this login node (pyxis fails the job): fix or ` +
            "remove it in mounts / lustre_mount",
        required: true,
      });
    }
  }
  if (image) checks.push(await imageCheck(name, image));
  return checks;
}

/** A `.sqsh` path must exist; a registry image's manifest must answer a HEAD (nothing pulled). */
async function imageCheck(name: string, image: string): Promise<Check> {
  const label = `profile ${name}: container_image`;
  if (image.endsWith(".sqsh") || image.startsWith("/")) {
    try {
      const st = Deno.statSync(image);
      return { name: label, ok: st.isFile, detail: `${image} exists`, required: true };
    } catch {
      return {
        name: label,
        ok: false,
        detail: `${image} does not exist: nemotron squash IMAGE -o ${image} makes it`,
        required: true,
      };
    }
  }
  try {
    const { parseImageRef } = await import("../lib/squash/reference.ts");
    const { RegistryClient, MANIFEST_ACCEPT } = await import("../lib/squash/registry.ts");
    const { lookupCredentials } = await import("../lib/squash/credentials.ts");
    const ref = parseImageRef(image);
    if (ref.kind !== "registry") {
      return { name: label, ok: true, detail: `${image} (not a registry image)`, required: false };
    }
    const client = new RegistryClient(ref.registry, ref.repository, {
      credentials: lookupCredentials(ref.registry, ref.user),
      retry: { attempts: 1, baseDelayMs: 0 },
    });
    const res = await client.get(
      `manifests/${ref.digest ?? ref.tag ?? "latest"}`,
      { Accept: MANIFEST_ACCEPT },
      "HEAD",
    );
    await res.body?.cancel();
    const digest = res.headers.get("docker-content-digest");
    return {
      name: label,
      ok: true,
      detail: `${image}: the registry answers${digest ? ` (${digest.slice(0, 19)}…)` : ""}`,
      required: false,
    };
  } catch (err) {
    return {
      name: label,
      ok: false,
      detail: `${image}: ${err instanceof Error ? err.message : String(err)}`,
      required: false,
    };
  }
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
  for (
    const [tool, versionArgs] of [["enroot", ["version"]], ["mksquashfs", ["-version"]], [
      "python3",
      ["--version"],
    ]] as const
  ) {
    const p = which(tool);
    let detail = p ?? "not on PATH";
    if (p) {
      const v = await output(p, [...versionArgs]);
      const first = v.text.split("\n").find((l) => /\d+\.\d+/.test(l));
      if (v.code === 0 && first) detail = `${p} (${first.trim()})`;
    }
    checks.push({ name: tool, ok: p !== undefined, detail, required: false });
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
  if (profileName !== undefined && env === undefined) {
    const { UsageError } = await import("../lib/errors.ts");
    throw new UsageError(`profile '${profileName}': no env.toml found`, {
      hint: "create one (nemotron init writes a starter) or set NEMOTRON_ENV_FILE",
    });
  }
  if (env) {
    // A profile that is named must exist: the same error (did you mean, exit 2) as `env show`.
    if (profileName !== undefined && !profileNames(env).includes(profileName)) {
      resolveProfile(env, profileName);
    }
    const names = profileName ? [profileName] : profileNames(env);
    for (const name of names) {
      try {
        const profile = resolveProfile(env, name);
        const executor = profile.executor ?? "slurm";
        if (executor !== "slurm") continue;
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
              detail: 'no remote_job_dir: add remote_job_dir = "/shared/fs/you/nemotron"',
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
        checks.push(...await profileChecks(name, profile, env.path));
      } catch (err) {
        const { NemotronError, formatError } = await import("../lib/errors.ts");
        checks.push({
          name: `profile ${name}`,
          ok: false,
          // bad input keeps its whole text: file:line, the source line and the hint
          detail: err instanceof NemotronError
            ? formatError(err)
            : err instanceof Error
            ? err.message
            : String(err),
          required: true,
          badInput: err instanceof NemotronError && err.exitCode === 2,
        });
      }
    }
  }
  const { artifactsRoot } = await import("../lib/artifacts/root.ts");
  const { specialSection } = await import("../lib/env_toml.ts");
  try {
    const root = artifactsRoot(
      env ? specialSection(env, "artifacts") : undefined,
      Deno.env,
      env ? path.dirname(env.path) : undefined,
    );
    let detail = `${root} (does not exist yet: created by the first publish)`;
    try {
      const st = Deno.statSync(root);
      detail = st.isDirectory ? `${root}` : `${root} is not a directory`;
    } catch { /* not there yet */ }
    checks.push({
      name: "artifacts root",
      ok: !detail.includes("not a directory"),
      detail,
      required: false,
    });
  } catch (err) {
    checks.push({
      name: "artifacts root",
      ok: false,
      detail: err instanceof Error ? err.message : String(err),
      required: false,
    });
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
    .description(
      "Check what this login node has for nemotron (Slurm, tools, env.toml, profiles)",
    )
    .examples([
      ["nemotron doctor", "Tools, Slurm, env.toml and every Slurm profile"],
      ["nemotron doctor cluster", "One profile: Slurm's verdict, pyxis, mounts, image"],
      ["nemotron doctor --json", "Machine-readable"],
    ])
    .argument("[profile]", "check only this env.toml profile")
    .option("--json", "print JSON")
    .action(async (profile: string | undefined, opts: { json?: boolean }) => {
      const checks = await runChecks(profile);
      if (opts.json) console.log(JSON.stringify({ checks }, null, 2));
      else {
        // One row a check. On a terminal the detail wraps under its column so the report fits;
        // piped, each check stays one line (for grep). Bad input (a broken profile) also shows
        // the rest of its error: the source line and the hint.
        const { helpRows, helpWidth } = await import("../lib/cli/layout.ts");
        const tty = Deno.stdout.isTerminal();
        const width = tty ? helpWidth() : Number.MAX_SAFE_INTEGER;
        const keys = checks.map((c) => `${c.ok ? "ok  " : c.required ? "FAIL" : "--  "} ${c.name}`);
        const keyWidth = Math.min(tty ? 40 : 1000, Math.max(...keys.map((k) => k.length)));
        checks.forEach((c, i) => {
          const lines = c.detail.split("\n");
          const row = [keys[i].padEnd(keyWidth), lines[0]] as const;
          const out = helpRows([row], width, keyWidth, { capitalise: false });
          console.log(out.map((l) => l.slice(2)).join("\n"));
          if (c.badInput) {
            for (const l of lines.slice(1)) console.log(`${"".padEnd(keyWidth)}  ${l}`);
          }
        });
      }
      if (checks.some((c) => c.badInput)) Deno.exitCode = 2;
      else if (checks.some((c) => c.required && !c.ok)) Deno.exitCode = 1;
    });
}
