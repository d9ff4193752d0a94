/**
 * Secrets never leave: a REAL Slurm run (the shared local cluster, bare-metal profile) and a real
 * local run, through the CLI, with secrets in every place a user keeps them — env.toml `env_vars`,
 * the environment (WANDB_API_KEY, HF_TOKEN), files in the checkout (`.env`, `.netrc`, an SSH key,
 * a PEM), a secret passthrough argument (`--password=…`) — then every byte nemotron left behind is
 * scanned: the whole remote_job_dir (job dirs, sbatch.sh, job.json, configs, code/, logs, the
 * decompressed code.tar.gz) and NEMOTRON_HOME (the job store's sqlite file, artifacts).
 *
 * The job must still get the secrets: a `python3` wrapper first on PATH (the independent probe)
 * records sha256 digests of its arguments and of MY_API_KEY as the task sees them, so the test
 * checks the task received the real values without any file holding them in clear.
 *
 * The same run checks the subdirectory case: started from `<checkout>/sub`, a config path
 * `${oc.env:PWD}/probe.txt` must point at a file that exists in the job's code dir.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { runCli, writeTree } from "./cli_helpers.ts";
import { releaseRequeueHolds, slurmTest, tempJobRoot } from "./slurm_cluster.ts";

const DENO_DIR = Deno.env.get("DENO_DIR") ||
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

const SECRETS = {
  envToml: "envtoml-Sekr3t-7f31a9",
  dbPass: "dbpass-Hunter2-55c0",
  wandb: "wandb-Env-Secret-0b8e21",
  hf: "hf_EnvToken_93d1c4",
  dotenv: "dotenv-Secret-4411aa",
  netrc: "netrc-Secret-9920bb",
  sshKey: "sshkey-Secret-71c3dd",
  pem: "pem-Secret-1a2b3c",
  arg: "cliarg-Passw0rd-e5f6",
  argHf: "cliarg-HfTok-8899",
};

async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function git(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: {
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@example.com",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@example.com",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_CONFIG_NOSYSTEM: "1",
    },
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** Every regular file under `dir` (not following symlinks). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory) walk(p);
      else if (e.isFile) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** `file:secret-name` for every secret found in the bytes of the files (gz archives decompressed). */
async function leaks(files: readonly string[], secrets: Record<string, string>): Promise<string[]> {
  const found: string[] = [];
  for (const f of files) {
    let bytes = Deno.readFileSync(f);
    if (f.endsWith(".tar.gz")) {
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    }
    const text = new TextDecoder("latin1").decode(bytes);
    for (const [name, value] of Object.entries(secrets)) {
      if (text.includes(value)) found.push(`${f}: ${name}`);
    }
  }
  return found;
}

/**
 * A checkout with secrets in files, its own env.toml (with remote_job_dir INSIDE the checkout, so
 * the second job of a pipeline would see the first one's job dir), a subdirectory `sub/` with a
 * probe file, and a `python3` wrapper outside it that records digests of what the task received.
 */
async function site() {
  const root = tempJobRoot("nemotron-secrets-");
  const repo = path.join(root, "repo");
  const rjd = path.join(repo, "rjd");
  const home = path.join(root, "home");
  const marks = path.join(root, "marks");
  const bin = path.join(root, "bin");
  await writeTree(repo, {
    "README.md": "a checkout\n",
    "sub/probe.txt": "probe\n",
    ".env": `DB_PASS=${SECRETS.dotenv}\n`,
    ".netrc": `machine api.wandb.ai login user password ${SECRETS.netrc}\n`,
    "keys/id_ed25519": `-----BEGIN OPENSSH PRIVATE KEY-----\n${SECRETS.sshKey}\n`,
    "certs/client.pem": `${SECRETS.pem}\n`,
    "env.toml": `[cluster]
executor = "slurm"
remote_job_dir = "${rjd}"
time = "00:10:00"
env_vars = { MY_API_KEY = "${SECRETS.envToml}", DB_PASS = "${SECRETS.dbPass}" }
`,
  });
  // An owner-only file that is not on the deny list: it ships, and stays owner-only.
  Deno.writeTextFileSync(path.join(repo, "sub", "private.cfg"), "p\n", { mode: 0o600 });
  Deno.chmodSync(path.join(repo, "sub", "private.cfg"), 0o600);
  await git(repo, "init", "-q");
  await git(repo, "add", "README.md", "sub/probe.txt");
  await git(repo, "commit", "-qm", "init");
  await writeTree(bin, {
    "python3": `#!/bin/bash
mkdir -p "$NEMOTRON_TEST_MARKS"
for a in "$@"; do printf '%s' "$a" | sha256sum | cut -d' ' -f1 >> "$NEMOTRON_TEST_MARKS/args"; done
printf '%s' "\${MY_API_KEY:-}" | sha256sum | cut -d' ' -f1 >> "$NEMOTRON_TEST_MARKS/env"
printf '%s' "\${DB_PASS:-}" | sha256sum | cut -d' ' -f1 >> "$NEMOTRON_TEST_MARKS/env"
printf '%s' "\${WANDB_API_KEY:-}" | sha256sum | cut -d' ' -f1 >> "$NEMOTRON_TEST_MARKS/env"
exec /usr/bin/python3 "$@"
`,
  });
  Deno.chmodSync(path.join(bin, "python3"), 0o755);
  for (const d of [root, repo, home]) Deno.mkdirSync(d, { recursive: true });
  const env = {
    HOME: home,
    NEMOTRON_HOME: path.join(home, ".nemotron"),
    NEMOTRON_ENV_FILE: path.join(repo, "env.toml"),
    NEMOTRON_PYTHON: path.join(bin, "python3"),
    NEMOTRON_TEST_MARKS: marks,
    PATH: `${bin}:${Deno.env.get("PATH")}`,
    WANDB_API_KEY: SECRETS.wandb,
    HF_TOKEN: SECRETS.hf,
    DENO_DIR,
  };
  return { root, repo, rjd, home, marks, env };
}

