/**
 * Shell completion through the shells' own completion engines: bash (`complete -p` and the
 * completion function driven like readline does, with COMP_LINE/COMP_POINT), fish
 * (`complete -C`, fish's own engine) and zsh (compsys in a real terminal under tmux: TAB is
 * typed and the screen read back). Each shell calls the hidden `nemotron __complete`; the values
 * it must offer come from fixtures this test writes (env.toml profiles, a job store with known
 * ids, an artifact registry with known versions and an alias) and from the built-in recipes'
 * config names (the files under recipes/…/config).
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN, tempDir, writeTree } from "./cli_helpers.ts";
import { type JobRecord, JobStore } from "../lib/jobs/store.ts";

function has(cmd: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`] }).outputSync().success;
  } catch {
    return false;
  }
}

interface Fixture {
  readonly home: string;
  readonly cwd: string;
  readonly env: Record<string, string>;
}

let fixture: Fixture | undefined;

function record(key: string, id: string, over: Partial<JobRecord> = {}): JobRecord {
  const now = new Date().toISOString();
  return {
    slurm_job_id: id,
    cluster: "c",
    key,
    name: "demo/train",
    slurm_name: "demo-train",
    profile: "cluster",
    mode: "batch",
    job_dir: `/shared/jobs/${key}`,
    pipeline: null,
    stage: null,
    stages: null,
    dependency: null,
    state: "RUNNING",
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
    ...over,
  };
}

/** HOME with a `nemotron` on PATH, an env.toml, a job store and an artifact registry. */
async function setup(): Promise<Fixture> {
  if (fixture) return fixture;
  const home = await tempDir("nemotron-complete-");
  const bin = path.join(home, "bin");
  const cwd = path.join(home, "work");
  await writeTree(home, {
    "bin/nemotron": `#!/bin/sh\nexec '${Deno.execPath()}' run -A --quiet '${MAIN}' "$@"\n`,
    "work/env.toml": `[cluster]\nexecutor = "slurm"\n\n[cluster-big]\nextends = "cluster"\n\n` +
      `[laptop]\nexecutor = "local"\n\n[wandb]\nproject = "p"\n`,
    "work/data.txt": "x\n",
    // A user's own recipe: its runspec names its config dir, whose files are the config names.
    "work/mine.py": '# /// script\n# [tool.runspec]\n# name = "me/mine"\n' +
      '# [tool.runspec.config]\n# dir = "./conf"\n# default = "small"\n# ///\nprint(1)\n',
    "work/conf/small.yaml": "a: 1\n",
    "work/conf/big.yaml": "a: 2\n",
  });
  await Deno.chmod(path.join(bin, "nemotron"), 0o755);
  const nemotronHome = path.join(home, ".nemotron");
  await Deno.mkdir(nemotronHome, { recursive: true });
  const store = await JobStore.open(path.join(nemotronHome, "jobs.db"));
  store.insert(record("k1", "4711"));
  store.insert(record("k2", "4712", { state: "PENDING" }));
  store.close();
  const env = {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    NEMOTRON_HOME: nemotronHome,
    NO_COLOR: "1",
    PATH: `${bin}:${Deno.env.get("PATH")}`,
    TERM: "xterm",
  };
  // Two versions of one artifact and an alias, published through the CLI.
  for (
    const args of [["publish", "corpus", "data.txt"], ["publish", "corpus", "data.txt"], [
      "alias",
      "corpus",
      "best",
      "v1",
    ]]
  ) {
    const r = await new Deno.Command(path.join(bin, "nemotron"), {
      args: ["artifacts", ...args],
      cwd,
      env,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  }
  fixture = { home, cwd, env };
  return fixture;
}

async function sh(
  shell: string,
  script: string,
  f: Fixture,
): Promise<string> {
  const r = await new Deno.Command(shell, {
    args: ["-c", script],
    cwd: f.cwd,
    env: f.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout);
  assert.equal(r.code, 0, `${shell} failed: ${new TextDecoder().decode(r.stderr)}`);
  return out;
}

/** Run bash's completion function for `line` (cursor at the end) and return COMPREPLY. */
async function bashComplete(line: string, f: Fixture): Promise<string[]> {
  const out = await sh(
    "bash",
    `source <(nemotron completion bash)
COMP_LINE=${JSON.stringify(line)}; COMP_POINT=\${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"; COMP_CWORD=\${#COMP_WORDS[@]}
_nemotron
printf '%s\\n' "\${COMPREPLY[@]}"`,
    f,
  );
  return out.split("\n").filter((l) => l !== "");
}

/** fish's own engine: `complete -C LINE` prints `candidate<TAB>description` lines. */
async function fishComplete(line: string, f: Fixture): Promise<string[]> {
  const out = await sh(
    "fish",
    `nemotron completion fish | source; complete -C ${JSON.stringify(line)}`,
    f,
  );
  return out.split("\n").filter((l) => l !== "").map((l) => l.split("\t")[0]);
}

Deno.test({
  name: "bash: complete -p names the function; subcommands, profiles, configs, jobs, artifacts",
  ignore: !has("bash"),
  fn: async () => {
    const f = await setup();
    const reg = await sh("bash", "source <(nemotron completion bash); complete -p nemotron", f);
    assert.equal(reg.trim(), "complete -F _nemotron nemotron");
    assert.deepEqual(await bashComplete("nemotron jo", f), ["jobs"]);
    // Group level: only what that level accepts.
    assert.deepEqual((await bashComplete("nemotron demo ", f)).sort(), [
      "data",
      "ddp",
      "pipe",
      "train",
    ]);
    // Profiles from the env.toml of the current directory (special sections are not profiles).
    assert.deepEqual(
      (await bashComplete("nemotron demo train -b ", f)).sort(),
      ["cluster", "cluster-big", "laptop"],
    );
    assert.deepEqual(await bashComplete("nemotron demo train --run=cluster-", f), ["cluster-big"]);
    // Config names of the recipe being typed (recipes/demo/config/train/{default,tiny}.yaml).
    assert.deepEqual((await bashComplete("nemotron demo train -c ", f)).sort(), [
      "default",
      "tiny",
    ]);
    assert.deepEqual((await bashComplete("nemotron jobs status 471", f)).sort(), ["4711", "4712"]);
    assert.deepEqual(await bashComplete("nemotron artifacts show co", f), ["corpus"]);
    assert.deepEqual(await bashComplete("nemotron artifacts list --on cluster-", f), [
      "cluster-big",
    ]);
    // After NAME: bash replaces only the part after ':' (a COMP_WORDBREAKS character).
    assert.deepEqual(await bashComplete("nemotron artifacts show corpus:", f), [
      "latest",
      "v2",
      "v1",
      "best",
    ]);
    assert.deepEqual(await bashComplete("nemotron completion z", f), ["zsh"]);
    // Recipe names (the built-in catalogue) for run and recipes show; a script's own configs.
    assert.deepEqual(await bashComplete("nemotron run demo/tr", f), ["demo/train"]);
    assert.deepEqual(
      (await bashComplete("nemotron recipes show nano3/data/prep/", f)).sort(),
      ["nano3/data/prep/pretrain", "nano3/data/prep/rl", "nano3/data/prep/sft"],
    );
    assert.deepEqual((await bashComplete("nemotron run mine.py -c ", f)).sort(), ["big", "small"]);
    assert.deepEqual((await bashComplete("nemotron run mine.py --package ", f)).sort(), [
      "code",
      "self-contained",
    ]);
    assert.deepEqual(await bashComplete("nemotron env show la", f), ["laptop"]);
  },
});

Deno.test({
  name: "fish: complete -C offers the same values, and files where a path is expected",
  ignore: !has("fish"),
  fn: async () => {
    const f = await setup();
    assert.deepEqual(await fishComplete("nemotron ar", f), ["artifacts"]);
    assert.deepEqual(
      (await fishComplete("nemotron nano3 pretrain --batch ", f)).sort(),
      ["cluster", "cluster-big", "laptop"],
    );
    // A job is named by its id, key or job dir: ids first, and paths too.
    const jobs = await fishComplete("nemotron jobs logs ", f);
    for (const want of ["4711", "4712", "data.txt"]) assert.ok(jobs.includes(want), want);
    assert.deepEqual(
      (await fishComplete("nemotron artifacts lineage corpus:v", f)).sort(),
      ["corpus:v1", "corpus:v2"],
    );
    // `-c` takes a name or a YAML path: both the names and the files of the directory.
    const c = await fishComplete("nemotron demo data -c ", f);
    for (const want of ["default", "tiny", "data.txt", "env.toml"]) {
      assert.ok(c.includes(want), want);
    }
    // Options of a leaf, with their descriptions from the command.
    const flags = await sh(
      "fish",
      `nemotron completion fish | source; complete -C "nemotron jobs logs --f"`,
      f,
    );
    assert.match(flags, /^--follow\t/m);
  },
});

/** tmux on a private socket, so the test neither uses nor disturbs anyone's tmux server. */
async function tmux(args: string[]): Promise<string> {
  const r = await new Deno.Command("tmux", {
    args: ["-L", `nemotron-test-${Deno.pid}`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(r.stdout);
}

Deno.test({
  name: "zsh: TAB in a real terminal (tmux) completes through compsys",
  ignore: !has("zsh") || !has("tmux"),
  fn: async () => {
    const f = await setup();
    const session = `nemotron-zsh-${Deno.pid}`;
    const rc = path.join(f.home, ".zshrc");
    await Deno.writeTextFile(
      rc,
      `PS1='%% '\nexport PATH=${JSON.stringify(f.env.PATH)}\n` +
        `autoload -Uz compinit && compinit -u\nsource <(nemotron completion zsh)\n`,
    );
    const envArgs = Object.entries({ ...f.env, ZDOTDIR: f.home }).flatMap(([k, v]) => [
      "-e",
      `${k}=${v}`,
    ]);
    await tmux([
      "new-session",
      "-d",
      "-s",
      session,
      "-x",
      "100",
      "-y",
      "30",
      "-c",
      f.cwd,
      ...envArgs,
      "zsh",
    ]);
    const screen = async (want: RegExp): Promise<string> => {
      let last = "";
      for (let i = 0; i < 300; i++) { // up to 30 s: a loaded CI machine starts zsh slowly
        last = await tmux(["capture-pane", "-p", "-t", session]);
        if (want.test(last)) return last;
        await new Promise((r) => setTimeout(r, 100));
      }
      return last;
    };
    try {
      await screen(/^% $/m);
      await tmux(["send-keys", "-t", session, "nemotron jobs sta", "Tab"]);
      // (capture-pane drops trailing blanks, so the space after the word is not visible)
      assert.match(await screen(/nemotron jobs status/), /^% nemotron jobs status$/m);
      await tmux(["send-keys", "-t", session, "C-u", "nemotron demo train -r clu", "Tab"]);
      // Two profiles share the prefix: TAB extends the line to it, a second TAB lists both.
      assert.match(await screen(/-r cluster$/m), /^% nemotron demo train -r cluster$/m);
      await tmux(["send-keys", "-t", session, "Tab"]);
      const s = await screen(/cluster-big/);
      assert.match(s, /^cluster\s+cluster-big\s*$/m);
      await tmux(["send-keys", "-t", session, "C-u", "nemotron artifacts show corpus:b", "Tab"]);
      assert.match(await screen(/corpus:best/), /nemotron artifacts show corpus:best/);
    } finally {
      await tmux(["kill-session", "-t", session]);
    }
  },
});

Deno.test("__complete: directive line, exit 0 on a broken env.toml, and no store created", async () => {
  const f = await setup();
  const dir = await tempDir("nemotron-complete-broken-");
  await writeTree(dir, { "env.toml": "[cluster\nbroken" });
  const nemotronHome = path.join(dir, "home");
  const r = await new Deno.Command(path.join(f.home, "bin", "nemotron"), {
    args: ["__complete", "demo", "train", "-b", ""],
    cwd: dir,
    env: { ...f.env, NEMOTRON_HOME: nemotronHome },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 0);
  assert.equal(new TextDecoder().decode(r.stdout), ":nofiles\n");
  const jobs = await new Deno.Command(path.join(f.home, "bin", "nemotron"), {
    args: ["__complete", "jobs", "status", ""],
    cwd: dir,
    env: { ...f.env, NEMOTRON_HOME: nemotronHome },
    stdout: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(jobs.stdout), ":files\n");
  assert.throws(() => Deno.statSync(path.join(nemotronHome, "jobs.db")), Deno.errors.NotFound);
});
