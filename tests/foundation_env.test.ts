import assert from "node:assert/strict";
import * as path from "node:path";
import { extendsChain, findEnvFile, readEnvFile, resolveProfile } from "../lib/env_toml.ts";
import { UsageError } from "../lib/errors.ts";
import { runCli, tempDir, usageError, writeTree } from "./cli_helpers.ts";

async function envFile(text: string) {
  const dir = await tempDir();
  await writeTree(dir, { "env.toml": text });
  return readEnvFile(path.join(dir, "env.toml"));
}

Deno.test("env.toml: extends merges child over parent and drops 'extends' (§3.2)", async () => {
  const env = await envFile(
    '[base]\nexecutor="slurm"\naccount="a"\n[dev]\nextends="base"\npartition="p"\n',
  );
  assert.deepEqual({ ...resolveProfile(env, "dev") }, {
    executor: "slurm",
    account: "a",
    partition: "p",
  });
});

Deno.test("env.toml: tables deep-merge, arrays are replaced (§3.2)", async () => {
  const env = await envFile(
    '[base]\nenv_vars={A="1"}\nmounts=["/a:/a"]\n[dev]\nextends="base"\nenv_vars={B="2"}\nmounts=["/b:/b"]\n',
  );
  const p = resolveProfile(env, "dev");
  assert.deepEqual({ ...(p.env_vars as object) }, { A: "1", B: "2" });
  assert.deepEqual([...(p.mounts as string[])], ["/b:/b"]);
});

Deno.test("env.toml: three-level chain", async () => {
  const env = await envFile(
    '[a]\nnodes=1\nretries=1\n[b]\nextends="a"\nretries=2\n[c]\nextends="b"\nsrun_wait=3\n',
  );
  assert.deepEqual(extendsChain(env, "c"), ["c", "b", "a"]);
  assert.deepEqual({ ...resolveProfile(env, "c") }, { nodes: 1, retries: 2, srun_wait: 3 });
});

Deno.test("env.toml: cycles, unknown parent, unknown profile, special section", async () => {
  const env = await envFile(
    '[wandb]\nproject="p"\n[a]\nextends="b"\n[b]\nextends="a"\n[c]\nextends="zzz"\n[base]\n[dev]\n',
  );
  assert.equal(
    usageError(() => resolveProfile(env, "a")).message,
    "Circular profile inheritance detected: a",
  );
  const unknownParent = usageError(() => resolveProfile(env, "c"));
  assert.equal(unknownParent.message, "Profile 'c' extends unknown profile 'zzz'");
  assert.equal(unknownParent.location?.line, 8);
  const unknown = usageError(() => resolveProfile(env, "devv"));
  assert.equal(
    unknown.message,
    "Profile 'devv' not found in env.toml. Available: ['a', 'b', 'c', 'base', 'dev']",
  );
  assert.match(unknown.hint ?? "", /Did you mean 'dev'\?/);
  assert.match(usageError(() => resolveProfile(env, "wandb")).message, /special env\.toml section/);
});

Deno.test("env.toml: self-extends is a cycle", async () => {
  const env = await envFile('[a]\nextends="a"\n');
  assert.equal(
    usageError(() => resolveProfile(env, "a")).message,
    "Circular profile inheritance detected: a",
  );
});

Deno.test("env.toml: TOML errors carry file:line:col", async () => {
  const dir = await tempDir();
  await writeTree(dir, { "env.toml": '[a]\nx = 1\ny = "unterminated\n' });
  const err = usageError(() => readEnvFile(path.join(dir, "env.toml")));
  assert.equal(err.location?.file, path.join(dir, "env.toml"));
  assert.equal(err.location?.line, 3);
  assert.ok(err.location?.col !== undefined);
});

Deno.test("env.toml discovery: walk up, stop at the repository root, then the user file", async () => {
  const root = await tempDir();
  const saved = { v: Deno.env.get("NEMOTRON_ENV_FILE"), x: Deno.env.get("XDG_CONFIG_HOME") };
  Deno.env.delete("NEMOTRON_ENV_FILE");
  Deno.env.set("XDG_CONFIG_HOME", path.join(root, "xdg"));
  try {
    await writeTree(root, {
      "env.toml": "[outside]\n",
      "repo/pyproject.toml": "",
      "repo/a/b/.keep": "",
      "other/.git/HEAD": "",
      "other/x/.keep": "",
    });
    // Inside the repo, the walk stops at the pyproject.toml directory: the outer env.toml is not used.
    assert.equal(findEnvFile(path.join(root, "repo/a/b")), undefined);
    await writeTree(root, { "repo/env.toml": "[inside]\n" });
    assert.deepEqual(findEnvFile(path.join(root, "repo/a/b")), {
      path: path.join(root, "repo/env.toml"),
      source: "directory",
    });
    // .git also marks the root.
    assert.equal(findEnvFile(path.join(root, "other/x")), undefined);
    await writeTree(root, { "xdg/nemotron/env.toml": "[user]\n" });
    assert.deepEqual(findEnvFile(path.join(root, "other/x")), {
      path: path.join(root, "xdg/nemotron/env.toml"),
      source: "user",
    });
    // NEMOTRON_ENV_FILE wins; a missing one is an error.
    Deno.env.set("NEMOTRON_ENV_FILE", path.join(root, "repo/env.toml"));
    assert.equal(findEnvFile(path.join(root, "other/x"))?.source, "NEMOTRON_ENV_FILE");
    Deno.env.set("NEMOTRON_ENV_FILE", path.join(root, "nope.toml"));
    assert.match(usageError(() => findEnvFile(root)).message, /does not exist/);
  } finally {
    if (saved.v === undefined) Deno.env.delete("NEMOTRON_ENV_FILE");
    else Deno.env.set("NEMOTRON_ENV_FILE", saved.v);
    if (saved.x === undefined) Deno.env.delete("XDG_CONFIG_HOME");
    else Deno.env.set("XDG_CONFIG_HOME", saved.x);
  }
});

