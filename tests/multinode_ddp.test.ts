/**
 * torchrun for real: `demo ddp` (DistributedDataParallel on gloo, CPU, Debian's python3-torch)
 * locally with 2 processes and on a PRIVATE 2-node Slurm cluster (tests/multinode_cluster.ts;
 * never the shared default cluster) with 2×1 and 2×2 ranks, through the CLI with a bare-metal
 * profile. Proven on real nodes: our sbatch torchrun line (rendezvous on the first node, node rank
 * from $SLURM_NODEID, world size, identical parameters after the all-reduce), a failing rank or
 * task ending the job with the failing node named, and data → ddp chained with `afterok`.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { buildSlurmJob, renderSbatch } from "../lib/exec/slurm.ts";
import { prepareJobDir } from "../lib/exec/job_dir.ts";
import { submitJob } from "../lib/exec/submit.ts";
import { type CliResult, ROOT, runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { jobRoot, multinodeTest, waitForEnd } from "./multinode_cluster.ts";

const PYTHON = "/usr/bin/python3";
const DENO_DIR = Deno.env.get("DENO_DIR") ||
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

/** Why torch tests cannot run here, or undefined. */
function torchMissing(): string | undefined {
  try {
    const r = new Deno.Command(PYTHON, { args: ["-c", "import torch"], stderr: "null" })
      .outputSync();
    return r.code === 0
      ? undefined
      : `${PYTHON} cannot import torch (apt-get install python3-torch)`;
  } catch {
    return `no ${PYTHON}`;
  }
}

interface Site {
  readonly cwd: string;
  readonly home: string;
  run(args: string[], env?: Record<string, string>): Promise<CliResult>;
}

/**
 * A working dir with env.toml (profile `mn`: bare metal, 2 nodes, the interpreter with torch,
 * a rendezvous port of this test family's range, torchrun flags torch 1.13 needs) and its own
 * NEMOTRON_HOME under /var/tmp, where every node sees the artifacts.
 */
async function site(extraEnv: Record<string, string> = {}): Promise<Site> {
  const cwd = await tempDir("nemotron-mn-ddp-");
  const root = jobRoot();
  const home = path.join(root, "home");
  await writeTree(cwd, {
    "env.toml": [
      "[mn]",
      'executor = "slurm"',
      `remote_job_dir = "${path.join(root, "rjd")}"`,
      'time = "00:10:00"',
      "nodes = 2",
      `python = "${PYTHON}"`,
      "rdzv_port = 17830",
      'torchrun_args = ["--redirects=1", "--tee=1", "--monitor_interval=1"]',
      "",
      "[mn1]",
      'extends = "mn"',
      "nodes = 1",
      "",
    ].join("\n"),
  });
  return {
    cwd,
    home,
    run: (args, env = {}) =>
      runCli(args, {
        cwd,
        env: {
          HOME: root,
          NEMOTRON_HOME: home,
          NEMOTRON_ENV_FILE: "",
          DENO_DIR,
          NEMOTRON_PYTHON: PYTHON,
          ...extraEnv,
          ...env,
        },
      }),
  };
}

interface RankLine {
  rank: number;
  world: number;
  host: string;
}

/** What the ranks printed: `rank R/W on HOST`, node ranks, and the parameter hashes after step 1. */
function ranksOf(log: string) {
  const starts: RankLine[] = [...log.matchAll(/rank (\d+)\/(\d+) on (\S+)/g)]
    .map((m) => ({ rank: Number(m[1]), world: Number(m[2]), host: m[3] }));
  const nodes = [...log.matchAll(
    /rank (\d+): node rank (\d+) \(SLURM_NODEID (\S+)\), local rank (\d+), world size (\d+), master (\S+)/g,
  )].map((m) => ({
    rank: Number(m[1]),
    nodeRank: Number(m[2]),
    slurmNodeId: m[3],
    world: Number(m[5]),
    master: m[6],
  }));
  const hashes = new Map(
    [...log.matchAll(/rank (\d+) step 1 params sha256 ([0-9a-f]{64})/g)].map((m) => [
      Number(m[1]),
      m[2],
    ]),
  );
  return { starts, nodes, hashes };
}

