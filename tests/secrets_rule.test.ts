/**
 * The one secret rule (lib/secrets.ts) and the secret-argument mechanism (lib/exec/run_env.ts):
 * names checked against a hand-written table, redaction of config trees at any depth, and the
 * `${NEMOTRON_SECRET_ARG_<n>}` references expanded by a real bash (the independent check), the
 * rendered sbatch script checked with `bash -n` and shellcheck.
 */
import assert from "node:assert/strict";
import {
  isSecretName,
  redactArgv,
  REDACTED,
  redactEnv,
  redactSecrets,
  secretArgs,
} from "../lib/secrets.ts";
import { hideSecretArgs, SECRET_ARG_EXPANDER, shellJoinSecretRefs } from "../lib/exec/run_env.ts";
import { buildSlurmJob, renderSbatch, secretValues } from "../lib/exec/slurm.ts";
import { initialManifest } from "../lib/exec/job_dir.ts";

const SECRET = [
  "API_KEY",
  "MY_API_KEY",
  "APIKEY",
  "apiKey",
  "api_key",
  "WANDB_API_KEY",
  "NGC_API_KEY",
  "HF_TOKEN",
  "hfToken",
  "AUTHTOKEN",
  "hf-token",
  "CLIENT_SECRET",
  "AWS_SECRET_ACCESS_KEY",
  "PASSWORD",
  "DBPASSWORD",
  "password",
  "DB_PASSWD",
  "DB_PASS",
  "db-pass",
  "dbPass",
  "PASS",
  "MYSQL_PWD",
  "db_pwd",
  "GOOGLE_APPLICATION_CREDENTIALS",
  "credential",
  "SSH_PASSPHRASE",
  "NEMOTRON_SECRET_ARG_1",
  "wandb.api_key",
  "MONKEY", // documented false positives: a part ending in KEY
  "monkey_patch",
];

const NOT_SECRET = [
  "KEYBOARD",
  "TOKENIZER",
  "tokenizer_model",
  "max_tokens",
  "NUM_TOKENS",
  "PASSES",
  "num_passes",
  "PASSAGE",
  "BYPASS",
  "COMPASS",
  "PWD",
  "OLDPWD",
  "PATH",
  "HF_HOME",
  "WANDB_PROJECT",
  "keys_dir_count", // KEYS: a plural part is not a key
];

Deno.test("secrets: the rule — word parts ending in KEY/TOKEN, containing SECRET/PASSWORD/…, PASS, PWD", () => {
  for (const n of SECRET) assert.equal(isSecretName(n), true, `${n} should be secret`);
  for (const n of NOT_SECRET) assert.equal(isSecretName(n), false, `${n} should not be secret`);
});

Deno.test("secrets: redactSecrets hides literal strings under secret-looking keys at any depth", () => {
  const tree = new Map<string, unknown>([
    ["wandb", new Map<string, unknown>([["api_key", "wk-123"], ["project", "p"]])],
    ["train", new Map<string, unknown>([["max_tokens", 512], ["tokenizer_model", "/m/tok"]])],
    ["db", { DB_PASS: "hunter2", ref: "${oc.env:DB_PASS}", DB_PWD: "${oc.env:X}" }],
    ["list", [{ hf_token: "hf_x" }]],
    ["empty_token", ""],
  ]);
  const r = redactSecrets(tree) as Map<string, unknown>;
  assert.deepEqual(
    r,
    new Map<string, unknown>([
      ["wandb", new Map<string, unknown>([["api_key", REDACTED], ["project", "p"]])],
      ["train", new Map<string, unknown>([["max_tokens", 512], ["tokenizer_model", "/m/tok"]])],
      ["db", { DB_PASS: REDACTED, ref: "${oc.env:DB_PASS}", DB_PWD: "${oc.env:X}" }],
      ["list", [{ hf_token: REDACTED }]],
      ["empty_token", ""],
    ]),
  );
  assert.deepEqual(redactEnv({ DB_PASS: "x", PWD: "/home/u", N: "1" }), {
    DB_PASS: REDACTED,
    PWD: "/home/u",
    N: "1",
  });
});

