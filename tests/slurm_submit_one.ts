/** Child process for the concurrent-submission test: build, prepare and submit one small job. */
import { buildSlurmJob, renderSbatch } from "../lib/exec/slurm.ts";
import { prepareJobDir } from "../lib/exec/job_dir.ts";
import { submitJob } from "../lib/exec/submit.ts";

const [root, name] = Deno.args;
const job = buildSlurmJob({
  name,
  mode: "batch",
  launch: "direct",
  profile: { remote_job_dir: root, time: "5" },
  command: ["true"],
  env: { SOME_TOKEN: `token of ${name}` },
});
prepareJobDir(job, await renderSbatch(job));
const sub = await submitJob(job);
console.log(JSON.stringify(sub));
