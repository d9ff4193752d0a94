/**
 * Ray clusters across real Slurm nodes (templates/ray.sub.j2), on PRIVATE 2- and 3-node clusters
 * (tests/multinode_cluster.ts; never the shared default cluster).
 *
 * Ray itself is not installable here, so the job's PATH gets a STAND-IN `ray`
 * (tests/fixtures/ray/ray: a tiny TCP head that workers register with, `ray status` in Ray's
 * layout, NOT Ray). It records every call with its host, so these tests see who started what on
 * which node. Proven: the orchestration (head on the first node, one worker per other node, join
 * wait, driver once on the head with RAY_ADDRESS, exit code, teardown, timeouts naming the node,
 * per-role logs, `jobs status`/`jobs logs --role`). Not proven: real Ray's flags beyond the
 * stand-in's whitelist of `ray start` option names, real raylet/GCS behaviour, GPUs.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { buildSlurmJob, renderSbatch } from "../lib/exec/slurm.ts";
import { prepareJobDir } from "../lib/exec/job_dir.ts";
import { submitJob } from "../lib/exec/submit.ts";
import { runCli, tempDir, writeTree } from "./cli_helpers.ts";
import { jobRoot, type MultinodeCluster, multinodeTest, waitForEnd } from "./multinode_cluster.ts";
import { releaseRequeueHolds } from "./slurm_cluster.ts";

const STANDIN_DIR = path.resolve(path.dirname(new URL(import.meta.url).pathname), "fixtures/ray");
const HOME = Deno.makeTempDirSync({ prefix: "nemotron-mn-home-" });
Deno.env.set("NEMOTRON_HOME", HOME);

interface RayRun {
  readonly id: string;
  readonly jobDir: string;
  readonly record: string;
  readonly state: string;
  readonly exitCode: number;
}

/** One stand-in call, as recorded by tests/fixtures/ray/ray. */
interface StandinCall {
  event: string;
  host: string;
  pid: number;
  argv: string[];
  ip?: string;
  port?: number;
  address?: string;
  cuda?: string | null;
}

/** Submit a Ray cluster job whose driver is `driver` (bash), wait for its end. */
async function runRayJob(
  c: MultinodeCluster,
  driver: string,
  profile: Record<string, unknown> = {},
  root: string = jobRoot(),
  gpusPerNode = 0,
): Promise<RayRun> {
  const record = path.join(root, "standin.jsonl");
  const job = buildSlurmJob({
    name: "ray-mn",
    mode: "batch",
    launch: "ray",
    resources: { nodes: c.nodes, gpus_per_node: gpusPerNode },
    profile: {
      remote_job_dir: root,
      time: "5",
      ray_port: 17900 + c.nodes,
      ray_head_timeout: 30,
      ray_join_timeout: 30,
      env_vars: {
        PATH: `${STANDIN_DIR}:${Deno.env.get("PATH")}`,
        NEMOTRON_RAY_STANDIN_LOG: record,
        NEMOTRON_RAY_STANDIN_DIR: path.join(root, "standin-pids"),
      },
      ...profile,
    },
    command: ["bash", "-c", driver],
  });
  prepareJobDir(job, await renderSbatch(job));
  const sub = await submitJob(job);
  const [state, exitCode] = await waitForEnd(sub.slurm_job_id);
  return { id: sub.slurm_job_id, jobDir: job.jobDir, record, state, exitCode };
}

function calls(run: RayRun): StandinCall[] {
  return Deno.readTextFileSync(run.record).trim().split("\n").map((l) => JSON.parse(l));
}

function driverLog(run: RayRun): string {
  return Deno.readTextFileSync(
    path.join(run.jobDir, "logs", `ray_${run.id}_0`, "ray-driver.log"),
  );
}

function batchLog(run: RayRun): string {
  return Deno.readTextFileSync(path.join(run.jobDir, "logs", `sbatch-ray-mn_${run.id}.out`));
}

