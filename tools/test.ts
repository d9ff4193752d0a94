/**
 * `deno task test`: the whole test suite.
 *
 * 1. Makes sure what the tests need is there: Debian packages (oracles python3-omegaconf and
 *    python3-jinja2, shellcheck, squashfs-tools, skopeo, umoci, docker-registry, and the tools the
 *    registry scripts use: jq, curl, apache2-utils, zstd, openssl) are installed with
 *    apt-get when missing and we are root; the local Slurm cluster from ../shared/slurm is started.
 *    Without root or apt, it says what is missing and the tests that need it report it.
 * 2. Runs `deno test -A --parallel` on the test files (or the paths given as arguments), then the
 *    files that share the local Slurm cluster one after the other.
 * 3. Ends with one plain line `N passed, N failed` and exits non-zero when anything failed.
 * The tests' temporary files go under one TMPDIR of the run, removed after a green run.
 */
import * as path from "../lib/path.ts";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const SHARED = path.resolve(ROOT, "..", "shared");
const APT_PACKAGES = [
  "python3-omegaconf",
  "python3-jinja2",
  "shellcheck",
  "squashfs-tools",
  "skopeo",
  "umoci",
  "docker-registry",
  "git",
  "time",
  "jq",
  "curl",
  "apache2-utils",
  "zstd",
  "openssl",
  "zsh",
  "fish",
  "tmux",
  "python3-torch",
  "openssh-server",
  "openssh-client",
  "rsync",
];

async function sh(
  cmd: string,
  args: string[],
  quiet = false,
): Promise<{ code: number; out: string }> {
  try {
    const r = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
    if (!quiet && r.code !== 0) console.error(out.trim().split("\n").slice(-15).join("\n"));
    return { code: r.code, out };
  } catch (err) {
    return { code: 127, out: String(err) };
  }
}

async function ensurePackages(): Promise<void> {
  const missing: string[] = [];
  for (const p of APT_PACKAGES) {
    const r = await sh("dpkg-query", ["-W", "-f=${Status}", p], true);
    if (!r.out.includes("install ok installed")) missing.push(p);
  }
  if (missing.length === 0) return;
  const isRoot = Deno.uid?.() === 0;
  if (!isRoot) {
    console.error(
      `test setup: missing Debian packages (need root to install): ${missing.join(" ")}`,
    );
    return;
  }
  console.error(`test setup: apt-get install ${missing.join(" ")}`);
  await sh("apt-get", ["update", "-qq"]);
  const r = await sh("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing]);
  if (r.code !== 0) {
    console.error("test setup: apt-get install failed; dependent tests will report it");
  }
}

async function ensureSlurm(): Promise<void> {
  const script = path.join(SHARED, "slurm", "start-local-slurm.sh");
  try {
    Deno.statSync(script);
  } catch {
    console.error(`test setup: ${script} not found; Slurm integration tests will report it`);
    return;
  }
  const ping = await sh("sinfo", ["-h", "-o", "%T"], true);
  if (ping.code === 0 && /idle|mix|alloc/.test(ping.out)) return;
  if (Deno.uid?.() !== 0) {
    console.error("test setup: the local Slurm cluster needs root to start");
    return;
  }
  console.error("test setup: starting the local Slurm cluster");
  const r = await sh("bash", [script]);
  if (r.code !== 0) console.error("test setup: Slurm did not start; Slurm tests will report it");
}

/**
 * Test files that use the one local Slurm cluster: they run one after the other, after the rest,
 * because one of them stops and restarts slurmctld (a fault test) and would break the others.
 * The multinode_* files start their own private 2-/3-node clusters (tests/multinode_cluster.ts):
 * serial too, as they share those clusters' directories and ports.
 */
// multiuser_*: real users and (multiuser_jobs) the shared Slurm cluster; each builds the bundle.
// secrets_slurm: real Slurm runs scanned for leaked secrets.
// ssh_tunnel: sshd in front of the shared Slurm cluster, a local user of its own (the "laptop").
// long_runs_slurm: its own private Slurm instance, slow (time limits are checked every ~30 s).
const SERIAL =
  /(^|\/)(slurm_integration|recipes_slurm|run_slurm|squash_enroot|cli_validate_slurm|secrets_slurm|multiuser_\w+|follow_pending|doctor|long_runs_slurm|multinode_ray|multinode_ddp|ssh_tunnel|ssh_jobs_role|ssh_eval)\.test\.ts$/;

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = path.join(dir, e.name);
    if (e.isDirectory) out.push(...testFiles(p));
    else if (/[._]test\.ts$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

/** Run `deno test` on `files`, echo its output, return its exit code and its counts. */
async function denoTest(
  files: readonly string[],
  parallel: boolean,
  tmp: string,
): Promise<{ code: number; passed: number; failed: number }> {
  if (files.length === 0) return { code: 0, passed: 0, failed: 0 };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", ...(parallel ? ["--parallel"] : []), ...files],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1", TMPDIR: tmp },
  }).spawn();
  let tail = "";
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    tail = (tail + dec.decode(chunk, { stream: true })).slice(-4096);
  }
  const { code } = await child.status;
  // deno test's summary: "ok | 42 passed (3 steps) | 0 failed (4s)" or "FAILED | 40 passed | 2 failed".
  const summary = tail.split("\n").filter((l) => / passed/.test(l) && / failed/.test(l)).pop() ??
    "";
  const m = /(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(summary);
  if (m) return { code, passed: Number(m[1]), failed: Number(m[2]) };
  return { code, passed: 0, failed: code === 0 ? 0 : 1 }; // the runner itself failed: count it
}

async function main(): Promise<number> {
  await ensurePackages();
  await ensureSlurm();
  const all = Deno.args.length > 0
    ? Deno.args.flatMap((
      a,
    ) => (Deno.statSync(path.resolve(ROOT, a)).isDirectory
      ? testFiles(path.resolve(ROOT, a))
      : [path.resolve(ROOT, a)])
    )
    : testFiles(path.join(ROOT, "tests"));
  // The tests' temporary files (homes, job dirs, images, clusters' scratch: tens of GB over many
  // runs) go to one directory of this run: TMPDIR for the tests and all they start. Sticky and
  // world-writable like /tmp, since the multi-user tests make files there as other users. Removed
  // after a green run; kept, and named, after a failure so it can be looked at.
  const tmp = Deno.makeTempDirSync({ prefix: "nemotron-tests-" });
  Deno.chmodSync(tmp, 0o1777);
  const first = await denoTest(all.filter((f) => !SERIAL.test(f)), true, tmp);
  const second = await denoTest(all.filter((f) => SERIAL.test(f)), false, tmp);
  const passed = first.passed + second.passed;
  const failed = first.failed + second.failed;
  if (failed === 0 && first.code === 0 && second.code === 0) {
    try {
      Deno.removeSync(tmp, { recursive: true });
    } catch (err) {
      console.error(`test cleanup: could not remove ${tmp} entirely: ${err}`);
    }
  } else {
    console.error(`the tests' temporary files are kept in ${tmp}`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  return first.code !== 0 || second.code !== 0 || failed > 0 ? 1 : 0;
}

Deno.exit(await main());
