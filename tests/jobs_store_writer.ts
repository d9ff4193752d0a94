/** Child process for tests/jobs_store.test.ts: inserts N rows (and updates them) into one store. */
import { JobStore } from "../lib/jobs/store.ts";

const [file, tag, n] = Deno.args;
const store = await JobStore.open(file);
for (let i = 0; i < Number(n); i++) {
  const now = new Date().toISOString();
  store.insert({
    slurm_job_id: `${tag}${i}`,
    cluster: "c",
    key: `job-${tag}-${i}`,
    name: `job ${tag} ${i}`,
    slurm_name: `job-${tag}-${i}`,
    profile: "p",
    mode: "batch",
    job_dir: `/jobs/${tag}/${i}`,
    pipeline: null,
    stage: null,
    stages: null,
    dependency: null,
    state: "PENDING",
    terminal: false,
    exit_code: null,
    signal: null,
    attempts: 0,
    nodes: null,
    reason: null,
    elapsed: null,
    secrets_file: null,
    submitted_at: now,
    started_at: null,
    ended_at: null,
    updated_at: now,
    note: null,
  });
  store.update(`job-${tag}-${i}`, { state: "RUNNING", attempts: 1 });
}
store.close();