function cli(c: MultinodeCluster, ...args: string[]) {
  return runCli(args, { env: { ...c.env, NEMOTRON_HOME: HOME } });
}

/** Every stand-in head/worker process has ended (recorded `exit`, or is gone). */
function assertAllStopped(run: RayRun): void {
  const all = calls(run);
  for (const start of all.filter((x) => x.event === "start-head" || x.event === "start-worker")) {
    let alive = false;
    try {
      // the same process (not a recycled pid): its command line is the stand-in's
      alive = Deno.readTextFileSync(`/proc/${start.pid}/cmdline`).includes("fixtures/ray/ray");
    } catch { /* gone */ }
    assert.ok(!alive, `stand-in ${start.event} on ${start.host} (pid ${start.pid}) still runs`);
  }
}

const DRIVER = [
  'echo "driver on $(hostname) RAY_ADDRESS=${RAY_ADDRESS}"',
  'cat "${NEMOTRON_JOB_DIR}/ray_cluster_info.json"',
  'ray status --address "${RAY_ADDRESS}"',
].join("; ");

/** The cluster came up on every node, the driver ran once on node1 against the head. */
function assertClusterRan(c: MultinodeCluster, run: RayRun): void {
  const all = calls(run);
  const heads = all.filter((x) => x.event === "start-head");
  assert.equal(heads.length, 1, JSON.stringify(heads));
  assert.equal(heads[0].host, "node1");
  assert.equal(heads[0].ip, c.address(1));
  const address = `${c.address(1)}:${17900 + c.nodes}`;
  const workers = all.filter((x) => x.event === "start-worker");
  assert.deepEqual(workers.map((w) => w.host).sort(), c.nodeNames.slice(1));
  for (const w of workers) {
    assert.equal(w.address, address);
    assert.equal(w.ip, c.address(Number(w.host.slice(4))), `${w.host} advertises its own address`);
  }
  const registered = all.filter((x) => x.event === "registered").map((x) => x.host).sort();
  assert.deepEqual(registered, c.nodeNames.slice(1));

  const log = driverLog(run);
  const lines = log.split("\n").filter((l) => l.startsWith("driver on "));
  assert.deepEqual(lines, [`driver on node1 RAY_ADDRESS=${address}`], log);
  const info = JSON.parse(log.split("\n").find((l) => l.startsWith("{"))!);
  assert.equal(info.head_node, "node1");
  assert.equal(info.head_ip, c.address(1));
  assert.equal(info.address, address);
  assert.equal(info.nodes, c.nodes);
  for (let i = 0; i < c.nodes; i++) {
    assert.match(log, new RegExp(`0\\.0/1\\.0 nemotron_job${run.id}_node${i}\\n`));
  }
  // the driver asked the head once itself; the stand-in saw that call come from node1
  const statusFromDriver = all.filter((x) =>
    x.event === "status" && x.argv.includes("--address") && x.host === "node1"
  );
  assert.ok(statusFromDriver.length >= 1);
  assertAllStopped(run);
}

