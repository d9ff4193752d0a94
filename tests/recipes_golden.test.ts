/**
 * Golden files for the nano3 recipe commands (tests/golden/recipes/): `--help`, and `--dry-run`
 * with a local run and with a slurm-style profile (account, partition, remote_job_dir under
 * /lustre/test/jobs, nodes=1, gpus_per_node=8, mounts, a secret env var). Volatile parts (temp
 * dirs, timestamps, random suffixes, the secrets file name, the version) are normalised before
 * comparing. Regenerate with `UPDATE_GOLDEN=1 deno test -A tests/recipes_golden.test.ts`, then
 * read every changed golden by hand before committing.
 *
 * Also: help fits 80 columns, the secret value appears nowhere, and every sbatch script in the
 * goldens passes `bash -n` and `shellcheck`.
 */
import assert from "node:assert/strict";
import { runCli, tempDir, writeTree } from "./cli_helpers.ts";

const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";
const GOLDEN_DIR = new URL("./golden/recipes/", import.meta.url).pathname;
const SECRET = "hf-secret-123";

const ENV_TOML = `[wandb]
project = "nano3-test"
entity = "nemotron-team"

[cluster]
executor = "slurm"
account = "test-account"
partition = "batch"
remote_job_dir = "/lustre/test/jobs"
time = "01:00:00"
nodes = 1
gpus_per_node = 8
mounts = ["/lustre/test/data:/data", "/lustre/test/models:/models"]
env_vars = { HF_TOKEN = "${SECRET}", MY_SETTING = "visible-value" }
`;

/** A golden case: a file name and the argv after `nemotron`. */
interface Case {
  readonly file: string;
  readonly args: readonly string[];
  /** Expected exit code (0 unless the case is an error). */
  readonly code?: number;
}

const COMMANDS: readonly (readonly [string, readonly string[]])[] = [
  ["pretrain", ["nano3", "pretrain"]],
  ["sft", ["nano3", "sft"]],
  ["rl", ["nano3", "rl"]],
  ["eval", ["nano3", "eval"]],
  ["pipe", ["nano3", "pipe"]],
  ["data-prep-pretrain", ["nano3", "data", "prep", "pretrain"]],
  ["data-prep-sft", ["nano3", "data", "prep", "sft"]],
  ["data-prep-rl", ["nano3", "data", "prep", "rl"]],
];

/** Ray-launched stages run on one node in these goldens (run.env.nodes=1). */
const ONE_NODE = new Set(["rl", "data-prep-pretrain", "data-prep-sft", "data-prep-rl"]);

function cases(): Case[] {
  const out: Case[] = [];
  for (const [file, cmd] of COMMANDS) {
    const config = file === "eval" ? [] : ["-c", "tiny"];
    const nodes = ONE_NODE.has(file) ? ["run.env.nodes=1"] : [];
    out.push({ file: `${file}.help.txt`, args: [...cmd, "--help"] });
    out.push({
      file: `${file}.dry-run.local.txt`,
      args: [...cmd, ...config, "--dry-run"],
      // pipe needs --run or --batch: the golden records the usage error
      code: file === "pipe" ? 2 : 0,
    });
    out.push({
      file: `${file}.dry-run.slurm.txt`,
      args: [...cmd, ...config, "-b", "cluster", "--dry-run", ...nodes],
    });
  }
  out.push({
    file: "pretrain.dry-run.local.json",
    args: ["nano3", "pretrain", "-c", "tiny", "-d", "--json"],
  });
  out.push({
    file: "pretrain.dry-run.slurm.json",
    args: ["nano3", "pretrain", "-c", "tiny", "-b", "cluster", "-d", "--json"],
  });
  return out;
}

/** Replace what changes between runs with stable placeholders. */
export function normalise(text: string, dirs: { cwd: string; home: string }): string {
  let t = text;
  for (const [dir, name] of [[dirs.cwd, "<CWD>"], [dirs.home, "<HOME>"]] as const) {
    t = t.replaceAll(dir, name);
    // macOS-style /private prefixes and realpath variants do not occur here; plain replace is enough
  }
  return t
    // Slurm job keys: NAME-YYYYMMDD-HHMMSS-xxxxxx
    .replace(/\b\d{8}-\d{6}-[0-9a-f]{6}\b/g, "<TS>-<RAND>")
    // local job dirs: YYYYMMDD-HHMMSS-NAME-XXXXXX (dry runs show the suffix as XXXXXX)
    .replace(/\b\d{8}-\d{6}\b/g, "<TS>")
    .replace(/(\.nemotron-secrets-)\d+(\/)[0-9a-f]{32}(\.env)/g, "$1<UID>$2<RANDOM>$3")
    .replace(/nemotron \d+\.\d+\.\d+(-[\w.]+)?/g, "nemotron <VERSION>")
    // any other temp dir (e.g. a recipe unpacked for a dry run)
    .replace(/\/tmp\/[\w.-]+/g, "<TMP>");
}

