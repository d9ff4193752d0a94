/**
 * "A typo never launches a job" and the robustness of the CLI process, where the user meets them:
 * through the CLI, in temp dirs, with the real python3.
 *
 * - near-miss options after a recipe command (`--dryrun`, `--dry_run`, `--btach`, `-dry-run`,
 *   `--forcesquash`) are exit 2 with "did you mean", nothing written; passthrough stays possible;
 * - env.toml profile keys: unknown keys are exit 2 with file:line, the source line and "did you
 *   mean" in `env show`, `doctor` and submission; other executors' and ssh keys are known; the
 *   README's env.toml reference lists exactly the keys of `lib/profile_keys.ts`;
 * - `env list` with an extends cycle; a script's own exit code 2; Ctrl-C (a real SIGINT to the
 *   process group); stdout closed by the reader; `--stage` without a Slurm profile; no tracked
 *   `__pycache__`.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { type CliResult, MAIN, ROOT, runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { PROFILE_KEY_NAMES } from "../lib/profile_keys.ts";
import { nearMissOption } from "../lib/cli/args.ts";

const DENO_DIR = Deno.env.get("DENO_DIR") ||
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

interface Sandbox {
  readonly cwd: string;
  readonly home: string;
  readonly nemotronHome: string;
  readonly env: Record<string, string>;
  run(args: readonly string[], extraEnv?: Record<string, string>): Promise<CliResult>;
}

async function sandbox(files: Record<string, string> = {}): Promise<Sandbox> {
  const cwd = await tempDir("nemotron-validate-cwd-");
  const home = await tempDir("nemotron-validate-home-");
  await writeTree(cwd, files);
  const nemotronHome = path.join(home, ".nemotron");
  const env = { HOME: home, NEMOTRON_HOME: nemotronHome, NEMOTRON_ENV_FILE: "", DENO_DIR };
  return {
    cwd,
    home,
    nemotronHome,
    env,
    run: (args, extraEnv = {}) => runCli(args, { cwd, env: { ...env, ...extraEnv } }),
  };
}

/** Every path under `dir` (relative, sorted); [] when it does not exist. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of Deno.readDirSync(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory) walk(path.join(d, e.name), r);
    }
  };
  try {
    walk(dir, "");
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

const SLURM_PROFILE = (rjd: string) =>
  `[cluster]\nexecutor = "slurm"\naccount = "acct"\nremote_job_dir = "${rjd}"\n`;

// ---------------------------------------------------------------------------------------------
// §1 near-miss options

Deno.test("near-miss options after a recipe command: exit 2, did you mean, nothing written or submitted", async () => {
  const rjd = path.join(await tempDir("nemotron-validate-rjd-"), "rjd");
  const sb = await sandbox({ "env.toml": SLURM_PROFILE(rjd) });
  const cases: [string[], string][] = [
    [["--dryrun"], "--dry-run"],
    [["--dry_run"], "--dry-run"],
    [["-dry-run"], "--dry-run"],
    [["--forcesquash"], "--force-squash"],
    [["--btach", "cluster"], "--batch"],
    [["--dryrun", "-b", "cluster"], "--dry-run"],
  ];
  for (const [extra, want] of cases) {
    const r = await sb.run(["demo", "data", "-c", "tiny", ...extra]);
    assert.equal(r.code, 2, `${extra.join(" ")}: ${r.stderr}`);
    assert.ok(
      r.stderr.includes(`error: unknown option '${extra[0]}': did you mean ${want}?`),
      r.stderr,
    );
    assert.match(r.stderr, /hint: to pass .* to the script unchanged, put it after '--'/);
    assert.equal(r.stdout, "");
  }
  assert.deepEqual(tree(path.join(sb.cwd, ".nemotron")), [], "a local job dir was written");
  assert.deepEqual(tree(rjd), [], "something was written for Slurm");
  assert.deepEqual(tree(path.join(sb.nemotronHome, "artifacts")), []);
});

Deno.test("near-miss rule: typos of our options are caught, script options that merely look alike are not", () => {
  const caught: Record<string, string> = {
    "--dryrun": "--dry-run",
    "--Dry-Run": "--dry-run",
    "--dry_run=1": "--dry-run",
    "--dryrn": "--dry-run",
    "--btach": "--batch",
    "--rum": "--run",
    "--conifg": "--config",
    "--force_squash": "--force-squash",
    "--josn": "--json",
  };
  for (const [tok, want] of Object.entries(caught)) assert.equal(nearMissOption(tok), want, tok);
  for (
    const tok of [
      "--mock",
      "--stages",
      "--batch-size",
      "--run-name",
      "--config-path",
      "--jsonl",
      "--conf",
      "--debug",
      "--seed",
      "-v",
      "-t",
      "--task",
      "--force",
      "--dry",
    ]
  ) assert.equal(nearMissOption(tok), undefined, tok);
});

Deno.test("passthrough: after -- anything goes to the script; other tokens too, shown in the dry run and the job dir line", async () => {
  const sb = await sandbox();
  const dry = await sb.run(["demo", "data", "-c", "tiny", "-d", "--stages", "--", "--dryrun"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /data\.py --config \S+train\.json --stages --dryrun\n/);
  assert.deepEqual(tree(path.join(sb.cwd, ".nemotron")), []);

  const run = await sb.run(["demo", "data", "-c", "tiny", "--mock-flag", "--", "--dryrun"]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stderr,
    /^\[nemotron\] demo\/data: job dir \S+; script arguments: --mock-flag --dryrun$/m,
  );
});

// ---------------------------------------------------------------------------------------------
// §1 env.toml profile keys

Deno.test("README's env.toml reference lists exactly the profile keys nemotron knows", () => {
  const readme = Deno.readTextFileSync(path.join(ROOT, "README.md"));
  const start = readme.indexOf("### Profile keys");
  assert.ok(start > 0, "README has no '### Profile keys' table");
  const end = readme.indexOf("\n#", start + 5);
  const rows = readme.slice(start, end).split("\n").filter((l) => /^\| `/.test(l));
  const documented = rows.map((l) => /^\| `([^`]+)`/.exec(l)![1]);
  assert.equal(new Set(documented).size, documented.length, "a key is documented twice");
  const known = new Set(PROFILE_KEY_NAMES);
  assert.deepEqual(documented.filter((k) => !known.has(k)), [], "documented but unknown to code");
  assert.deepEqual(
    PROFILE_KEY_NAMES.filter((k) => !documented.includes(k)),
    [],
    "known to code but not documented",
  );
  for (const row of rows) {
    const cells = row.split("|").map((c) => c.trim());
    assert.ok(cells[3].length > 3, `no meaning for ${cells[1]}`);
  }
  // The keys other work adds are there already, and NeMo-Run's SlurmExecutor keys.
  for (
    const k of [
      "auto_resume",
      "max_restarts",
      "signal_before",
      "max_package_mb",
      "exclude",
      "additional_parameters",
      "srun_wait",
    ]
  ) assert.ok(known.has(k), k);
});

Deno.test("unknown profile keys: exit 2 with file:line, the source line and 'did you mean' in env show, doctor and submission", async () => {
  const rjd = path.join(await tempDir("nemotron-validate-rjd-"), "rjd");
  const envToml = [
    "[base]",
    'executor = "slurm"',
    `remote_job_dir = "${rjd}"`,
    "",
    "[cluster]",
    'extends = "base"',
    'partiton = "batch"',
    "",
    "[gpus]",
    'extends = "base"',
    "gpus_per_nod = 8",
    "",
  ].join("\n");
  const sb = await sandbox({ "env.toml": envToml });
  const file = path.join(sb.cwd, "env.toml");
  for (
    const [profile, line, key, near] of [
      ["cluster", 7, "partiton", "partition"],
      ["gpus", 11, "gpus_per_nod", "gpus_per_node"],
    ] as const
  ) {
    const show = await sb.run(["env", "show", profile]);
    assert.equal(show.code, 2, show.stderr);
    assert.ok(
      show.stderr.includes(`${file}:${line}: error: unknown key '${key}' in profile [${profile}]`),
      show.stderr,
    );
    assert.ok(show.stderr.includes(`  ${line} | ${envToml.split("\n")[line - 1]}`), show.stderr);
    assert.ok(show.stderr.includes(`did you mean ${near}?`), show.stderr);

    const doctor = await sb.run(["doctor", profile]);
    assert.equal(doctor.code, 2, doctor.stdout + doctor.stderr);
    assert.ok(
      doctor.stdout.includes(`${file}:${line}: error: unknown key '${key}'`),
      doctor.stdout,
    );
    assert.ok(doctor.stdout.includes(`did you mean ${near}?`), doctor.stdout);

    for (const mode of ["-b", "-r"]) {
      const submit = await sb.run(["demo", "data", "-c", "tiny", mode, profile]);
      assert.equal(submit.code, 2, submit.stderr);
      assert.ok(submit.stderr.includes(`${file}:${line}: error: unknown key '${key}'`));
      assert.ok(submit.stderr.includes(`did you mean ${near}?`), submit.stderr);
    }
  }
  assert.deepEqual(tree(rjd), [], "nothing may be written or submitted");
  assert.deepEqual(tree(path.join(sb.cwd, ".nemotron")), []);
});

Deno.test("known keys: other executors' keys are refused for what they ask and ssh keys are read by the tunnel, not as typos; interpolated variables are fine", async () => {
  const rjd = path.join(await tempDir("nemotron-validate-rjd-"), "rjd");
  const sb = await sandbox({
    "env.toml": [
      "[dock]",
      'executor = "docker"',
      'shm_size = "16g"',
      'ipc_mode = "host"',
      "",
      "[lep]",
      'executor = "lepton"',
      'resource_shape = "gpu.8xh100"',
      'node_group = "g"',
      "",
      "[remote]",
      'executor = "slurm"',
      'tunnel = "ssh"',
      'host = "login.example.com"',
      'user = "me"',
      "port = 2222",
      'identity = "~/.ssh/id_ed25519"',
      `remote_job_dir = "${rjd}"`,
      "",
      "[vars]",
      'executor = "slurm"',
      `base = "${rjd}"`,
      'remote_job_dir = "${base}/jobs"',
      "",
    ].join("\n"),
  });
  const dock = await sb.run(["demo", "data", "-c", "tiny", "-b", "dock", "-d"]);
  assert.equal(dock.code, 2);
  assert.match(dock.stderr, /executor 'docker' \(profile 'dock'\) is not supported/);
  assert.doesNotMatch(dock.stderr, /unknown key/);
  const lep = await sb.run(["demo", "data", "-c", "tiny", "-b", "lep", "-d"]);
  assert.equal(lep.code, 2);
  assert.match(lep.stderr, /executor 'lepton'/);
  // tunnel = "ssh" (## Submit from a laptop): its keys are read; a missing key file is bad input.
  const ssh = await sb.run(["demo", "data", "-c", "tiny", "-b", "remote", "-d"]);
  assert.equal(ssh.code, 2);
  assert.match(ssh.stderr, /profile 'remote': identity: key file .*id_ed25519 not found/);
  assert.doesNotMatch(ssh.stderr, /unknown key/);
  // keys another executor reads are not typos, but not silently dropped either
  const mixed = await sandbox({
    "env.toml": `[c]\nexecutor = "slurm"\nremote_job_dir = "${rjd}"\nshm_size = "16g"\n` +
      `[l]\nexecutor = "local"\naccount = "a"\n`,
  });
  const c = await mixed.run(["demo", "data", "-c", "tiny", "-b", "c", "-d"]);
  assert.equal(c.code, 0, c.stderr);
  assert.match(
    c.stderr,
    /warning: profile 'c': shm_size is read by the docker executor; the slurm executor ignores it/,
  );
  const l = await mixed.run(["demo", "data", "-c", "tiny", "-b", "l", "-d"]);
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stderr, /warning: profile 'l': account is read by the slurm executor/);
  const vars = await sb.run(["env", "show", "vars"]);
  assert.equal(vars.code, 0, vars.stderr);
  assert.ok(vars.stdout.includes(`remote_job_dir: ${rjd}/jobs`), vars.stdout);
});

// ---------------------------------------------------------------------------------------------
// §5 robustness

Deno.test("env list lists every profile when one has an extends cycle (marked), exit 0", async () => {
  const sb = await sandbox({
    "env.toml": [
      "[a]",
      'extends = "b"',
      "[b]",
      'extends = "a"',
      "[ok]",
      'account = "x"',
      "[child]",
      'extends = "ok"',
      "[typo]",
      'accont = "x"',
      "",
    ].join("\n"),
  });
  const r = await sb.run(["env", "list"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ {2}a {2}\(invalid: Circular profile inheritance detected: a;/m);
  assert.match(r.stdout, /^ {2}b {2}\(invalid: Circular profile inheritance detected: b;/m);
  assert.match(r.stdout, /^ {2}ok$/m);
  assert.match(r.stdout, /^ {2}child {2}\(extends ok\)$/m);
  assert.match(r.stdout, /^ {2}typo {2}\(invalid: unknown key 'accont' in profile \[typo\];/m);
  const json = await sb.run(["env", "list", "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const profiles = JSON.parse(json.stdout).profiles;
  assert.deepEqual(profiles.map((p: { name: string }) => p.name), [
    "a",
    "b",
    "ok",
    "child",
    "typo",
  ]);
  assert.equal(profiles[2].error, null);
  assert.match(profiles[0].error, /Circular/);
});

/** A PYTHONPATH dir whose sitecustomize exits with $DIE_CODE or sleeps when $SLEEP is set. */
async function probeDir(): Promise<string> {
  const dir = await tempDir("nemotron-validate-probe-");
  await writeTree(dir, {
    "sitecustomize.py": [
      "import os, sys, time",
      "if os.environ.get('DIE_CODE'):",
      "    print('script: giving up', file=sys.stderr, flush=True)",
      "    os._exit(int(os.environ['DIE_CODE']))",
      "if os.environ.get('SLEEP'):",
      "    print('started', flush=True)",
      "    time.sleep(60)",
      "",
    ].join("\n"),
  });
  return dir;
}