multinodeTest("ray on 2 Slurm nodes: up, driver once on the head, exit codes", 2, async (t, c) => {
  await t.step("a 2-node cluster comes up and the driver's exit code 0 is the job's", async () => {
    const run = await runRayJob(c, DRIVER);
    assert.equal(run.state, "COMPLETED", batchLog(run));
    assert.equal(run.exitCode, 0);
    assertClusterRan(c, run);

    const status = await cli(c, "jobs", "status", run.id);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /ray: +attempt 0: up: all 2 nodes joined \(node\[1-2\]\)/);
    assert.match(status.stdout, /driver exited with code 0/);

    const logs = await cli(c, "jobs", "logs", run.id);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, driverLog(run), "jobs logs shows the driver's log by default");
    const head = await cli(c, "jobs", "logs", run.id, "--role", "head");
    assert.match(head.stdout, /Head at .* on node1/);
    assert.match(head.stdout, /node joined: node2/);
    const worker = await cli(c, "jobs", "logs", run.id, "--role", "worker-1");
    assert.match(worker.stdout, /Worker node2 joined/);
    const none = await cli(c, "jobs", "logs", run.id, "--role", "worker-2");
    assert.equal(none.code, 2);
    assert.match(none.stderr, /roles with logs: driver, head, worker-1/);
  });

  await t.step("a failing driver (exit 3) ends the job with 3 and stops every srun", async () => {
    // the workers and the head would block forever; only the teardown can end them
    const run = await runRayJob(c, 'echo "driver on $(hostname)"; exit 3');
    assert.equal(run.state, "FAILED");
    assert.equal(run.exitCode, 3);
    assertAllStopped(run);
    assert.match(batchLog(run), /attempt 0 exited with code 3 \(driver: 3\)/);
    const status = await cli(c, "jobs", "status", run.id);
    assert.match(status.stdout, /driver exited with code 3/);
    assert.match(status.stdout, /failed on: node1 \(task 0: exit code 3\)/);
  });
});

multinodeTest(
  "ray on 2 Slurm nodes: a worker dying under the driver ends the job",
  2,
  async (_t, c) => {
    // the driver would sleep for 10 minutes; the worker on node2 is killed once the driver runs
    const root = jobRoot();
    const record = path.join(root, "standin.jsonl");
    const started = path.join(root, "driver-started");
    const pending = runRayJob(c, `touch ${JSON.stringify(started)}; sleep 600`, {
      ray_stop_timeout: 5,
    }, root);
    for (let i = 0; i < 600; i++) {
      await new Promise((r) => setTimeout(r, 200));
      try {
        Deno.statSync(started);
        break;
      } catch { /* not yet */ }
    }
    const worker = Deno.readTextFileSync(record).trim().split("\n").map((l) => JSON.parse(l))
      .find((x: StandinCall) => x.event === "registered") as StandinCall | undefined;
    assert.ok(worker, "the worker registered");
    assert.equal(worker.host, "node2");
    Deno.kill(worker.pid, "SIGKILL"); // node2's Ray process dies
    const run = await pending;
    assert.equal(run.state, "FAILED");
    assert.equal(run.exitCode, 1);
    assert.match(
      batchLog(run),
      /the Ray worker-1 on node2 exited \(code \d+\) while the driver ran/,
    );
    assertAllStopped(run);
    const status = await cli(c, "jobs", "status", run.id);
    assert.match(status.stdout, /a Ray process died on node2/);
  },
);

multinodeTest(
  "ray on 3 Slurm nodes: up; a worker that never joins fails the job",
  3,
  async (t, c) => {
    await t.step("a 3-node cluster comes up", async () => {
      const run = await runRayJob(c, DRIVER);
      assert.equal(run.state, "COMPLETED", batchLog(run));
      assertClusterRan(c, run);
    });

    await t.step(
      "node3 never joins: the job fails within the join timeout, naming node3",
      async () => {
        const run = await runRayJob(c, 'echo "driver ran"', {
          ray_join_timeout: 5,
          env_vars: {
            PATH: `${STANDIN_DIR}:${Deno.env.get("PATH")}`,
            NEMOTRON_RAY_STANDIN_NOJOIN: "node3",
          },
        });
        assert.equal(run.state, "FAILED");
        assert.equal(run.exitCode, 1);
        const log = batchLog(run);
        assert.match(log, /Ray node\(s\) node3 did not join the cluster at \S+ within 5 s/);
        assert.match(log, /ray-worker-2\.log/);
        assert.doesNotMatch(log, /node2 did not join/);
        const driver = path.join(run.jobDir, "logs", `ray_${run.id}_0`, "ray-driver.log");
        assert.throws(() => Deno.statSync(driver), "the driver never started");
        const status = await cli(c, "jobs", "status", run.id);
        assert.match(status.stdout, /ray: +attempt 0: did not join: node3/);
      },
    );
  },
);

