/**
 * Slurm state mapping and output parsing, with vectors copied from the real squeue/sacct of the
 * local cluster (Slurm 22.05) and written down by hand.
 */
import assert from "node:assert/strict";
import {
  type CommandRunner,
  jobState,
  mapSlurmState,
  parseExitPair,
  parseSacct,
  parseSqueue,
} from "../lib/exec/slurm_state.ts";
import { exitCodeOf } from "../lib/exec/follow.ts";

Deno.test("every Slurm state maps; flags and suffixes are stripped; unknown passes through", () => {
  const cases: [string, string, string, boolean][] = [
    ["PENDING", "PENDING", "pending", false],
    ["CONFIGURING", "CONFIGURING", "pending", false],
    ["REQUEUED", "REQUEUED", "pending", false],
    ["REQUEUE_HOLD", "REQUEUE_HOLD", "pending", false],
    ["RUNNING", "RUNNING", "running", false],
    ["COMPLETING", "COMPLETING", "running", false],
    ["SUSPENDED", "SUSPENDED", "running", false],
    ["COMPLETED", "COMPLETED", "succeeded", true],
    ["FAILED", "FAILED", "failed", true],
    ["TIMEOUT", "TIMEOUT", "failed", true],
    ["NODE_FAIL", "NODE_FAIL", "failed", true],
    ["PREEMPTED", "PREEMPTED", "failed", true],
    ["OUT_OF_MEMORY", "OUT_OF_MEMORY", "failed", true],
    ["BOOT_FAIL", "BOOT_FAIL", "failed", true],
    ["DEADLINE", "DEADLINE", "failed", true],
    ["CANCELLED by 0", "CANCELLED", "cancelled", true],
    ["CANCELLED+", "CANCELLED", "cancelled", true],
    ["running", "RUNNING", "running", false],
    ["BRAND_NEW_STATE", "BRAND_NEW_STATE", "unknown", false],
    ["", "UNKNOWN", "unknown", false],
  ];
  for (const [raw, state, phase, terminal] of cases) {
    assert.deepEqual(mapSlurmState(raw), { state, phase, terminal }, raw);
  }
});

Deno.test("squeue: wait statuses decode to exit code and signal; restarts and times kept", () => {
  const m = parseSqueue(
    [
      "1|1|N/A|COMPLETED|0|0|vm|0:00|2026-11-22T18:20:02|2026-11-22T18:20:02|None|",
      "2|2|N/A|FAILED|1024|2|vm|0:01|2026-11-22T18:21:35|2026-11-22T18:21:36|NonZeroExitCode|",
      "3|3|N/A|CANCELLED|15|0|vm|0:05|2026-11-22T18:22:00|2026-11-22T18:22:05|None|",
      "9|9|N/A|PENDING|0|0||0:00|N/A|N/A|DependencyNeverSatisfied|",
    ].join("\n"),
  );
  assert.equal(m.size, 4);
  const j1 = m.get("1")!;
  assert.equal(j1.exitCode, 0);
  assert.equal(j1.signal, null);
  assert.equal(j1.nodes, "vm");
  const j2 = m.get("2")!;
  assert.equal(j2.state, "FAILED");
  assert.equal(j2.exitCode, 4);
  assert.equal(j2.restarts, 2);
  assert.equal(j2.reason, "NonZeroExitCode");
  const j3 = m.get("3")!;
  assert.equal(j3.exitCode, 0);
  assert.equal(j3.signal, 15);
  assert.equal(exitCodeOf(j3), 143);
  const j9 = m.get("9")!;
  assert.equal(j9.nodes, null);
  assert.equal(j9.startTime, null);
  assert.equal(j9.reason, "DependencyNeverSatisfied");
});

