/**
 * Ray cluster scripts (templates/ray.sub.j2) without a cluster: golden files (container variant
 * with GPUs, secrets, retries; bare-metal CPU variant as data prep uses it), each through `bash -n`
 * and `shellcheck` with no suppressions beyond the template's one line-level SC2016/SC2317 notes,
 * byte-equal to Python Jinja2's rendering; facts checked by hand; and `nano3 rl` / `nano3 data prep
 * rl` with `nodes = 2` rendering a Ray cluster job (dry run). Running clusters:
 * tests/multinode_ray.test.ts. Update goldens deliberately with UPDATE_GOLDEN=1 (read the diff).
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { buildSlurmJob, renderSbatch, type SlurmJobSpec } from "../lib/exec/slurm.ts";
import { rayClusterSummary } from "../lib/exec/ray.ts";
import { UsageError } from "../lib/errors.ts";
import {
  firstRankFailure,
  firstTaskFailure,
  parseTaskFailures,
  parseTorchrunRootCauses,
} from "../lib/exec/task_failures.ts";
import { runCli, tempDir, writeTree } from "./cli_helpers.ts";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const GOLDEN = path.join(HERE, "golden", "ray");
const ORACLE = path.join(HERE, "golden", "slurm", "jinja2_oracle.py");
const dec = new TextDecoder();

async function run(cmd: string, args: string[], stdin?: string) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function bashAndShellcheck(script: string): Promise<void> {
  const file = Deno.makeTempFileSync({ suffix: ".sh" });
  try {
    Deno.writeTextFileSync(file, script);
    const b = await run("bash", ["-n", file]);
    assert.equal(b.code, 0, `bash -n: ${b.stderr}`);
    const s = await run("shellcheck", ["-s", "bash", file]);
    assert.equal(s.code, 0, `shellcheck:\n${s.stdout}${s.stderr}`);
  } finally {
    Deno.removeSync(file);
  }
}

const GOLDEN_SPECS: Record<string, SlurmJobSpec> = {
  "ray_container.sh": {
    name: "nano3/rl",
    mode: "batch",
    launch: "ray",
    resources: { nodes: 1, gpus_per_node: 8 },
    profile: {
      remote_job_dir: "/lustre/fs1/users/ada/nemotron",
      account: "coreai_dlalgo_llm",
      partition: "batch",
      time: "04:00:00",
      nodes: 16,
      cpus_per_task: 112,
      exclusive: true,
      retries: 1,
      env_vars: { NCCL_DEBUG: "WARN", ODD: "it's $HOME" },
      setup_lines: ["ulimit -n 65536"],
      ray_join_timeout: 600,
    },
    image: "/lustre/fs1/users/ada/nemotron/nemo-rl.sqsh",
    command: [
      "bash",
      "-c",
      'cd /opt/nemo-rl && uv run python "$NEMOTRON_JOB_DIR"/code/main.py --config "$NEMOTRON_JOB_DIR"/code/config.yaml',
    ],
    env: { WANDB_API_KEY: "never-in-the-script", HF_HOME: "/lustre/hf" },
    jobKey: "nano3-rl-20260101-120000-a1b2c3",
    secretsId: "0123456789abcdef0123456789abcdef",
    uid: 1000,
  },
  "ray_cpu_bare.sh": {
    name: "nano3/data/prep/rl",
    mode: "run",
    launch: "ray",
    resources: { nodes: 1, gpus_per_node: 0 },
    profile: { remote_job_dir: "/scratch/ada/jobs", nodes: 2, container_image: "" },
    image: null,
    command: [
      "bash",
      "-c",
      "uv run --no-project python _nemotron/data_prep.py --config config.yaml",
    ],
    jobKey: "nano3-data-prep-rl-20260101-120000-0a0b0c",
  },
};

Deno.test("golden Ray scripts: match, bash -n, shellcheck, and equal Python Jinja2's output", async () => {
  const cases: { template: string; context: unknown }[] = [];
  const rendered: string[] = [];
  for (const [file, spec] of Object.entries(GOLDEN_SPECS)) {
    const job = buildSlurmJob(spec);
    assert.equal(job.template.name, "ray.sub.j2");
    const script = await renderSbatch(job);
    rendered.push(script);
    cases.push({ template: job.template.source, context: job.context });
    const goldenPath = path.join(GOLDEN, file);
    if (Deno.env.get("UPDATE_GOLDEN")) Deno.writeTextFileSync(goldenPath, script);
    assert.equal(script, Deno.readTextFileSync(goldenPath), `${file} differs from the golden file`);
    await bashAndShellcheck(script);
    assert.ok(!script.includes("never-in-the-script"), "a secret leaked into the script");
    // only the two line-level notes the Slurm template has too
    const disables = script.split("\n").filter((l) => l.includes("shellcheck disable"));
    assert.deepEqual(disables.map((l) => l.replace(/.*disable=(\S+).*/, "$1")), [
      "SC2016",
      "SC2317",
    ]);
  }
  const oracle = await run("/usr/bin/python3", [ORACLE], JSON.stringify(cases));
  assert.equal(oracle.code, 0, oracle.stderr);
  assert.deepEqual(JSON.parse(oracle.stdout), rendered);
});