multinodeTest(
  "ray on 2 Slurm nodes: a requeued attempt starts a fresh cluster",
  2,
  async (_t, c) => {
    // attempt 0's driver fails (retries = 1 requeues it); stale files planted for attempt 1 before
    // it starts must not be read: the template starts every attempt from an empty directory
    const root = jobRoot();
    const jobsDir = path.join(root, "jobs");
    const stop = new AbortController();
    let planted = "";
    let id = "";
    const watcher = (async () => {
      while (!stop.signal.aborted && !planted) {
        await new Promise((r) => setTimeout(r, 100));
        let jobDir = "";
        try {
          jobDir = path.join(jobsDir, [...Deno.readDirSync(jobsDir)][0].name);
          id = JSON.parse(Deno.readTextFileSync(path.join(jobDir, "job.json"))).slurm_job_id ?? "";
        } catch { /* not yet */ }
        if (!id) continue;
        try {
          Deno.statSync(path.join(jobDir, "ray", `${id}_0`, "events.tsv"));
        } catch {
          continue;
        }
        const next = path.join(jobDir, "ray", `${id}_1`);
        Deno.mkdirSync(next, { recursive: true });
        Deno.writeTextFileSync(
          path.join(next, "events.tsv"),
          "1\thead_up\tnode9\tstale\n2\tall_joined\tnode9\t9\n",
        );
        planted = next;
      }
    })();
    const pending = runRayJob(
      c,
      'if [ "${NEMOTRON_ATTEMPT}" = 0 ]; then echo "first attempt fails"; exit 3; fi; ' +
        'echo "second attempt on $(hostname)"',
      { retries: 1 },
      root,
    );
    await watcher;
    // release the BeginTime hold Slurm puts on a requeued job (minutes otherwise)
    const releasing = releaseRequeueHolds(id, stop.signal);
    const run = await pending;
    stop.abort();
    await releasing;
    assert.ok(planted, "stale files were planted for attempt 1");
    assert.equal(run.state, "COMPLETED", batchLog(run));
    assert.equal(run.exitCode, 0);
    const events1 = Deno.readTextFileSync(
      path.join(run.jobDir, "ray", `${run.id}_1`, "events.tsv"),
    );
    assert.doesNotMatch(events1, /node9|stale/, "the planted events are gone");
    assert.match(events1, /\tall_joined\tnode\[1-2\]\t2\n/);
    const events0 = Deno.readTextFileSync(
      path.join(run.jobDir, "ray", `${run.id}_0`, "events.tsv"),
    );
    assert.match(events0, /\tdriver_exit\tnode1\t3\n/);
    assert.equal(
      calls(run).filter((x) => x.event === "start-head").length,
      2,
      "a head per attempt",
    );
    const driver1 = Deno.readTextFileSync(
      path.join(run.jobDir, "logs", `ray_${run.id}_1`, "ray-driver.log"),
    );
    assert.match(driver1, /^second attempt on node1$/m);
    assert.match(driverLog(run), /first attempt fails/, "attempt 0's driver log is kept");
    const status = await cli(c, "jobs", "status", run.id);
    assert.match(
      status.stdout,
      /ray: +attempt 1: up: all 2 nodes joined \(node\[1-2\]\); driver exited with code 0/,
    );
    const logs = await cli(c, "jobs", "logs", run.id);
    assert.match(logs.stdout, /second attempt on node1/, "jobs logs: the latest attempt's driver");
  },
);