function marksOf(file: string): Set<string> {
  try {
    return new Set(Deno.readTextFileSync(file).split("\n").filter(Boolean));
  } catch {
    return new Set();
  }
}

slurmTest(
  "secrets: a real Slurm pipeline from a subdirectory leaves no secret in any file, the task gets them all",
  async () => {
    const s = await site();
    const sub = path.join(s.repo, "sub");
    const r = await runCli([
      "demo",
      "pipe",
      "-c",
      "tiny",
      "-b",
      "cluster",
      "--json",
      "+probe=${oc.env:PWD}/probe.txt",
      "--",
      `--password=${SECRETS.arg}`,
      "--hf-token",
      SECRETS.argHf,
    ], { cwd: sub, env: s.env });
    assert.equal(r.code, 0, r.stderr);
    for (const v of Object.values(SECRETS)) {
      assert.ok(!r.stdout.includes(v) && !r.stderr.includes(v), `printed ${v}`);
    }
    const jobs: { slurm_job_id: string; job_dir: string }[] = JSON.parse(r.stdout).jobs;
    assert.equal(jobs.length, 2);
    for (const j of jobs) {
      const stop = new AbortController();
      const holds = releaseRequeueHolds(j.slurm_job_id, stop.signal);
      try {
        const end = Date.now() + 120_000;
        for (;;) {
          const st = await runCli(["jobs", "status", j.slurm_job_id, "--json"], {
            cwd: sub,
            env: s.env,
          });
          assert.equal(st.code, 0, st.stderr);
          const status = JSON.parse(st.stdout);
          if (status.terminal) {
            assert.equal(status.state, "COMPLETED", st.stdout);
            break;
          }
          assert.ok(Date.now() < end, `job ${j.slurm_job_id} not done in time`);
          await new Promise((res) => setTimeout(res, 500));
        }
      } finally {
        stop.abort();
        await holds;
      }
    }

    // The task received every secret: passthrough values as argv, env.toml and environment
    // values in its environment.
    const args = marksOf(path.join(s.marks, "args"));
    assert.ok(args.has(await sha256(`--password=${SECRETS.arg}`)), "--password value not received");
    assert.ok(args.has(await sha256(SECRETS.argHf)), "--hf-token value not received");
    const env = marksOf(path.join(s.marks, "env"));
    for (const v of [SECRETS.envToml, SECRETS.dbPass, SECRETS.wandb]) {
      assert.ok(env.has(await sha256(v)), `the task did not get ${v}`);
    }

    // The private env files are gone after the jobs; then no file holds any secret.
    const secretsDirs = [...Deno.readDirSync(s.rjd)].filter((e) =>
      e.name.startsWith(".nemotron-secrets")
    );
    assert.ok(secretsDirs.length > 0, "no secrets dir: the secrets did not take that path");
    for (const d of secretsDirs) assert.deepEqual(filesUnder(path.join(s.rjd, d.name)), []);
    const files = [...filesUnder(s.rjd), ...filesUnder(s.home)];
    assert.ok(files.some((f) => f.endsWith("jobs.db")), "the job store was not found");
    assert.ok(files.some((f) => f.endsWith("code.tar.gz")), "no code package found");
    assert.ok(files.some((f) => /\/logs\/log-.*\.out$/.test(f)), "no task log found");
    assert.deepEqual(await leaks(files, SECRETS), []);

    // The deny list held: no secret file, no other job's dir in either package.
    for (const j of jobs) {
      const code = path.join(j.job_dir, "code");
      for (const rel of [".env", ".netrc", "keys/id_ed25519", "certs/client.pem", "env.toml"]) {
        assert.throws(() => Deno.lstatSync(path.join(code, rel)), Deno.errors.NotFound, rel);
      }
      assert.throws(() => Deno.lstatSync(path.join(code, "rjd")), Deno.errors.NotFound);
      // Owner-only stays owner-only in code/ and the archive is private.
      assert.equal(Deno.statSync(path.join(code, "sub", "private.cfg")).mode! & 0o077, 0);
      assert.equal(Deno.statSync(path.join(code, "config.json")).mode! & 0o077, 0); // json demo
      assert.equal(Deno.statSync(path.join(j.job_dir, "code.tar.gz")).mode! & 0o777, 0o600);
      // The train config is owner-only; the path rewrite from the subdirectory and the package
      // agree: /nemo_run/code/sub/probe.txt is code/sub/probe.txt.
      const trainFile = filesUnder(path.join(j.job_dir, "configs")).find((f) =>
        path.basename(f).startsWith("train.")
      )!;
      assert.equal(Deno.statSync(trainFile).mode! & 0o777, 0o600);
      const probe = /\/nemo_run\/code\/[^"'\s,}]*probe\.txt/.exec(Deno.readTextFileSync(trainFile));
      assert.ok(probe, Deno.readTextFileSync(trainFile));
      assert.equal(probe[0], "/nemo_run/code/sub/probe.txt");
      assert.equal(
        Deno.readTextFileSync(path.join(code, probe[0].slice("/nemo_run/code/".length))),
        "probe\n",
      );
    }
    // The sbatch script references the secret argument, never its value.
    const sbatch = Deno.readTextFileSync(path.join(jobs[0].job_dir, "sbatch.sh"));
    assert.match(sbatch, /'--password=\$\{NEMOTRON_SECRET_ARG_1\}'/);
  },
);

slurmTest(
  "secrets: from the checkout's root the path rewrite and the package agree too",
  async () => {
    const s = await site();
    const r = await runCli([
      "demo",
      "data",
      "-c",
      "tiny",
      "-b",
      "cluster",
      "--json",
      "+probe=${oc.env:PWD}/sub/probe.txt",
      `+probe_abs=${s.repo}/sub/probe.txt`,
    ], { cwd: s.repo, env: s.env });
    assert.equal(r.code, 0, r.stderr);
    const [job] = JSON.parse(r.stdout).jobs;
    const trainFile = filesUnder(path.join(job.job_dir, "configs")).find((f) =>
      path.basename(f).startsWith("train.")
    )!;
    const text = Deno.readTextFileSync(trainFile);
    const found = text.match(/\/nemo_run\/code\/[^"'\s,}]*probe\.txt/g) ?? [];
    assert.deepEqual(found, ["/nemo_run/code/sub/probe.txt", "/nemo_run/code/sub/probe.txt"]);
    assert.equal(
      Deno.readTextFileSync(path.join(job.job_dir, "code", "sub", "probe.txt")),
      "probe\n",
    );
    await runCli(["jobs", "cancel", job.slurm_job_id], { cwd: s.repo, env: s.env });
  },
);

Deno.test({
  name: "secrets: a real local run with --password=… passes it to the script and writes it nowhere",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await site();
    const r = await runCli(
      ["demo", "data", "-c", "tiny", "--", `--password=${SECRETS.arg}`, "--api-key", SECRETS.argHf],
      { cwd: s.repo, env: { ...s.env, NEMOTRON_ENV_FILE: "" } },
    );
    assert.equal(r.code, 0, r.stderr);
    const args = marksOf(path.join(s.marks, "args"));
    assert.ok(args.has(await sha256(`--password=${SECRETS.arg}`)));
    assert.ok(args.has(await sha256(SECRETS.argHf)));
    const files = [...filesUnder(path.join(s.repo, ".nemotron")), ...filesUnder(s.home)];
    assert.ok(files.some((f) => f.endsWith("job.yaml")));
    assert.deepEqual(await leaks(files, { arg: SECRETS.arg, argHf: SECRETS.argHf }), []);
    assert.ok(!r.stdout.includes(SECRETS.arg) && !r.stderr.includes(SECRETS.arg));
  },
});