Deno.test("squeue: array tasks are combined under the array job id", () => {
  const running = parseSqueue(
    [
      "4|4|3-4|PENDING|0|0||0:00|N/A|N/A|Resources|",
      "6|4|2|RUNNING|0|0|vm|0:00|2026-11-22T18:29:48|NONE|None|",
      "5|4|1|RUNNING|0|0|vm|0:00|2026-11-22T18:29:48|NONE|None|",
    ].join("\n"),
  );
  assert.deepEqual([...running.keys()], ["4"]);
  const r = running.get("4")!;
  assert.equal(r.phase, "running");
  assert.equal(r.terminal, false);
  assert.equal(r.endTime, null);
  assert.deepEqual(r.tasks, { "3-4": "PENDING", "2": "RUNNING", "1": "RUNNING" });
  const done = parseSqueue(
    [
      "4|4|4|COMPLETED|0|0|vm|0:02|2026-11-22T18:29:50|2026-11-22T18:29:52|None|",
      "7|4|3|COMPLETED|0|0|vm|0:02|2026-11-22T18:29:50|2026-11-22T18:29:52|None|",
      "5|4|1|COMPLETED|0|0|vm|0:02|2026-11-22T18:29:48|2026-11-22T18:29:50|None|",
      "6|4|2|FAILED|768|0|vm|0:02|2026-11-22T18:29:48|2026-11-22T18:29:50|NonZeroExitCode|",
    ].join("\n"),
  ).get("4")!;
  assert.equal(done.terminal, true);
  assert.equal(done.state, "FAILED");
  assert.equal(done.exitCode, 3);
});

Deno.test("sacct: exit pairs, CANCELLED by uid, array rows", () => {
  assert.deepEqual(parseExitPair("4:0"), { exitCode: 4, signal: null });
  assert.deepEqual(parseExitPair("0:15"), { exitCode: 0, signal: 15 });
  assert.deepEqual(parseExitPair("garbage"), { exitCode: null, signal: null });
  const m = parseSacct(
    [
      "12|12|COMPLETED|0:0|vm|00:00:03|2026-11-22T18:00:00|2026-11-22T18:00:03",
      "13|13|CANCELLED by 1000|0:15|vm|00:01:00|2026-11-22T18:00:00|2026-11-22T18:01:00",
      "20|20_1|COMPLETED|0:0|vm|00:00:01|2026-11-22T18:00:00|2026-11-22T18:00:01",
      "21|20_2|TIMEOUT|0:0|vm|00:01:00|2026-11-22T18:00:00|2026-11-22T18:01:00",
    ].join("\n"),
  );
  assert.equal(m.get("12")!.phase, "succeeded");
  assert.equal(m.get("13")!.state, "CANCELLED");
  assert.equal(m.get("13")!.signal, 15);
  assert.equal(m.get("20")!.state, "TIMEOUT");
  assert.deepEqual(m.get("20")!.tasks, { "1": "COMPLETED", "2": "TIMEOUT" });
});

Deno.test("jobState: one squeue call for all jobs, one sacct call for the forgotten ones", async () => {
  const calls: string[] = [];
  const run: CommandRunner = (cmd, args) => {
    calls.push(`${cmd} ${args.join(" ")}`);
    if (cmd === "squeue") {
      return Promise.resolve({
        code: 0,
        stdout: "10|10|N/A|RUNNING|0|0|vm|0:05|2026-11-22T18:00:00|NONE|None|\n",
        stderr: "",
      });
    }
    return Promise.resolve({
      code: 0,
      stdout: "11|11|FAILED|2:0|vm|00:00:01|2026-11-22T17:00:00|2026-11-22T17:00:01\n",
      stderr: "",
    });
  };
  const m = await jobState(["10", "11", "12", "10"], { run, accounting: true });
  assert.equal(calls.length, 2);
  assert.match(calls[0], /^squeue -h -t all -j 10,11,12 -O /);
  assert.match(calls[1], /^sacct -X -n -P -j 11,12 /);
  assert.equal(m.get("10")!.phase, "running");
  assert.equal(m.get("11")!.exitCode, 2);
  assert.equal(m.has("12"), false);
  // Without accounting there is no sacct call; "Invalid job id" from squeue means none known.
  calls.length = 0;
  const none = await jobState(["99"], {
    run: (cmd, args) => {
      calls.push(`${cmd} ${args.join(" ")}`);
      return Promise.resolve({
        code: 1,
        stdout: "",
        stderr: "slurm_load_jobs error: Invalid job id specified",
      });
    },
    accounting: false,
  });
  assert.equal(none.size, 0);
  assert.equal(calls.length, 1);
});