multinodeTest(
  "ray on 2 Slurm nodes with 2 (fake) GPUs each: GPUs per node reach every role",
  2,
  async (_t, c) => {
    const run = await runRayJob(
      c,
      'echo "driver GPUs ${CUDA_VISIBLE_DEVICES:-none}"; ray status --address "${RAY_ADDRESS}"',
      {},
      jobRoot(),
      2,
    );
    assert.equal(run.state, "COMPLETED", batchLog(run));
    const starts = calls(run).filter((x) => x.event === "start-head" || x.event === "start-worker");
    assert.equal(starts.length, 2);
    for (const s of starts) {
      assert.ok(s.argv.includes("--num-gpus=2"), JSON.stringify(s.argv));
      assert.equal(s.cuda, "0,1", `${s.event} on ${s.host} holds the node's 2 GPUs`);
    }
    const log = driverLog(run);
    // --overlap: the driver starts on the head node although the head holds its GPUs
    assert.match(log, /^driver GPUs 0,1$/m);
    assert.match(log, /^ 0\.0\/4\.0 GPU$/m, "the cluster has 2 x 2 GPUs");
  },
  { fakeGpus: 2 },
);

multinodeTest(
  "nano3 data prep rl with nodes = 2, through the CLI: a CPU Ray cluster runs it",
  2,
  async (_t, c) => {
    // STAND-INs on the job's PATH: `ray` (tests/fixtures/ray/ray) and `uv`
    // (tests/fixtures/multinode/bin/uv, which checks the script and config it is given and exits 0)
    const root = jobRoot();
    const cwd = await tempDir("nemotron-mn-prep-");
    const record = path.join(root, "standin.jsonl");
    const bin = path.join(path.dirname(STANDIN_DIR), "multinode", "bin");
    await writeTree(cwd, {
      "env.toml": [
        "[mn]",
        'executor = "slurm"',
        `remote_job_dir = "${path.join(root, "rjd")}"`,
        'time = "00:10:00"',
        'container_image = ""',
        "nodes = 2",
        "ray_port = 17904",
        "ray_head_timeout = 30",
        "ray_join_timeout = 30",
        `env_vars = { PATH = "${STANDIN_DIR}:${bin}:${Deno.env.get("PATH")}", ` +
        `NEMOTRON_RAY_STANDIN_LOG = "${record}" }`,
        "",
      ].join("\n"),
    });
    const env = { ...c.env, NEMOTRON_HOME: HOME, NEMOTRON_ENV_FILE: "" };
    const sub = await runCli(["nano3", "data", "prep", "rl", "--batch", "mn", "--json"], {
      cwd,
      env,
    });
    assert.equal(sub.code, 0, sub.stderr);
    const job = JSON.parse(sub.stdout).jobs[0];
    const [state, code] = await waitForEnd(job.slurm_job_id);
    const logs = await runCli(["jobs", "logs", job.slurm_job_id], { cwd, env });
    assert.equal(state, "COMPLETED", logs.stdout);
    assert.equal(code, 0);
    const head = `${c.address(1)}:17904`;
    assert.match(
      logs.stdout,
      new RegExp(`^uv stand-in on node1 in ${job.job_dir}/code: run `, "m"),
    );
    assert.match(
      logs.stdout,
      /python _nemotron\/nano3\/stage2_rl\/data_prep\.py --config config\.yaml/,
    );
    assert.ok(logs.stdout.includes(`uv stand-in RAY_ADDRESS=${head}`), logs.stdout);
    assert.match(logs.stdout, /uv stand-in: script and config are there/);
    const all = Deno.readTextFileSync(record).trim().split("\n").map((l) => JSON.parse(l));
    const starts = all.filter((x: StandinCall) => x.event.startsWith("start-"));
    assert.deepEqual(starts.map((x: StandinCall) => [x.event, x.host]).sort(), [
      ["start-head", "node1"],
      ["start-worker", "node2"],
    ]);
    for (const s of starts) assert.ok(s.argv.includes("--num-gpus=0"), "CPU data prep: no GPUs");
    const status = await runCli(["jobs", "status", job.slurm_job_id], { cwd, env });
    assert.match(status.stdout, /ray: +attempt 0: up: all 2 nodes joined/);
  },
);