Deno.test("a script's own exit code 2 is kept; the last line says the script failed, not nemotron's input", async () => {
  const sb = await sandbox();
  const probe = await probeDir();
  const r = await sb.run(["demo", "data", "-c", "tiny"], { PYTHONPATH: probe, DIE_CODE: "2" });
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(
    lines[lines.length - 1],
    "  the script failed: exit code 2 is its own, not a nemotron error about your input",
  );
  assert.match(r.stderr, /error: demo\/data failed with exit code 2\n/);
});

Deno.test({
  name:
    "Ctrl-C (SIGINT to the process group) on a local run: 'interrupted', the job dir, exit 130, one traceback",
  sanitizeResources: false,
  fn: async () => {
    const sb = await sandbox();
    const probe = await probeDir();
    // setsid: nemotron and its python child get their own process group, as a shell job has.
    const child = new Deno.Command("setsid", {
      args: [Deno.execPath(), "run", "-A", "--quiet", MAIN, "demo", "data", "-c", "tiny"],
      cwd: sb.cwd,
      env: { ...sb.env, NO_COLOR: "1", PYTHONPATH: probe, SLEEP: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("started")) {
      const { value, done } = await reader.read();
      assert.ok(!done, "the script did not start");
      out += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    // The KeyboardInterrupt lands in sitecustomize, so python exits 1, not by SIGINT: nemotron
    // must still report the run as interrupted when the child's end is seen before the signal.
    Deno.kill(-child.pid, "SIGINT"); // setsid exec'd in place: its pid is the group id
    const res = await child.output();
    const stderr = new TextDecoder().decode(res.stderr);
    assert.equal(res.code, 130, stderr);
    const jobDir = /job dir (\S+)/.exec(stderr)![1];
    assert.ok(stderr.endsWith(`interrupted\n  job dir: ${jobDir}\n`), stderr);
    assert.doesNotMatch(stderr, /failed with exit code/);
    assert.equal(stderr.split("KeyboardInterrupt").length - 1, 1, stderr); // once, not twice
    assert.match(Deno.readTextFileSync(path.join(jobDir, "run.log")), /KeyboardInterrupt/);
  },
});

Deno.test("stdout closed by the reader (| head -1) during a local run: exit 0, no stack trace, run.log complete", async () => {
  const sb = await sandbox();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "demo", "pipe", "-c", "tiny"],
    cwd: sb.cwd,
    env: { ...sb.env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read(); // the first chunk, then go away like `head -1`
  await reader.cancel();
  const res = await child.output().catch(async () => ({
    code: (await child.status).code,
    stderr: new Uint8Array(),
  }));
  const stderr = new TextDecoder().decode(res.stderr);
  assert.equal(res.code, 0, stderr);
  assert.doesNotMatch(stderr, /BrokenPipe|Broken pipe|^ {4}at /m);
  const jobs = tree(path.join(sb.cwd, ".nemotron", "jobs")).filter((p) => p.endsWith("/run.log"));
  assert.equal(jobs.length, 2, jobs.join(" "));
  const trainLog = Deno.readTextFileSync(
    path.join(sb.cwd, ".nemotron", "jobs", jobs.find((j) => j.includes("demo-train"))!),
  );
  const steps = [...trainLog.matchAll(/^step (\d+)\/(\d+) /gm)];
  assert.ok(steps.length > 0, trainLog);
  assert.equal(steps[steps.length - 1][1], steps[0][2], "the train log stops before the last step");
});

Deno.test("--stage needs --run/--batch and a Slurm profile; pipelines refuse it", async () => {
  const sb = await sandbox({ "env.toml": '[here]\nexecutor = "local"\n' });
  const none = await sb.run(["demo", "data", "-c", "tiny", "--stage"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--stage requires --run or --batch/);
  const local = await sb.run(["demo", "data", "-c", "tiny", "--stage", "-b", "here"]);
  assert.equal(local.code, 2);
  assert.match(local.stderr, /--stage needs a Slurm profile; 'here' runs locally/);
  const pipe = await sb.run(["demo", "pipe", "-c", "tiny", "--stage", "-b", "here"]);
  assert.equal(pipe.code, 2);
  assert.match(pipe.stderr, /--stage stages one job, not a pipeline/);
  assert.deepEqual(tree(path.join(sb.cwd, ".nemotron")), []);
});

Deno.test("no __pycache__ is tracked and .gitignore keeps them out", async () => {
  try {
    Deno.statSync(path.join(ROOT, ".git"));
  } catch {
    console.log("skipped: not a git checkout");
    return;
  }
  const ls = await new Deno.Command("git", { args: ["ls-files"], cwd: ROOT, stdout: "piped" })
    .output();
  const tracked = new TextDecoder().decode(ls.stdout).split("\n");
  assert.deepEqual(tracked.filter((f) => /__pycache__|\.py[cod]$/.test(f)), []);
  const ignored = await new Deno.Command("git", {
    args: ["check-ignore", "-q", "recipes/nano3/stage0_pretrain/__pycache__/train.cpython-311.pyc"],
    cwd: ROOT,
  }).output();
  assert.equal(ignored.code, 0, "__pycache__ is not ignored");
});