Deno.test("golden facts checked by hand: one task per node, GPUs/CPUs from the profile, container", async () => {
  const gpu = await renderSbatch(buildSlurmJob(GOLDEN_SPECS["ray_container.sh"]));
  assert.match(gpu, /^#SBATCH --nodes=16$/m);
  assert.match(gpu, /^#SBATCH --ntasks-per-node=1$/m);
  assert.match(gpu, /^#SBATCH --gpus-per-node=8$/m);
  assert.match(gpu, /^#SBATCH --requeue$/m);
  assert.equal(gpu.match(/--num-gpus=8 \\$/gm)?.length, 2, "head and workers get 8 GPUs");
  assert.equal(gpu.match(/--num-cpus=112 \\$/gm)?.length, 2);
  // srun_flags on head, workers and driver: srun does not inherit --cpus-per-task (22.05)
  assert.equal(gpu.match(/--wait=60 --cpus-per-task=112 \\$/gm)?.length, 3);
  assert.match(gpu, /ray start --head --block/);
  assert.match(gpu, /ray start --block \\\n {4}--address="\$\{_ray_address\}"/);
  // the head and the driver share the named container; workers have their own
  assert.equal(gpu.match(/--container-name=ray-head/g)?.length, 3); // head, status, driver
  assert.match(gpu, /--container-name="ray-worker-\$\{_ray_i\}"/);
  assert.match(
    gpu,
    /--container-env=HF_HOME,NCCL_DEBUG,NEMOTRON_ATTEMPT,NEMOTRON_JOB_DIR,ODD,PYTHONUNBUFFERED,RAY_ADDRESS,WANDB_API_KEY/,
  );
  assert.match(gpu, /within 600 s/);
  assert.match(gpu, /^export ODD='it'"'"'s \$HOME'$/m);
  assert.match(gpu, /scontrol requeue/);

  const cpu = await renderSbatch(buildSlurmJob(GOLDEN_SPECS["ray_cpu_bare.sh"]));
  assert.equal(cpu.match(/--num-gpus=0 \\$/gm)?.length, 2, "CPU data prep: --num-gpus=0");
  assert.doesNotMatch(cpu, /--num-cpus|--cpus-per-task|--container|#SBATCH --gpus-per-node/);
  assert.equal(cpu.match(/^ +--wait=60 \\$/gm)?.length, 3);
  assert.match(
    cpu,
    /--chdir=\/scratch\/ada\/jobs\/jobs\/nano3-data-prep-rl-20260101-120000-0a0b0c\/code/,
  );
  assert.doesNotMatch(cpu, /scontrol requeue/);

  // long runs' checkpoint signal is not wired into the Ray template: refused, not ignored
  assert.throws(
    () =>
      buildSlurmJob({
        ...GOLDEN_SPECS["ray_cpu_bare.sh"],
        profile: { remote_job_dir: "/x", nodes: 2, auto_resume: true },
      }),
    (e: unknown) =>
      e instanceof UsageError && /auto_resume: is not supported for a Ray cluster/.test(e.message),
  );

  // one node: no cluster, the command runs directly (Ray starts in-process)
  const one = buildSlurmJob({
    ...GOLDEN_SPECS["ray_cpu_bare.sh"],
    profile: { remote_job_dir: "/x", nodes: 1 },
  });
  assert.equal(one.launch, "direct");
  assert.equal(one.template.name, "slurm.sub.j2");
});

Deno.test("jobs status facts: Ray events and srun's task failures are read back", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(path.join(dir, "ray", "7_0"), { recursive: true });
    Deno.mkdirSync(path.join(dir, "ray", "7_1"), { recursive: true });
    Deno.writeTextFileSync(
      path.join(dir, "ray", "7_0", "events.tsv"),
      "1\thead_starting\tn1\t\n2\thead_up\tn1\t1.2.3.4:6379\n3\tnot_joined\tn3 n4\tmsg\n",
    );
    assert.equal(rayClusterSummary(dir, "8"), undefined, "another job's files are not read");
    // attempt 1 (latest) has no events yet: still starting; attempt 0's failure is not reported
    assert.equal(rayClusterSummary(dir, "7"), "attempt 1: starting");
    Deno.writeTextFileSync(
      path.join(dir, "ray", "7_1", "events.tsv"),
      "1\thead_up\tn1\tx\n2\tall_joined\tn[1-4]\t4\n3\tdriver_start\tn1\t\n4\tdriver_exit\tn1\t5\n",
    );
    assert.equal(
      rayClusterSummary(dir, "7"),
      "attempt 1: up: all 4 nodes joined (n[1-4]); driver exited with code 5",
    );
    Deno.removeSync(path.join(dir, "ray", "7_1"), { recursive: true });
    assert.equal(rayClusterSummary(dir, "7"), "attempt 0: did not join: n3 n4");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  const log = [
    "[nemotron] job 5 attempt 0",
    "srun: error: node2: task 1: Exited with exit code 7",
    "srun: error: node1: task 0: Killed",
    "srun: error: node3: tasks 4-5: Terminated",
  ].join("\n");
  assert.deepEqual(parseTaskFailures(log).map((f) => [f.node, f.tasks, f.how]), [
    ["node2", "1", "exit code 7"],
    ["node1", "0", "Killed"],
    ["node3", "4-5", "Terminated"],
  ]);
  assert.equal(firstTaskFailure(log)?.node, "node2");
  assert.equal(firstTaskFailure("srun: error: node1: task 0: Killed\n")?.how, "Killed");
  assert.equal(firstTaskFailure("all fine\n"), undefined);

  // torchrun's reports (as torch 1.13 prints them; one per agent): the earliest wins, and at the
  // same second a rank's own exit code beats exit code 1 (gloo's "connection closed" exception)
  const report = (time: string, host: string, rank: number, code: number) =>
    [
      "Root Cause (first observed failure):",
      "[0]:",
      `  time      : ${time}`,
      `  host      : ${host}`,
      `  rank      : ${rank} (local_rank: 0)`,
      `  exitcode  : ${code} (pid: 8791)`,
      "  error_file: <N/A>",
      "============================================================",
    ].join("\n");
  const two = report("2026-11-30_15:26:22", "node1", 0, 1) + "\n" +
    report("2026-11-30_15:26:21", "node2", 1, 7);
  assert.deepEqual(parseTorchrunRootCauses(two).map((f) => [f.host, f.rank, f.exitCode]), [
    ["node1", 0, 1],
    ["node2", 1, 7],
  ]);
  assert.equal(firstRankFailure(two)?.host, "node2");
  const tie = report("2026-11-30_15:26:21", "node1", 0, 1) + "\n" +
    report("2026-11-30_15:26:21", "node3", 5, 9);
  assert.deepEqual([firstRankFailure(tie)?.host, firstRankFailure(tie)?.rank], ["node3", 5]);
  assert.equal(firstRankFailure("no report"), undefined);
  // a rank killed by a signal: torchrun says -9, which is 128 + 9 like a shell
  assert.equal(firstRankFailure(report("2026-11-30_15:26:21", "node2", 3, -9))?.exitCode, 137);

  // The echo (exit 1) can be stamped a second or more before the failure it echoes, as the agent
  // watching the failed rank polls; a rank's own code within 5 s of it wins, later ones do not.
  // Each vector: the reports, then the expected [host, exit code], checked by hand. The batch
  // script's awk (from the golden sbatch script, itself checked against Jinja2) must agree.
  const r = (...reports: [string, string, number, number][]) =>
    reports.map(([time, host, rank, code]) => report(time, host, rank, code)).join("\n");
  const vectors: [string, [string, number] | undefined][] = [
    [two, ["node2", 7]],
    [tie, ["node3", 9]],
    [r(["2026-11-30_15:26:21", "node1", 0, 1], ["2026-11-30_15:26:22", "node2", 1, 7]), [
      "node2",
      7,
    ]],
    [r(["2026-11-30_15:26:21", "node1", 0, 1], ["2026-11-30_15:26:26", "node2", 1, 7]), [
      "node2",
      7,
    ]],
    [r(["2026-11-30_15:26:21", "node1", 0, 1], ["2026-11-30_15:26:27", "node2", 1, 7]), [
      "node1",
      1,
    ]],
    // across a minute, an hour and a day
    [r(["2026-11-29_23:59:58", "node1", 0, 1], ["2026-11-30_00:00:01", "node2", 1, 7]), [
      "node2",
      7,
    ]],
    [r(["2026-11-30_23:59:58", "node1", 0, 1], ["2026-12-01_00:00:09", "node2", 1, 7]), [
      "node1",
      1,
    ]],
    // the first report is not 1: it wins; of two own codes in the window, the earlier
    [r(["2026-11-30_15:26:22", "node2", 1, 7], ["2026-11-30_15:26:21", "node1", 0, 3]), [
      "node1",
      3,
    ]],
    [
      r(
        ["2026-11-30_15:26:20", "node1", 0, 1],
        ["2026-11-30_15:26:23", "node3", 2, 4],
        ["2026-11-30_15:26:22", "node2", 1, -15],
      ),
      ["node2", 143],
    ],
    // two agents' reports interleaved in one log (as srun merges the nodes' output): node1's
    // report is cut by node2's, and its exit code comes after node2's block
    [
      [
        "Root Cause (first observed failure):",
        "[0]:",
        "  time      : 2026-11-30_20:15:01",
        "  host      : node1",
        "  rank      : 0 (local_rank: 0)",
        "Root Cause (first observed failure):",
        "[0]:",
        "  time      : 2026-11-30_20:15:02",
        "  host      : node2",
        "  rank      : 1 (local_rank: 0)",
        "  exitcode  : 7 (pid: 12406)",
        "  error_file: <N/A>",
        "============================================================",
        "  exitcode  : 1 (pid: 12405)",
        "  error_file: <N/A>",
        "============================================================",
      ].join("\n"),
      ["node2", 7],
    ],
    ["no report", undefined],
  ];
  const golden = Deno.readTextFileSync(path.join(HERE, "golden", "slurm", "torchrun_multi.sh"));
  const awkProgram = /_nemotron_bad="\$\(awk '\n([\s\S]*?)' /.exec(golden)?.[1];
  assert.ok(awkProgram?.includes("Root Cause"), "the awk program of the batch script");
  for (const [log, want] of vectors) {
    const f = firstRankFailure(log);
    assert.deepEqual(f && [f.host, f.exitCode], want, log);
    const awk = new Deno.Command("awk", { args: [awkProgram!], stdin: "piped", stdout: "piped" })
      .spawn();
    const w = awk.stdin.getWriter();
    await w.write(new TextEncoder().encode(log + "\n"));
    await w.close();
    const out = dec.decode((await awk.output()).stdout).trim();
    assert.equal(out, want ? String(want[1]) : "", `awk: ${log}`);
  }
});

Deno.test("nano3 rl and nano3 data prep * with nodes = 2 render a Ray cluster job (dry run)", async () => {
  const cwd = await tempDir("nemotron-mn-render-");
  await writeTree(cwd, {
    "env.toml": [
      "[gpu2]",
      'executor = "slurm"',
      'remote_job_dir = "/lustre/ada/jobs"',
      'container_image = ""',
      "nodes = 2",
      "",
    ].join("\n"),
  });
  const env = { NEMOTRON_ENV_FILE: "" };
  const rl = await runCli(["nano3", "rl", "-c", "tiny", "--batch", "gpu2", "-d"], { cwd, env });
  assert.equal(rl.code, 0, rl.stderr);
  assert.match(rl.stdout, /ray start --head --block/);
  assert.match(rl.stdout, /--num-gpus=8 \\/, "GPUs per node from the runspec");
  assert.match(rl.stdout, /uv run python/);
  for (const stage of ["pretrain", "sft", "rl"]) {
    const prep = await runCli(["nano3", "data", "prep", stage, "--batch", "gpu2", "-d"], {
      cwd,
      env,
    });
    assert.equal(prep.code, 0, prep.stderr);
    assert.match(prep.stdout, /ray start --head --block/, stage);
    assert.match(prep.stdout, /--num-gpus=0 \\/, `CPU data prep (${stage})`);
    assert.match(prep.stdout, /^#SBATCH --nodes=2$/m);
  }
});

Deno.test("torchrun with the profile's python: a task without torch stops with a clear error", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    // an interpreter that cannot import torch on any machine: python without site-packages
    const noTorch = path.join(dir, "python-without-torch");
    Deno.writeTextFileSync(noTorch, `#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n`, { mode: 0o755 });
    for (const nodes of [1, 2]) {
      const job = buildSlurmJob({
        name: "demo/ddp",
        mode: "batch",
        launch: "torchrun",
        profile: { remote_job_dir: "/x", nodes, python: noTorch, torchrun_args: ["--tee=1"] },
        command: ["main.py"],
      });
      await bashAndShellcheck(await renderSbatch(job));
      const argv = [...job.taskArgv];
      assert.ok(argv.join(" ").includes(`${noTorch} -m torch.distributed.run`), argv.join(" "));
      // run the task's argv here, as srun would on a node (multi-node reads NEMOTRON_HEAD_NODE etc.)
      const r = await new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = dec.decode(r.stderr);
      assert.equal(r.code, 2, err);
      assert.match(err, /the profile's python \(.*\) cannot import torch on this node/);
      assert.match(err, /python3-torch/);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