Deno.test("secrets: secretArgs / redactArgv find --opt=value, --opt value and NAME=value", () => {
  const argv = [
    "--password=hunter2",
    "--hf-token",
    "hf_abc",
    "--db-pass",
    "pw",
    "DB_PWD=x1",
    "--steps",
    "5",
    "--max-tokens",
    "512",
    "--passes",
    "3",
    "--api-key",
    "--next",
  ];
  assert.deepEqual(secretArgs(argv).map((s) => [s.index, s.prefix, s.value]), [
    [0, "--password=", "hunter2"],
    [2, "", "hf_abc"],
    [4, "", "pw"],
    [5, "DB_PWD=", "x1"],
  ]);
  assert.deepEqual(redactArgv(argv), [
    "--password=******",
    "--hf-token",
    "******",
    "--db-pass",
    "******",
    "DB_PWD=******",
    ...argv.slice(6),
  ]);
});

async function bash(args: string[], env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command("bash", { args, env, stdout: "piped", stderr: "piped" })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

Deno.test("secrets: hidden arguments are references that bash expands to the real values", async () => {
  const tricky = `it's "quoted" $HOME \`x\` \\ ;|&`;
  const { argv, env } = hideSecretArgs([
    "--password=" + tricky,
    "--hf-token",
    "hf_abc",
    "--steps",
    "5",
  ]);
  assert.deepEqual(argv, [
    "--password=${NEMOTRON_SECRET_ARG_1}",
    "--hf-token",
    "${NEMOTRON_SECRET_ARG_2}",
    "--steps",
    "5",
  ]);
  assert.deepEqual(env, { NEMOTRON_SECRET_ARG_1: tricky, NEMOTRON_SECRET_ARG_2: "hf_abc" });
  const want = `--password=${tricky}\n--hf-token\nhf_abc\n--steps\n5\n`;
  // The argv expander (Slurm tasks).
  const viaExpander = await bash(
    ["-c", SECRET_ARG_EXPANDER, "nemotron-args", "printf", "%s\\n", ...argv],
    env,
  );
  assert.equal(viaExpander, want);
  // A `bash -c` command line (runspec run.cmd).
  const viaShell = await bash(["-c", `printf '%s\\n' ${shellJoinSecretRefs(argv)}`], env);
  assert.equal(viaShell, want);
  assert.ok(!shellJoinSecretRefs(argv).includes("hf_abc"));
});

Deno.test("secrets: a Slurm job with --password=… keeps the value out of sbatch.sh and job.json", async () => {
  const job = buildSlurmJob({
    name: "demo/data",
    profile: { remote_job_dir: "/var/tmp/x", env_vars: { DB_PASS: "dbp-secret" } },
    mode: "batch",
    launch: "direct",
    command: ["python3", "main.py", "--password=pw-secret", "--hf-token", "hf-secret"],
    env: { WANDB_API_KEY: "wk-secret", PLAIN: "1" },
    jobKey: "k1",
    secretsId: "0".repeat(32),
  });
  const script = await renderSbatch(job);
  const manifest = JSON.stringify(initialManifest(job));
  for (const v of ["pw-secret", "hf-secret", "dbp-secret", "wk-secret"]) {
    assert.ok(!script.includes(v), `sbatch.sh holds ${v}`);
    assert.ok(!manifest.includes(v), `job.json holds ${v}`);
  }
  assert.deepEqual(secretValues(job), {
    DB_PASS: "dbp-secret",
    NEMOTRON_SECRET_ARG_1: "pw-secret",
    NEMOTRON_SECRET_ARG_2: "hf-secret",
    WANDB_API_KEY: "wk-secret",
  });
  assert.deepEqual(job.command, [
    "python3",
    "main.py",
    "--password=${NEMOTRON_SECRET_ARG_1}",
    "--hf-token",
    "${NEMOTRON_SECRET_ARG_2}",
  ]);
  assert.equal(job.taskArgv[0], "bash");
  assert.equal(job.taskArgv[2], SECRET_ARG_EXPANDER);
  // The script is valid shell and shellcheck-clean.
  const file = await Deno.makeTempFile({ suffix: ".sh" });
  Deno.writeTextFileSync(file, script);
  for (const [cmd, args] of [["bash", ["-n", file]], ["shellcheck", [file]]] as const) {
    const out = await new Deno.Command(cmd, { args: [...args], stdout: "piped", stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    assert.equal(out.code, 0, `${cmd}: ${dec.decode(out.stdout)}${dec.decode(out.stderr)}`);
  }
  // Running the script's task line through bash gives the real values to the command.
  const { env } = hideSecretArgs(["--password=pw-secret", "--hf-token", "hf-secret"]);
  const got = await bash(
    ["-c", SECRET_ARG_EXPANDER, "nemotron-args", "printf", "%s\\n", ...job.command.slice(2)],
    env,
  );
  assert.equal(got, "--password=pw-secret\n--hf-token\nhf-secret\n");
});

Deno.test("secrets: redactSecrets keeps class instances (config floats) as they are", async () => {
  const { Float } = await import("../lib/config/tree.ts");
  const f = new Float(0.1);
  const r = redactSecrets(new Map<string, unknown>([["valid_fraction", f], ["x", [f]]]));
  assert.equal((r as Map<string, unknown>).get("valid_fraction"), f);
  assert.deepEqual((r as Map<string, unknown>).get("x"), [f]);
});

Deno.test("secrets: multi-node torchrun in a container — the expander wraps the launcher, script stays valid", async () => {
  const job = buildSlurmJob({
    name: "nano3/pretrain",
    profile: { remote_job_dir: "/var/tmp/x", nodes: 2, gpus_per_node: 8 },
    mode: "batch",
    launch: "torchrun",
    image: "/images/nemo.sqsh",
    command: ["main.py", "--config", "config.yaml", "--api-key", "ak-secret"],
    jobKey: "k2",
    secretsId: "1".repeat(32),
  });
  const script = await renderSbatch(job);
  assert.ok(!script.includes("ak-secret"));
  assert.deepEqual(job.taskArgv.slice(0, 4), ["bash", "-c", SECRET_ARG_EXPANDER, "nemotron-args"]);
  assert.equal(job.taskArgv.at(-1), "${NEMOTRON_SECRET_ARG_1}");
  assert.match(script, /--container-env=[^ ]*NEMOTRON_SECRET_ARG_1/);
  const file = await Deno.makeTempFile({ suffix: ".sh" });
  Deno.writeTextFileSync(file, script);
  for (const [cmd, args] of [["bash", ["-n", file]], ["shellcheck", [file]]] as const) {
    const out = await new Deno.Command(cmd, { args: [...args], stdout: "piped", stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    assert.equal(out.code, 0, `${cmd}: ${dec.decode(out.stdout)}${dec.decode(out.stderr)}`);
  }
});

Deno.test("secrets: a local run.cmd keeps passthrough arguments as separate words (redactable), bash passes them on", async () => {
  const { launchArgv } = await import("../lib/exec/local_run.ts");
  const runspec = { run: { cmd: "printf '%s\\n' {script} {config}", launch: "direct" } };
  const argv = launchArgv({
    // deno-lint-ignore no-explicit-any
    runspec: runspec as any,
    script: "s.py",
    config: "c y.yaml",
    passthrough: ["--password=pw-x", "two words"],
  });
  assert.deepEqual(redactArgv(argv).slice(3), ["nemotron-cmd", "--password=******", "two words"]);
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stdout: "piped" }).output();
  assert.equal(
    new TextDecoder().decode(out.stdout),
    "s.py\nc y.yaml\n--password=pw-x\ntwo words\n",
  );
  // Without passthrough the command line is unchanged.
  assert.deepEqual(
    // deno-lint-ignore no-explicit-any
    launchArgv({ runspec: runspec as any, script: "s.py", config: "c.yaml", passthrough: [] }),
    ["bash", "-c", "printf '%s\\n' s.py c.yaml"],
  );
});