/** Every rank of a `world`-rank run started once, agreed on the world size and the parameters. */
function assertDdpWorld(log: string, world: number): ReturnType<typeof ranksOf> {
  const r = ranksOf(log);
  assert.deepEqual(
    r.starts.map((s) => s.rank).sort((a, b) => a - b),
    [...Array(world).keys()],
    log,
  );
  assert.ok(r.starts.every((s) => s.world === world), "every rank reports the same world size");
  assert.ok(r.nodes.every((n) => n.world === world));
  assert.equal(r.hashes.size, world, "every rank printed its parameters' hash after step 1");
  assert.equal(new Set(r.hashes.values()).size, 1, `identical parameters on every rank: ${log}`);
  return r;
}

Deno.test({
  name: "demo ddp locally: 2 processes, same world size and parameters, a model artifact",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const missing = torchMissing();
    if (missing) return console.log(`SKIP: ${missing}`);
    const s = await site();
    const data = await s.run(["demo", "data", "-c", "tiny"]);
    assert.equal(data.code, 0, data.stderr);
    const ddp = await s.run(["demo", "ddp", "-c", "tiny"]);
    assert.equal(ddp.code, 0, ddp.stderr);
    const log = ddp.stdout + ddp.stderr;
    const r = assertDdpWorld(log, 2);
    assert.ok(r.starts.every((x) => x.host === r.starts[0].host), "one host");
    const meta = JSON.parse(Deno.readTextFileSync(
      path.join(s.home, "artifacts", "demo-ddp-model-tiny", "v1", "manifest.json"),
    ));
    assert.deepEqual(meta.used_artifacts, ["demo-data-tiny:v1"]);
    assert.equal(meta.metadata.world_size, 2);
    assert.equal(meta.producer.recipe, "demo/ddp");
  },
});

