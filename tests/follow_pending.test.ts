/**
 * Following a job that waits to start, on the real local Slurm cluster: a job submitted with
 * `--begin` stays PENDING (reason BeginTime) with a start time Slurm knows. While it waits, the
 * follower shows one live status line (state, reason, waited time, Slurm's estimate); once the job
 * runs, the line is cleared and the log follows. In a real terminal (tmux) the line is redrawn in
 * place and is gone from the screen when the log starts.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { slurmTest } from "./slurm_cluster.ts";
import { tempDir } from "./cli_helpers.ts";
import { followJob, pendingStatusLine } from "../lib/exec/follow.ts";
import { attemptLogPath } from "../lib/exec/job_dir.ts";
import type { SlurmJobStatus } from "../lib/exec/slurm_state.ts";

const HERE = path.dirname(new URL(import.meta.url).pathname);

Deno.test("pendingStatusLine: state, reason, waited time, estimate only when Slurm has one", () => {
  const st = {
    id: "7",
    state: "PENDING",
    phase: "pending",
    terminal: false,
    exitCode: null,
    signal: null,
    restarts: 0,
    nodes: null,
    reason: "Resources",
    elapsed: null,
    startTime: "2026-11-30T16:05:00",
    endTime: null,
    source: "squeue",
  } as SlurmJobStatus;
  assert.equal(
    pendingStatusLine("7", st, 65_000),
    "[nemotron] job 7 PENDING (Resources), waiting 1m05s, Slurm estimates the start at " +
      "2026-11-30 16:05:00",
  );
  assert.equal(
    pendingStatusLine("7", { ...st, reason: "None", startTime: "N/A" }, 3_000),
    "[nemotron] job 7 PENDING, waiting 3s",
  );
});

/**
 * Submit a bare-metal job that writes to the attempt log and starts `delay` seconds from now, or
 * (delay "hold") only once the test releases it.
 */
async function submitDelayed(dir: string, delay: number | "hold"): Promise<string> {
  await Deno.mkdir(path.join(dir, "logs"), { recursive: true });
  const log = attemptLogPath(dir, "pending-test", "%j", 0); // sbatch fills in %j
  const r = await new Deno.Command("sbatch", {
    args: [
      "--parsable",
      "--job-name=pending-test",
      delay === "hold" ? "--hold" : `--begin=now+${delay}`,
      `--output=${log}`,
      "--wrap",
      "echo hello from the job",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout).trim().split(";")[0];
}

slurmTest("follow: a waiting job shows a live status line, then its log", async () => {
  const dir = await tempDir("nemotron-pending-");
  const id = await submitDelayed(dir, 4);
  const live: (string | null)[] = [];
  const out: string[] = [];
  const notes: string[] = [];
  const r = await followJob({ slurm_job_id: id, job_dir: dir, slurm_name: "pending-test" }, {
    live: (l) => live.push(l),
    write: (b) => out.push(new TextDecoder().decode(b)),
    note: (l) => notes.push(l),
    pollMs: 300,
    handleSigint: false,
  });
  assert.equal(r.exitCode, 0, notes.join("\n"));
  const shown = live.filter((l): l is string => l !== null);
  assert.ok(shown.length > 0, "a status line while pending");
  assert.match(shown[0], new RegExp(`^\\[nemotron\\] job ${id} PENDING \\(BeginTime\\), waiting`));
  assert.match(shown[0], /Slurm estimates the start at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  // Cleared once, after the last status line, before the job's end is reported.
  assert.equal(live.filter((l) => l === null).length, 1);
  assert.equal(live[live.length - 1], null);
  assert.match(out.join(""), /hello from the job/);
});

slurmTest(
  "follow in a real terminal: the status line is redrawn in place, then replaced",
  async () => {
    const dir = await tempDir("nemotron-pending-tty-");
    // Held until the status line is on screen, so a slow start cannot skip the waiting phase.
    const id = await submitDelayed(dir, "hold");
    const socket = `nemotron-pending-${Deno.pid}`;
    const done = path.join(dir, "done");
    const script = path.join(HERE, "fixtures", "follow_job.ts");
    const tmux = async (args: string[]) =>
      new TextDecoder().decode(
        (await new Deno.Command("tmux", { args: ["-L", socket, ...args], stdout: "piped" })
          .output()).stdout,
      );
    await tmux([
      "new-session",
      "-d",
      "-x",
      "100",
      "-y",
      "10",
      "sh",
      "-c",
      `'${Deno.execPath()}' run -A --quiet '${script}' ${id} '${dir}' pending-test; ` +
      `touch '${done}'; sleep 30`,
    ]);
    try {
      let sawPending = "";
      for (let i = 0; i < 600 && !sawPending; i++) {
        const screen = await tmux(["capture-pane", "-p"]);
        if (/PENDING \(JobHeldUser\), waiting/.test(screen)) sawPending = screen;
        else await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(sawPending, "the status line was on screen while the job waited");
      await new Promise((r) => setTimeout(r, 1500)); // a few redraws of the same line
      const again = await tmux(["capture-pane", "-p"]);
      assert.equal(again.match(/PENDING/g)?.length, 1, again);
      const rel = await new Deno.Command("scontrol", { args: ["release", id] }).output();
      assert.equal(rel.code, 0);
      for (let i = 0; i < 1200; i++) {
        try {
          Deno.statSync(done);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      // One line, redrawn in place: never two status lines on the screen at once.
      assert.equal(sawPending.match(/PENDING/g)?.length, 1, sawPending);
      const end = await tmux(["capture-pane", "-p"]);
      assert.doesNotMatch(end, /PENDING/, "the line was cleared when the job started");
      assert.match(end, /hello from the job/);
      assert.match(end, new RegExp(`job ${id} COMPLETED`));
    } finally {
      await tmux(["kill-server"]);
    }
  },
);