Deno.test("cli: env list/show with redaction, --reveal, --json and NEMOTRON_ENV_FILE with ~", async () => {
  const dir = await tempDir();
  await writeTree(dir, {
    "custom-env.toml":
      '[wandb]\nproject="p"\n[lepton_test]\nexecutor = "lepton"\n[dev]\nextends="lepton_test"\nclient_secret="s3cr3t"\nenv_vars={HF_TOKEN="hf-x", PLAIN="ok"}\n',
  });
  const env = { HOME: dir, NEMOTRON_ENV_FILE: "~/custom-env.toml" };
  const list = await runCli(["env", "list", "--json"], { env, cwd: dir });
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout), {
    file: path.join(dir, "custom-env.toml"),
    profiles: [
      { name: "lepton_test", extends: [], error: null },
      { name: "dev", extends: ["lepton_test"], error: null },
    ],
  });
  const show = await runCli(["env", "show", "dev", "--json"], { env, cwd: dir });
  assert.equal(show.code, 0, show.stderr);
  assert.deepEqual(JSON.parse(show.stdout), {
    executor: "lepton",
    client_secret: "******",
    env_vars: { HF_TOKEN: "******", PLAIN: "ok" },
  });
  assert.doesNotMatch(show.stdout, /s3cr3t|hf-x/);
  const yaml = await runCli(["env", "show", "dev"], { env, cwd: dir });
  assert.doesNotMatch(yaml.stdout, /s3cr3t|hf-x/);
  assert.match(yaml.stdout, /executor: lepton/);
  const reveal = await runCli(["env", "show", "dev", "--json", "--reveal"], { env, cwd: dir });
  assert.equal(JSON.parse(reveal.stdout).client_secret, "s3cr3t");
  const bad = await runCli(["env", "show", "prod"], { env, cwd: dir });
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /Profile 'prod' not found in env\.toml\. Available: \['lepton_test', 'dev'\]/,
  );
});

Deno.test("env.toml: interpolation resolved at load (§3.2)", async () => {
  const saved = Deno.env.get("USER_UNSET");
  Deno.env.delete("USER_UNSET");
  try {
    const env = await envFile(
      '[p]\nremote_job_dir="/l/j"\nlustre_mount="${remote_job_dir}/hf"\ncomment="${oc.env:USER_UNSET,nobody}"\n[q]\nextends="p"\nremote_job_dir="/other"\n',
    );
    const p = resolveProfile(env, "p");
    assert.equal(p.lustre_mount, "/l/j/hf");
    assert.equal(p.comment, "nobody");
    // Interpolation happens after extends: the child's sibling value is used.
    assert.equal(resolveProfile(env, "q").lustre_mount, "/other/hf");
  } finally {
    if (saved !== undefined) Deno.env.set("USER_UNSET", saved);
  }
});

Deno.test("secrets: redactArgv hides secret values on the command line, keeps numbers", async () => {
  const { redactArgv } = await import("../lib/secrets.ts");
  assert.deepEqual(
    redactArgv([
      "run.env.env_vars.MY_API_KEY=cli-secret-456",
      "train.max_tokens=512",
      "--hf-token=hf_abc",
      "--api-key",
      "k-123",
      "--password",
      "--next",
      "lr=0.1",
      "name=x",
    ]),
    [
      "run.env.env_vars.MY_API_KEY=******",
      "train.max_tokens=512",
      "--hf-token=******",
      "--api-key",
      "******",
      "--password",
      "--next",
      "lr=0.1",
      "name=x",
    ],
  );
});

Deno.test("NEMOTRON_HOME: default ~/.nemotron, ~ expanded, relative from the cwd, no HOME is an error", async () => {
  const { nemotronHome } = await import("../lib/home.ts");
  const env = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });
  assert.equal(nemotronHome(env({ HOME: "/home/u" })), "/home/u/.nemotron");
  assert.equal(nemotronHome(env({ HOME: "/home/u", NEMOTRON_HOME: "~/state" })), "/home/u/state");
  assert.equal(nemotronHome(env({ NEMOTRON_HOME: "/abs/x" })), "/abs/x");
  assert.equal(nemotronHome(env({ NEMOTRON_HOME: "rel" })), path.join(Deno.cwd(), "rel"));
  assert.throws(() => nemotronHome(env({})), UsageError);
});