interface Env {
  cwd: string;
  home: string;
}

/**
 * The cwd and home of the golden runs, at paths of one length whatever TMPDIR is: help wraps
 * `(from <CWD>/env.toml)` at 80 columns by the real path's length. (Deno's temp names are not of
 * one length: a leading zero of the random part is dropped.) The caller removes them.
 */
async function setup(): Promise<Env> {
  const fixed = async (prefix: string) => {
    const hex = Array.from(
      crypto.getRandomValues(new Uint8Array(8)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const dir = `/tmp/${prefix}${hex}`;
    await Deno.mkdir(dir, { mode: 0o700 }); // fails if it exists
    return dir;
  };
  const cwd = await fixed("nemotron-golden-cwd-");
  const home = await fixed("nemotron-golden-home-");
  await writeTree(cwd, { "env.toml": ENV_TOML });
  return { cwd, home };
}

async function render(c: Case, env: Env): Promise<string> {
  const r = await runCli(c.args, {
    cwd: env.cwd,
    env: {
      HOME: env.home,
      NEMOTRON_HOME: `${env.home}/.nemotron`,
      NEMOTRON_ENV_FILE: "",
      // the parent's Deno cache (a fresh HOME would get a new, cold one)
      DENO_DIR: Deno.env.get("DENO_DIR") || `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`,
    },
  });
  assert.equal(r.code, c.code ?? 0, `${c.args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  const out = normalise(r.stdout, env);
  const err = normalise(r.stderr, env);
  return `$ nemotron ${c.args.join(" ")}\n${out}${err ? `--- stderr ---\n${err}` : ""}`;
}

/** The sbatch scripts shown in a golden (one per stage). */
function sbatchScripts(golden: string): string[] {
  const lines = golden.split("\n");
  const scripts: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith("── sbatch script ")) continue;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i].startsWith("job dir: "); i++) body.push(lines[i]);
    // drop the notes after the script ("container: IMAGE → SQSH") and trailing blank lines
    while (body.length && (body[body.length - 1] === "" || body[body.length - 1].includes(" → "))) {
      body.pop();
    }
    scripts.push(body.join("\n") + "\n");
  }
  return scripts;
}

/** A normalised script with its placeholders replaced by plausible shell-safe values. */
function denormalise(script: string): string {
  return script
    .replaceAll("<TS>", "20260101-120000").replaceAll("<RAND>", "a1b2c3")
    .replaceAll("<RANDOM>", "0123456789abcdef0123456789abcdef").replaceAll("<UID>", "1000")
    .replaceAll("<VERSION>", "0.0.0")
    .replaceAll("<CWD>", "/work/cwd").replaceAll("<HOME>", "/home/user").replaceAll(
      "<TMP>",
      "/tmp/t",
    );
}

async function shellCheck(script: string, label: string): Promise<void> {
  const dir = await tempDir("nemotron-golden-sh-");
  const file = `${dir}/sbatch.sh`;
  await Deno.writeTextFile(file, denormalise(script));
  for (
    const [cmd, args] of [["bash", ["-n", file]], ["shellcheck", ["-s", "bash", file]]] as const
  ) {
    const o = await new Deno.Command(cmd, { args: [...args], stdout: "piped", stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    assert.equal(
      o.code,
      0,
      `${cmd} on the sbatch script of ${label}:\n${dec.decode(o.stdout)}${dec.decode(o.stderr)}`,
    );
  }
  await Deno.remove(dir, { recursive: true });
}

const ALL = cases();
const rendered = new Map<string, string>();

Deno.test("nano3 goldens: help and dry runs (local, slurm profile) match tests/golden/recipes", async () => {
  const env = await setup();
  try {
    if (UPDATE) await Deno.mkdir(GOLDEN_DIR, { recursive: true });
    // two at a time: the machine has 2 cores
    for (let i = 0; i < ALL.length; i += 2) {
      const batch = ALL.slice(i, i + 2);
      const texts = await Promise.all(batch.map((c) => render(c, env)));
      batch.forEach((c, j) => rendered.set(c.file, texts[j]));
    }
    const mismatches: string[] = [];
    for (const c of ALL) {
      const text = rendered.get(c.file)!;
      const path = GOLDEN_DIR + c.file;
      if (UPDATE) await Deno.writeTextFile(path, text);
      let want: string;
      try {
        want = await Deno.readTextFile(path);
      } catch {
        mismatches.push(`${c.file}: no golden (run with UPDATE_GOLDEN=1)`);
        continue;
      }
      if (want !== text) mismatches.push(c.file);
    }
    if (mismatches.length) {
      // show the first difference in full for the first mismatch
      const first = ALL.find((c) => c.file === mismatches[0]);
      if (first) {
        let want = "";
        try {
          want = await Deno.readTextFile(GOLDEN_DIR + first.file);
        } catch { /* missing */ }
        assert.equal(rendered.get(first.file), want, `golden mismatch: ${mismatches.join(", ")}`);
      }
      assert.fail(`golden mismatch: ${mismatches.join(", ")}`);
    }
    // No stray goldens: every file in the directory belongs to a case.
    const names = new Set(ALL.map((c) => c.file));
    for (const e of Deno.readDirSync(GOLDEN_DIR)) {
      assert.ok(names.has(e.name), `stray golden ${e.name}`);
    }
    // Dry runs wrote nothing: no .nemotron in the cwd, nothing in NEMOTRON_HOME.
    assert.deepEqual([...Deno.readDirSync(env.cwd)].map((e) => e.name), ["env.toml"]);
    assert.deepEqual([...Deno.readDirSync(env.home)].map((e) => e.name), []);
  } finally {
    for (const d of [env.cwd, env.home]) await Deno.remove(d, { recursive: true });
  }
});

async function goldenText(file: string): Promise<string> {
  return rendered.get(file) ?? await Deno.readTextFile(GOLDEN_DIR + file);
}

Deno.test("nano3 goldens: the secret value appears in no output (text or --json)", async () => {
  for (const c of ALL) {
    assert.ok(!(await goldenText(c.file)).includes(SECRET), `${c.file} shows the secret value`);
  }
});

Deno.test("nano3 goldens: every help line fits 80 columns", async () => {
  const long: string[] = [];
  for (const c of ALL) {
    if (!c.file.endsWith(".help.txt")) continue;
    const body = (await goldenText(c.file)).split("\n").slice(1); // line 1 is the command
    for (const line of body) {
      if ([...line].length > 80) long.push(`${c.file} (${[...line].length}): ${line}`);
    }
  }
  assert.deepEqual(long, [], `help lines longer than 80 columns:\n${long.join("\n")}`);
});

Deno.test("nano3 goldens: recipe help has the §1.8 panels in order and lists the profiles", async () => {
  // Recipe help (not pipe's short help): the §1.8 panels, in order, with the profiles found.
  for (const [file] of COMMANDS) {
    if (file === "pipe") continue;
    const text = await goldenText(`${file}.help.txt`);
    const panels = [
      "Global Options:",
      "Configs (-c/--config):",
      // data prep reads no artifacts, so it has no Artifact Overrides panel
      ...(file.startsWith("data-prep-") ? [] : ["Artifact Overrides"]),
      "Run Overrides",
      "env.toml Profiles",
      "Dotlist Overrides:",
      "Examples:",
    ];
    let at = -1;
    for (const p of panels) {
      const i = text.indexOf(`\n${p}`);
      assert.ok(i > at, `${file}.help.txt: panel '${p}' missing or out of order`);
      at = i;
    }
    // [wandb] is a special section, not a profile
    assert.match(text, /\n {2}Available profiles: cluster\n/, `${file}.help.txt lists the profile`);
  }
});

/** The text of the panel titled `title` (up to the next panel). */
function panelOf(text: string, title: string): string {
  const start = text.indexOf(`── ${title} ─`);
  assert.ok(start >= 0, `no panel ${title}`);
  const body = text.slice(text.indexOf("\n", start) + 1);
  const end = body.indexOf("\n── ");
  return end < 0 ? body : body.slice(0, end);
}

Deno.test("nano3 goldens: local vs slurm views and the sbatch anatomy", async () => {
  for (const [file] of COMMANDS) {
    if (file === "pipe" || file === "eval") continue;
    const local = await goldenText(`${file}.dry-run.local.txt`);
    const slurm = await goldenText(`${file}.dry-run.slurm.txt`);
    // the run panel redacts the secret, but shows other env vars
    assert.match(panelOf(slurm, "run"), /HF_TOKEN: '\*\*\*\*\*\*'\n\s+MY_SETTING: visible-value/);
    assert.match(panelOf(slurm, "environment"), /^HF_TOKEN=\*\*\*\*\*\*$/m);
    // local: the job dir under the cwd; slurm: under remote_job_dir, the task sees /nemo_run
    assert.match(local, /^job dir: <CWD>\/\.nemotron\/jobs\/<TS>-nano3-[a-z-]+-XXXXXX$/m);
    assert.match(slurm, /^job dir: \/lustre\/test\/jobs\/jobs\/nano3-[a-z-]+-<TS>-<RAND>$/m);
    assert.match(panelOf(slurm, "environment"), /^NEMOTRON_JOB_DIR=\/nemo_run$/m);
    assert.match(panelOf(local, "command (local)"), /--config <CWD>\/\.nemotron\/jobs\//);
    const script = panelOf(slurm, "sbatch script");
    for (
      const line of [
        "#SBATCH --account=test-account",
        "#SBATCH --partition=batch",
        "#SBATCH --time=01:00:00",
        "#SBATCH --nodes=1",
        "#SBATCH --gpus-per-node=8",
      ]
    ) assert.ok(script.includes(`${line}\n`), `${file}: ${line}`);
    assert.match(script, /--container-image=\/lustre\/test\/jobs\/[\w.-]+\.sqsh /);
    assert.match(
      script,
      /--container-mounts=\/lustre\/test\/data:\/data,\/lustre\/test\/models:\/models,\S*\/lustre\/test\/jobs\/jobs\/nano3-[a-z-]+-<TS>-<RAND>:\/nemo_run /,
    );
    assert.match(script, /--container-workdir=\/nemo_run\/code /);
    assert.ok(!script.includes("HF_TOKEN="), `${file}: the secret is not exported in the script`);
    assert.match(script, /\. "\$\{_nemotron_secrets\}"/);
    if (file === "pretrain" || file === "sft") {
      assert.match(
        script,
        /\n {2}torchrun --standalone --nnodes=1 --nproc_per_node=8 main\.py --config config\.yaml\n/,
      );
      assert.match(
        panelOf(local, "command (local)"),
        /^python3 -m torch\.distributed\.run --nproc_per_node=1 /,
      );
    }
  }
  // ${run.*} in the config panel: resolved locally, kept for the remote side (§1.8)
  const preLocal = panelOf(await goldenText("pretrain.dry-run.local.txt"), "config");
  const preSlurm = panelOf(await goldenText("pretrain.dry-run.slurm.txt"), "config");
  assert.match(preLocal, /wandb_project: nano3-test\n/);
  assert.match(preSlurm, /wandb_project: '\$\{run\.wandb\.project\}'\n/);
  // ${oc.env:PWD} paths: kept locally, rewritten to /nemo_run/code remotely
  const prepLocal = panelOf(await goldenText("data-prep-sft.dry-run.local.txt"), "config");
  const prepSlurm = panelOf(await goldenText("data-prep-sft.dry-run.slurm.txt"), "config");
  assert.match(prepLocal, /output_dir: '\$\{oc\.env:PWD\}\/output\/nano3\/sft-data-tiny'/);
  assert.match(prepSlurm, /output_dir: \/nemo_run\/code\/output\/nano3\/sft-data-tiny\n/);
  // the pipe submits pretrain then sft, sft after pretrain
  const pipe = await goldenText("pipe.dry-run.slurm.txt");
  assert.ok(
    pipe.indexOf("#SBATCH --job-name=nano3-pretrain") <
      pipe.indexOf("#SBATCH --job-name=nano3-sft"),
  );
  assert.match(await goldenText("pipe.dry-run.local.txt"), /pipe requires --run or --batch/);
});

Deno.test("nano3 goldens: every rendered sbatch script passes bash -n and shellcheck", async () => {
  let n = 0;
  for (const c of ALL) {
    if (!c.file.includes(".slurm.")) continue;
    const text = await goldenText(c.file);
    const scripts = c.file.endsWith(".json")
      ? [JSON.parse(text.slice(text.indexOf("\n") + 1).split("--- stderr ---")[0]).sbatch_script]
      : sbatchScripts(text);
    // eval hands its config to nemo-evaluator-launcher (no sbatch); pipe has one per stage
    const expected = c.file.startsWith("eval.") ? 0 : c.file.startsWith("pipe.") ? 2 : 1;
    assert.equal(scripts.length, expected, `${c.file}: ${scripts.length} sbatch scripts`);
    for (const s of scripts) {
      assert.ok(s.startsWith("#!/bin/bash\n"), `${c.file}: script starts with a shebang`);
      await shellCheck(s, c.file);
      n++;
    }
  }
  assert.ok(n >= 8, `checked ${n} scripts`);
});

Deno.test("nano3 help without an env.toml has no profiles panel", async () => {
  const cwd = await tempDir("nemotron-golden-noenv-");
  const r = await runCli(["nano3", "pretrain", "--help"], { cwd, env: { NEMOTRON_ENV_FILE: "" } });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes("Global Options:"));
  assert.ok(!r.stdout.includes("env.toml Profiles"), r.stdout);
});