Deno.test("demo ddp without torch: a clear error naming python3-torch, exit 2, nothing run", async () => {
  const dir = await tempDir("nemotron-mn-notorch-");
  // an interpreter that cannot import torch on any machine: python without site-packages
  const noTorch = path.join(dir, "python-without-torch");
  Deno.writeTextFileSync(noTorch, `#!/bin/sh\nexec ${PYTHON} -S "$@"\n`, { mode: 0o755 });
  const s = await site({ NEMOTRON_PYTHON: noTorch });
  const r = await s.run(["demo", "ddp", "-c", "tiny"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /cannot import torch/);
  assert.match(r.stderr, /python3-torch/);
  assert.match(r.stderr, /NEMOTRON_PYTHON/);
  assert.doesNotMatch(r.stderr, /No module named/);
  assert.throws(() => Deno.statSync(path.join(s.cwd, ".nemotron", "jobs")), "no job dir written");
});

/** Submit `demo ddp -c tiny --batch mn …` and wait for its end. */
async function ddpOnSlurm(s: Site, ...extra: string[]) {
  const r = await s.run(["demo", "ddp", "-c", "tiny", "--batch", "mn", "--json", ...extra]);
  assert.equal(r.code, 0, r.stderr);
  const job = JSON.parse(r.stdout).jobs[0];
  const [state, exitCode] = await waitForEnd(job.slurm_job_id);
  // Once in a clean-clone CI run the task log read back empty right after a fast failure (~1 s):
  // read it again for a few seconds before the callers' assertions; what `jobs logs` said on
  // stderr goes with the log, so a failure shows it.
  let logs = await s.run(["jobs", "logs", job.slurm_job_id]);
  for (let i = 0; i < 10 && logs.stdout === ""; i++) {
    await new Promise((r) => setTimeout(r, 500));
    logs = await s.run(["jobs", "logs", job.slurm_job_id]);
  }
  return {
    id: job.slurm_job_id as string,
    jobDir: job.job_dir as string,
    state,
    exitCode,
    log: logs.stdout || `(jobs logs printed nothing; stderr: ${logs.stderr})`,
  };
}

/** Node ranks come from $SLURM_NODEID (node K is SLURM_NODEID K-1), the master is node1. */
function assertNodeRanks(r: ReturnType<typeof ranksOf>, perNode: number): void {
  const hostOf = new Map(r.starts.map((x) => [x.rank, x.host]));
  assert.deepEqual([...new Set(hostOf.values())].sort(), ["node1", "node2"]);
  for (const host of ["node1", "node2"]) {
    assert.equal([...hostOf.values()].filter((h) => h === host).length, perNode, host);
  }
  for (const n of r.nodes) {
    const host = hostOf.get(n.rank)!;
    assert.equal(n.slurmNodeId, String(Number(host.slice(4)) - 1), `rank ${n.rank} on ${host}`);
    assert.equal(n.nodeRank, Number(n.slurmNodeId), "torchrun's node rank is $SLURM_NODEID");
    assert.equal(n.master, "node1", "the rendezvous host is the first node");
  }
}

multinodeTest("demo ddp across 2 Slurm nodes: 2×1, 2×2, failures, data → ddp", 2, async (t, c) => {
  const missing = torchMissing();
  if (missing) return console.log(`SKIP: ${missing}`);
  const s = await site(c.env as Record<string, string>);
  const data = await s.run(["demo", "data", "-c", "tiny"]);
  assert.equal(data.code, 0, data.stderr);

  await t.step("2 nodes × 1 process: one world, identical parameters, node ranks", async () => {
    const run = await ddpOnSlurm(s, "run.env.nproc_per_node=1");
    assert.equal(run.state, "COMPLETED", run.log);
    assertNodeRanks(assertDdpWorld(run.log, 2), 1);
    const script = Deno.readTextFileSync(path.join(run.jobDir, "sbatch.sh"));
    assert.match(script, /--node_rank="\$SLURM_NODEID"/);
    assert.match(script, /--rdzv_endpoint="\$NEMOTRON_HEAD_NODE":17830/);
    assert.match(
      script,
      /NEMOTRON_HEAD_NODE="\$\(scontrol show hostnames "\$\{SLURM_JOB_NODELIST\}" \| head -n 1\)"/,
    );
    assert.match(
      run.log,
      /\[artifact\] published demo-ddp-model-tiny:v\d+ .*\(inputs: demo-data-tiny:v1\)/,
    );
  });

  await t.step("2 nodes × 2 processes: world size 4", async () => {
    const run = await ddpOnSlurm(s); // the recipe's config: nproc_per_node = 2
    assert.equal(run.state, "COMPLETED", run.log);
    assertNodeRanks(assertDdpWorld(run.log, 4), 2);
  });

  await t.step("a rank on node2 fails: the whole job ends, node2 named", async () => {
    // 100000 steps would take hours: only the failure ends this job
    const run = await ddpOnSlurm(
      s,
      "run.env.nproc_per_node=1",
      "+train.fail_host=node2",
      "train.steps=100000",
    );
    assert.equal(run.state, "FAILED");
    assert.equal(run.exitCode, 7, "the failing rank's own exit code, not torchrun's 1");
    const status = await s.run(["jobs", "status", run.id]);
    assert.match(
      status.stdout,
      /failed on: node2 \(rank 1: exit code 7, torchrun's first observed failure\)/,
    );
  });

  await t.step("the profile's python cannot import torch: each task says so, exit 2", async () => {
    const noTorch = path.join(jobRoot(), "python-without-torch");
    Deno.writeTextFileSync(noTorch, `#!/bin/sh\nexec ${PYTHON} -S "$@"\n`, { mode: 0o755 });
    const run = await ddpOnSlurm(s, "run.env.nproc_per_node=1", `run.env.python=${noTorch}`);
    assert.equal(run.state, "FAILED");
    assert.equal(run.exitCode, 2);
    assert.match(
      run.log,
      /the profile's python \(.*python-without-torch\) cannot import torch on this node/,
    );
    assert.match(run.log, /python3-torch/);
    assert.doesNotMatch(run.log, /No module named/);
  });

  await t.step("direct launch on 2 nodes: node2's task exits 7, the job exits 7", async () => {
    const root = jobRoot();
    const job = buildSlurmJob({
      name: "mn-direct",
      mode: "batch",
      launch: "direct",
      profile: { remote_job_dir: root, time: "5", nodes: 2 },
      // node1's task would sleep 5 minutes: only --kill-on-bad-exit ends it
      command: ["bash", "-c", 'if [ "$SLURM_NODEID" = 1 ]; then exit 7; fi; sleep 300'],
    });
    prepareJobDir(job, await renderSbatch(job));
    const prevHome = Deno.env.get("NEMOTRON_HOME");
    Deno.env.set("NEMOTRON_HOME", s.home);
    try {
      const sub = await submitJob(job);
      const [state, code] = await waitForEnd(sub.slurm_job_id);
      assert.equal(state, "FAILED");
      assert.equal(code, 7, "the failing task's code, not the killed task's 143");
      const status = await s.run(["jobs", "status", sub.slurm_job_id]);
      assert.match(status.stdout, /exit code: 7/);
      assert.match(status.stdout, /failed on: node2 \(task 1: exit code 7\)/);
    } finally {
      if (prevHome === undefined) Deno.env.delete("NEMOTRON_HOME");
      else Deno.env.set("NEMOTRON_HOME", prevHome);
    }
  });

  await t.step(
    "direct on 2 nodes: one task per node, cpus_per_task on srun, srun --wait",
    async () => {
      const root = jobRoot();
      const job = buildSlurmJob({
        name: "mn-flags",
        mode: "batch",
        launch: "direct",
        // ntasks_per_node = 2 is ignored for direct (one copy of the script per node)
        profile: {
          remote_job_dir: root,
          time: "5",
          nodes: 2,
          ntasks_per_node: 2,
          cpus_per_task: 2,
          srun_wait: 3,
        },
        // node1's task hangs for 5 minutes after node2's ended: only srun --wait ends it
        command: [
          "bash",
          "-c",
          'echo "task $SLURM_PROCID on $(hostname) cpus=$SLURM_CPUS_PER_TASK"; ' +
          'if [ "$SLURM_NODEID" = 0 ]; then sleep 300; fi',
        ],
      });
      prepareJobDir(job, await renderSbatch(job));
      const prevHome = Deno.env.get("NEMOTRON_HOME");
      Deno.env.set("NEMOTRON_HOME", s.home);
      try {
        const sub = await submitJob(job);
        const [state] = await waitForEnd(sub.slurm_job_id, 120_000);
        assert.notEqual(state, "COMPLETED", "the hung task was ended by srun --wait");
        const log = Deno.readTextFileSync(
          path.join(job.logsDir, `log-${job.slurmName}_${sub.slurm_job_id}_0.out`),
        );
        const tasks = log.split("\n").filter((l) => l.startsWith("task ")).sort();
        assert.deepEqual(tasks, ["task 0 on node1 cpus=2", "task 1 on node2 cpus=2"]);
        // (a task sees cpus=2 from the batch environment anyway; the srun line must carry it)
        assert.match(
          Deno.readTextFileSync(job.scriptPath),
          /--ntasks-per-node=1 --kill-on-bad-exit=1 \\\n {2}--wait=3 --cpus-per-task=2 \\\n/,
        );
      } finally {
        if (prevHome === undefined) Deno.env.delete("NEMOTRON_HOME");
        else Deno.env.set("NEMOTRON_HOME", prevHome);
      }
    },
  );

  await t.step(
    "data → ddp as one pipeline: ddp waits for data (afterok) and uses its artifact",
    async () => {
      const r = await runCli([
        "-c",
        "tiny",
        "--batch",
        "mn1",
        "--",
        "-c",
        "tiny",
        "--batch",
        "mn",
        "run.env.nproc_per_node=1",
      ], {
        cwd: s.cwd,
        script: path.join(ROOT, "tests", "fixtures", "multinode", "pipe_ddp.ts"),
        env: {
          ...c.env,
          HOME: path.dirname(s.home),
          NEMOTRON_HOME: s.home,
          NEMOTRON_ENV_FILE: "",
          DENO_DIR,
        },
      });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
      const dataId = out.data[0].slurm_job_id;
      const ddpId = out.ddp[0].slurm_job_id;
      const manifest = JSON.parse(Deno.readTextFileSync(path.join(out.ddp[0].job_dir, "job.json")));
      assert.equal(manifest.dependency, `afterok:${dataId}`);
      assert.deepEqual(await waitForEnd(dataId), ["COMPLETED", 0]);
      assert.deepEqual(await waitForEnd(ddpId), ["COMPLETED", 0]);
      const logs = await s.run(["jobs", "logs", ddpId]);
      assertDdpWorld(logs.stdout, 2);
      // ddp trained on what the data stage published (the latest version when ddp started)
      const dataLog = (await s.run(["jobs", "logs", dataId])).stdout;
      const published = /\[artifact\] published (demo-data-tiny:v\d+)/.exec(dataLog)?.[1];
      assert.ok(published, dataLog);
      assert.ok(logs.stdout.includes(`(inputs: ${published})`), logs.stdout);
    },
  );
});
