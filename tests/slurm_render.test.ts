/**
 * sbatch rendering: Python Jinja2 as an oracle (byte-identical output), golden scripts for the
 * container single-node, multi-node torchrun and custom-template cases (each through `bash -n` and
 * `shellcheck`), profile checks, and a property test that runs rendered container-mode scripts
 * under bash with a stub `srun` to see exactly which words and environment reach the task.
 * Update goldens deliberately with UPDATE_GOLDEN=1 (and read the diff).
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import fc from "fast-check";
import { buildSlurmJob, renderSbatch, slurmJobName, type SlurmJobSpec } from "../lib/exec/slurm.ts";
import { prepareJobDir } from "../lib/exec/job_dir.ts";
import { UsageError } from "../lib/errors.ts";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const GOLDEN = path.join(HERE, "golden", "slurm");
const dec = new TextDecoder();

async function run(cmd: string, args: string[], stdin?: string, env?: Record<string, string>) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Render with Python Jinja2 (one process for all cases). */
async function jinja2(cases: { template: string; context: unknown }[]): Promise<string[]> {
  const r = await run(
    "/usr/bin/python3",
    [path.join(GOLDEN, "jinja2_oracle.py")],
    JSON.stringify(cases),
  );
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function bashAndShellcheck(script: string): Promise<void> {
  const file = Deno.makeTempFileSync({ suffix: ".sh" });
  try {
    Deno.writeTextFileSync(file, script);
    const b = await run("bash", ["-n", file]);
    assert.equal(b.code, 0, `bash -n: ${b.stderr}`);
    const s = await run("shellcheck", ["-s", "bash", file]);
    assert.equal(s.code, 0, `shellcheck:\n${s.stdout}${s.stderr}\n--- script ---\n${script}`);
  } finally {
    Deno.removeSync(file);
  }
}

const BASE_PROFILE = {
  remote_job_dir: "/lustre/fs1/users/ada/nemotron",
  account: "coreai_dlalgo_llm",
  partition: "batch",
  run_partition: "interactive",
  time: "01:30:00",
};

/** The three golden cases. */
const GOLDEN_SPECS: Record<string, SlurmJobSpec> = {
  "container_single.sh": {
    name: "demo/train",
    mode: "batch",
    launch: "direct",
    profile: {
      ...BASE_PROFILE,
      gpus_per_node: 1,
      mounts: ["/data/datasets:/datasets:ro"],
      env_vars: { NCCL_DEBUG: "WARN" },
      // NeMo-Run SlurmExecutor keys users migrate with
      cpus_per_task: 4,
      cpus_per_gpu: 4,
      gpus_per_task: "1",
      mem_per_gpu: "80G",
      exclude: "node[01-02]",
      nodelist: "node07",
      reservation: "maint window",
      comment: "ada's run",
      signal: "B:USR1@300",
      network: "sharp",
      dependency: "afterany:123:124",
      job_name_prefix: "coreai_dlalgo_llm-llm.",
      srun_args: ["--mpi=pmix", "--export=ALL,X=a b"],
      additional_parameters: {
        mail_type: "END",
        mail_user: "ada@example.com",
        hint: "nomultithread",
        overcommit: true,
        contiguous: false,
      },
    },
    image: "/lustre/fs1/users/ada/nemotron/nvcr.io_nvidia_pytorch_25.01-py3.sqsh",
    command: ["python3", "main.py", "--config", "config.yaml", "--mock", "train.lr=3e-4"],
    env: { WANDB_PROJECT: "demo", WANDB_API_KEY: "never-in-the-script", HF_HOME: "/lustre/hf" },
    jobKey: "demo-train-20260101-120000-a1b2c3",
    secretsId: "0123456789abcdef0123456789abcdef",
    uid: 1000,
  },
  "torchrun_multi.sh": {
    name: "nano3/pretrain",
    mode: "run",
    launch: "torchrun",
    profile: {
      ...BASE_PROFILE,
      nodes: 4,
      gpus_per_node: 8,
      exclusive: true,
      mem: "0",
      retries: 2,
      startup_commands: ["nvidia-smi -L", "echo 'ready on' \"$(hostname)\""],
      setup_lines: "export NCCL_IB_SL=1\nulimit -n 65536",
      lustre_mount: "",
    },
    image: "/lustre/fs1/users/ada/nemotron/nano3.sqsh",
    command: ["main.py", "--config", "config.yaml", "train.train_iters=5"],
    env: { NEMO_RUN_DIR: "/lustre/fs1/users/ada/nemotron", HF_TOKEN: "hf_secret" },
    jobKey: "nano3-pretrain-20260101-120000-d4e5f6",
    secretsId: "fedcba9876543210fedcba9876543210",
    uid: 1000,
  },
  "custom_template.sh": {
    name: "demo/eval",
    mode: "batch",
    launch: "direct",
    profile: {
      ...BASE_PROFILE,
      sbatch_template: "custom.sub.j2",
      container_image: "",
      qos: "normal",
    },
    templateBaseDir: GOLDEN,
    command: ["python3", "eval.py", "--config", "config.yaml"],
    env: { MODE: 'it\'s "quoted" $HOME' },
    jobKey: "demo-eval-20260101-120000-0a0b0c",
  },
};

Deno.test("golden sbatch scripts: match, bash -n, shellcheck, and equal Python Jinja2's output", async () => {
  const cases: { template: string; context: unknown }[] = [];
  const rendered: string[] = [];
  for (const [file, spec] of Object.entries(GOLDEN_SPECS)) {
    const job = buildSlurmJob(spec);
    const script = await renderSbatch(job);
    rendered.push(script);
    cases.push({ template: job.template.source, context: job.context });
    const goldenPath = path.join(GOLDEN, file);
    if (Deno.env.get("UPDATE_GOLDEN")) Deno.writeTextFileSync(goldenPath, script);
    assert.equal(script, Deno.readTextFileSync(goldenPath), `${file} differs from the golden file`);
    await bashAndShellcheck(script);
    for (const [k, v] of Object.entries(spec.env ?? {})) {
      if (/KEY|TOKEN/.test(k)) assert.ok(!script.includes(v), `secret ${k} leaked into ${file}`);
    }
  }
  assert.deepEqual(await jinja2(cases), rendered);
});

Deno.test("golden facts checked by hand: flags, requeue, torchrun rank per task, pyxis flags", async () => {
  const single = await renderSbatch(buildSlurmJob(GOLDEN_SPECS["container_single.sh"]));
  assert.match(single, /^#SBATCH --partition=batch$/m); // batch mode uses partition
  assert.match(single, /^#SBATCH --no-requeue$/m);
  assert.doesNotMatch(single, /scontrol requeue|--requeue|--exclusive|NEMOTRON_HEAD_NODE/);
  // no /lustre mount unless lustre_mount is set (pyxis fails the job when the source is missing)
  assert.match(
    single,
    /--container-mounts=\/data\/datasets:\/datasets:ro,\/lustre\/fs1\/users\/ada\/nemotron\/jobs\//,
  );
  assert.doesNotMatch(single, /\/lustre:\/lustre/);
  // the migrated NeMo-Run keys, one #SBATCH line each, values quoted
  for (
    const line of [
      "--job-name=coreai_dlalgo_llm-llm.demo-train",
      "--cpus-per-task=4",
      "--cpus-per-gpu=4",
      "--gpus-per-task=1",
      "--mem-per-gpu=80G",
      "--exclude='node[01-02]'",
      "--nodelist=node07",
      "--reservation='maint window'",
      `--comment='ada'"'"'s run'`,
      "--signal=B:USR1@300",
      "--network=sharp",
      "--dependency=afterany:123:124",
    ]
  ) assert.ok(single.includes(`\n#SBATCH ${line}\n`), line);
  assert.doesNotMatch(single, /contiguous/); // additional_parameters: false adds nothing
  assert.match(single, /^#SBATCH --mail-type=END$/m);
  assert.match(single, /^#SBATCH --mail-user=ada@example\.com$/m);
  assert.match(single, /^#SBATCH --hint=nomultithread$/m);
  assert.match(single, /^#SBATCH --overcommit$/m);
  // srun: --wait (default 60), --cpus-per-task (srun does not inherit it), srun_args quoted
  assert.match(single, /^ {2}--wait=60 --cpus-per-task=4 --mpi=pmix '--export=ALL,X=a b' \\$/m);
  // the log files keep the plain name (jobs logs finds them without the prefix)
  assert.match(single, /log-demo-train_%j_/);
  assert.match(single, /--container-workdir=\/nemo_run\/code/);
  assert.match(
    single,
    /--container-env=HF_HOME,NCCL_DEBUG,NEMOTRON_ATTEMPT,NEMOTRON_JOB_DIR,PYTHONUNBUFFERED,WANDB_API_KEY,WANDB_PROJECT/,
  );
  assert.match(single, /\/\.nemotron-secrets-1000\/0123456789abcdef0123456789abcdef\.env/);

  const multi = await renderSbatch(buildSlurmJob(GOLDEN_SPECS["torchrun_multi.sh"]));
  assert.match(multi, /^#SBATCH --partition=interactive$/m); // run mode uses run_partition
  assert.match(multi, /^#SBATCH --requeue$/m);
  assert.match(multi, /^#SBATCH --exclusive$/m);
  assert.match(multi, /^#SBATCH --nodes=4$/m);
  assert.match(multi, /^#SBATCH --ntasks-per-node=1$/m);
  // The node rank is inside the single-quoted bash -c text: each task expands it.
  assert.match(
    multi,
    /bash -c '\{ nvidia-smi -L && echo .*exec torchrun --nnodes="\$SLURM_NNODES" --node_rank="\$SLURM_NODEID" --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint="\$NEMOTRON_HEAD_NODE":29500/,
  );
  assert.match(multi, /-lt 2 \]; then\n.*\n {2}scontrol requeue "\$\{SLURM_JOB_ID\}"/);
  assert.doesNotMatch(multi, /\/lustre:\/lustre/); // lustre_mount = "" disables it
  assert.match(multi, /^ {2}--wait=60 \\$/m); // no cpus_per_task, no srun_args

  const custom = await renderSbatch(buildSlurmJob(GOLDEN_SPECS["custom_template.sh"]));
  assert.match(custom, /^#SBATCH --mail-type=FAIL$/m);
  assert.match(
    custom,
    /--chdir=\/lustre\/fs1\/users\/ada\/nemotron\/jobs\/demo-eval-20260101-120000-0a0b0c\/code/,
  );
  assert.match(custom, /^export MODE='it'"'"'s "quoted" \$HOME'$/m);
});

Deno.test("profile problems are UsageErrors naming the key; nothing is half-built", () => {
  const spec = GOLDEN_SPECS["container_single.sh"];
  const bad = (profile: Record<string, unknown>, re: RegExp, extra: Partial<SlurmJobSpec> = {}) => {
    assert.throws(
      () => buildSlurmJob({ ...spec, ...extra, profile: { ...BASE_PROFILE, ...profile } }),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
    );
  };
  bad({ tunnel: "paramiko" }, /tunnel: must be "ssh" or "local"/);
  bad({ remote_job_dir: undefined }, /remote_job_dir: is required/);
  bad({ nodes: 0 }, /nodes: must be an integer >= 1/);
  bad({ retries: "2" }, /retries: must be an integer >= 0/);
  bad({ account: "a\\b" }, /account: must be one line without control characters or backslashes/);
  bad({ partition: "x\ny" }, /partition: must be one line/);
  bad({ env_vars: { "BAD-NAME": "x" } }, /"BAD-NAME" is not a valid environment variable name/);
  bad({ env_vars: { A: "x\0y" } }, /NUL/);
  bad({ mounts: ["/a,/b"] }, /bad mount/);
  bad({ exclusive: 3 }, /exclusive: must be true, false or a string/);
  bad({ startup_commands: "echo hi" }, /startup_commands: must be a list of strings/);
  bad({ sbatch_template: "/nonexistent/x.j2" }, /sbatch_template: cannot read/);
  // Ray on several nodes is a Ray cluster job (tests/multinode_render.test.ts); its keys are checked
  const ray = { launch: "ray" as const };
  bad({ nodes: 2, ray_port: 70000 }, /ray_port: must be a port number \(1-65535\)/, ray);
  bad({ nodes: 2, ray_join_timeout: 0 }, /ray_join_timeout: must be an integer >= 1/, ray);
  bad({ nodes: 2, ray_template: "/nonexistent/r.j2" }, /ray_template: cannot read/, ray);
  bad({ array: "0-3" }, /array: job arrays are not supported for recipes: a recipe run is one job/);
  bad({ dependency: "afterok" }, /dependency: "afterok" is not TYPE:JOBID/);
  bad({ dependency: "afterok:12x" }, /dependency: "afterok:12x" is not TYPE:JOBID/);
  bad({ dependency: "whenever:1" }, /dependency: "whenever:1" is not TYPE:JOBID/);
  bad({ dependency: "afterok:1,afterany:2?afterok:3" }, /mixes ','/);
  bad({ signal: "USR1 now" }, /signal: "USR1 now" is not/);
  bad({ additional_parameters: { output: "/x" } }, /--output is set by nemotron/);
  bad({ additional_parameters: { "mail type": "END" } }, /"mail type" is not an sbatch option/);
  bad({ additional_parameters: { qos: "x" }, qos: "y" }, /--qos is already set/);
  bad({ additional_parameters: { mail_type: "a\nb" } }, /mail_type: must be one non-empty line/);
  bad({ additional_parameters: ["--x"] }, /additional_parameters: must be a table/);
  bad({ srun_args: "--mpi=pmix" }, /srun_args: must be a list of strings/);
  bad({ srun_args: ["a\nb"] }, /srun_args: bad argument/);
  bad({ srun_wait: -1 }, /srun_wait: must be an integer >= 0/);
  bad({ cpus_per_gpu: 0 }, /cpus_per_gpu: must be an integer >= 1/);
  // The locator's place is attached to the error.
  try {
    buildSlurmJob({
      ...spec,
      profile: { ...BASE_PROFILE, time: ["x"] },
      profileName: "cluster",
      locate: (key) => ({ file: "/x/env.toml", line: key === "time" ? 7 : 1 }),
    });
    assert.fail("expected a UsageError");
  } catch (e) {
    assert.ok(e instanceof UsageError);
    assert.equal(e.message, "profile 'cluster': time: must be a string, got [\"x\"]");
    assert.deepEqual(e.location, { file: "/x/env.toml", line: 7 });
  }
});

Deno.test("flags only when true; exclusive false and retries 0 add nothing", async () => {
  const job = buildSlurmJob({
    ...GOLDEN_SPECS["container_single.sh"],
    profile: {
      ...BASE_PROFILE,
      exclusive: false,
      retries: 0,
      gres: "gpu:a100:2",
      constraint: "a100",
    },
  });
  const script = await renderSbatch(job);
  assert.doesNotMatch(script, /exclusive/);
  assert.match(script, /^#SBATCH --gres=gpu:a100:2$/m);
  assert.match(script, /^#SBATCH --constraint=a100$/m);
  assert.doesNotMatch(script, /^if \[ "\$\{_nemotron_rc\}" -ne 0 \]/m);
});

Deno.test("srun_wait = 0 drops --wait; dependency accepts ',' and '?' lists and singleton", async () => {
  const job = buildSlurmJob({
    ...GOLDEN_SPECS["container_single.sh"],
    profile: { ...BASE_PROFILE, srun_wait: 0, dependency: "afterok:1:2_3,afterany:4+60" },
  });
  const script = await renderSbatch(job);
  assert.doesNotMatch(script, /--wait=/);
  assert.match(script, /^#SBATCH --dependency=afterok:1:2_3,afterany:4\+60$/m);
  assert.equal(job.dependency, "afterok:1:2_3,afterany:4+60");
  const single = buildSlurmJob({
    ...GOLDEN_SPECS["container_single.sh"],
    profile: { ...BASE_PROFILE, dependency: "singleton" },
  });
  assert.equal(single.dependency, "singleton");
});

Deno.test("ntasks_per_node > 1: one task per node for direct and ray (with a warning), torchrun too", () => {
  for (const launch of ["direct", "ray", "torchrun"] as const) {
    const job = buildSlurmJob({
      ...GOLDEN_SPECS["container_single.sh"],
      launch,
      profile: { ...BASE_PROFILE, ntasks_per_node: 2 },
    });
    assert.equal(job.ntasksPerNode, 1, launch);
    assert.ok(job.directives.some((d) => d.flag === "ntasks-per-node" && d.value === "1"));
    if (launch === "torchrun") {
      assert.deepEqual(job.warnings, []);
      assert.ok(job.taskArgv.includes("--nproc_per_node=2")); // the workers, inside one task
    } else {
      assert.match(
        job.warnings.join("\n"),
        /ntasks_per_node = 2 ignored: launch = ".*" runs one task/,
      );
    }
  }
});

Deno.test("a broken user template is a UsageError with its file and line", async () => {
  const dir = Deno.makeTempDirSync();
  Deno.writeTextFileSync(path.join(dir, "t.j2"), "#!/bin/bash\n{{ job_name }}\n{% if %}\n");
  const job = buildSlurmJob({
    ...GOLDEN_SPECS["container_single.sh"],
    profile: { ...BASE_PROFILE, sbatch_template: "t.j2" },
    templateBaseDir: dir,
  });
  await assert.rejects(
    () => renderSbatch(job),
    (e: unknown) =>
      e instanceof UsageError && e.location?.file === path.join(dir, "t.j2") &&
      e.location?.line === 3,
  );
});

/** Strings bash can carry: no NUL. fast-check's "binary" unit yields whole code points. */
const text = fc.string({ unit: "binary", maxLength: 24 }).filter((s) => !s.includes("\0"));
const envName = fc.stringMatching(/^[A-Z][A-Z0-9_]{0,8}$/).filter((n) =>
  !/KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL/.test(n) && !n.startsWith("SLURM") &&
  ![
    "PATH",
    "HOME",
    "PWD",
    "SHELL",
    "IFS",
    "OLDPWD",
    "SHLVL",
    "BASH_ENV",
    "ENV",
    "PS4",
    "UID",
    "EUID",
    "PPID",
    "HOSTNAME",
    "TERM",
    "LANG",
    "RANDOM",
    "LINENO",
    "SECONDS",
    "GROUPS",
    "PYTHONUNBUFFERED",
  ].includes(n) &&
  !n.startsWith("NEMOTRON") && !n.startsWith("BASH") && !n.startsWith("LC_")
);
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const mount = text.filter((m) => m !== "" && !m.includes(",") && !CONTROL.test(m));

Deno.test({
  name:
    "property: arbitrary env values, args, mounts, names → script passes bash -n, shellcheck, and srun gets exactly them",
  sanitizeResources: false,
  fn: async () => {
    const stub = Deno.makeTempDirSync({ prefix: "nemotron-stub-" });
    // The stub srun records its argv (NUL-separated) and its environment (env -0).
    Deno.writeTextFileSync(
      path.join(stub, "srun"),
      '#!/bin/bash\nprintf \'%s\\0\' "$@" > "$STUB_OUT.argv"\nenv -0 > "$STUB_OUT.env"\n',
      { mode: 0o755 },
    );
    const oracleCases: { template: string; context: unknown }[] = [];
    const ours: string[] = [];
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          name: text,
          args: fc.array(text, { maxLength: 4 }),
          env: fc.dictionary(envName, text, { maxKeys: 4 }),
          secret: text,
          mounts: fc.array(mount, { maxLength: 3 }),
        }),
        async ({ name, args, env, secret, mounts }) => {
          const root = Deno.makeTempDirSync({ prefix: "nemotron-prop-" });
          try {
            const job = buildSlurmJob({
              name,
              mode: "batch",
              launch: "direct",
              profile: { remote_job_dir: path.join(root, "r o'o%t"), mounts, lustre_mount: "" },
              image: "/images/x.sqsh",
              command: ["python3", "-c", "pass", ...args],
              env: { ...env, MY_API_KEY: secret },
            });
            const script = await renderSbatch(job);
            oracleCases.push({ template: job.template.source, context: job.context });
            ours.push(script);
            assert.ok(!script.includes("MY_API_KEY=")); // the secret stays out of the script
            assert.match(
              script,
              new RegExp(`^#SBATCH --job-name=${slurmJobName(name).replaceAll(".", "\\.")}$`, "m"),
            );
            await bashAndShellcheck(script);
            prepareJobDir(job, script);
            const out = path.join(root, "stub");
            const r = await run("bash", [job.scriptPath], undefined, {
              PATH: `${stub}:${Deno.env.get("PATH")}`,
              STUB_OUT: out,
              SLURM_JOB_ID: "42",
              SLURM_JOB_NODELIST: "n1",
            });
            assert.equal(r.code, 0, r.stderr);
            const argv = Deno.readTextFileSync(`${out}.argv`).split("\0").slice(0, -1);
            const tail = argv.slice(argv.length - 3 - args.length);
            assert.deepEqual(tail, ["python3", "-c", "pass", ...args]);
            assert.ok(
              argv.includes(
                `--container-mounts=${[...mounts, `${job.jobDir}:/nemo_run`].join(",")}`,
              ),
            );
            const seen = new Map<string, string>();
            for (const kv of Deno.readTextFileSync(`${out}.env`).split("\0")) {
              const i = kv.indexOf("=");
              if (i > 0) seen.set(kv.slice(0, i), kv.slice(i + 1));
            }
            for (const [k, v] of Object.entries(env)) assert.equal(seen.get(k), v, k);
            assert.equal(seen.get("MY_API_KEY"), secret);
            // A successful job removes its private env file.
            assert.throws(() => Deno.statSync(job.secretsFile!));
          } finally {
            Deno.removeSync(root, { recursive: true });
          }
        },
      ),
      { numRuns: 25 },
    );
    assert.deepEqual(await jinja2(oracleCases), ours);
    Deno.removeSync(stub, { recursive: true });
  },
});
