/** `nemotron artifacts …` end to end through main.ts in a subprocess. */
import assert from "node:assert/strict";
import { join } from "node:path";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function nemotron(args: string[], env: Record<string, string>, cwd: string): Promise<Result> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

function baseEnv(home: string): Record<string, string> {
  return {
    HOME: home,
    PATH: Deno.env.get("PATH") ?? "",
    DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "", ".cache", "deno"),
  };
}

Deno.test("artifacts publish/list/show/alias/lineage via the CLI", async () => {
  const work = Deno.makeTempDirSync({ prefix: "nemotron-art-cli-" });
  const root = join(work, "registry");
  const env = { ...baseEnv(work), NEMOTRON_ARTIFACTS_ROOT: root };
  const src = join(work, "src");
  Deno.mkdirSync(src);
  Deno.writeTextFileSync(join(src, "a.txt"), "a");

  let r = await nemotron(
    ["artifacts", "publish", "raw", src, "-m", "tokens=1000", "-m", "lang=en", "--type", "dataset"],
    env,
    work,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `published raw:v1 -> ${join(root, "raw", "v1", "data")}`);
  r = await nemotron(
    ["artifacts", "publish", "model", join(src, "a.txt"), "--input", "raw", "--reference"],
    env,
    work,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `published model:v1 -> ${join(src, "a.txt")}`);

  r = await nemotron(["artifacts", "list", "--json"], env, work);
  assert.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout);
  assert.deepEqual(list.map((e: { name: string }) => e.name), ["model", "raw"]);
  assert.deepEqual(Object.keys(list[1]), ["name", "versions", "aliases"]);
  assert.deepEqual(Object.keys(list[1].versions[0]), ["version", "path", "created_at", "producer"]);
  assert.equal(
    list[1].versions[0].producer.command.startsWith("nemotron artifacts publish raw"),
    true,
  );

  r = await nemotron(["artifacts", "alias", "raw", "stable", "v1"], env, work);
  assert.equal(r.stdout.trim(), "raw:stable -> v1");
  r = await nemotron(["artifacts", "show", "raw:stable", "--json"], env, work);
  const shown = JSON.parse(r.stdout);
  assert.deepEqual(shown.metadata, { tokens: 1000, lang: "en" });
  assert.deepEqual(shown.aliases, ["stable"]);

  r = await nemotron(["artifacts", "show", "raw"], env, work);
  assert.match(r.stdout, /^raw:v1 {2}\(dataset\)$/m);
  assert.match(r.stdout, /^ {2}metadata: {3}tokens=1000, lang="en"$/m);

  r = await nemotron(["artifacts", "lineage", "model"], env, work);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  assert.match(lines[0], /^model:v1 {2}artifact {2}\(manual\)/);
  assert.match(lines[1], /^└── raw:v1 {2}dataset/);

  r = await nemotron(["artifacts", "show", "raw:v9"], env, work);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /artifact 'raw' has no version v9/);
  assert.match(r.stderr, /versions: v1; aliases: stable → v1/);

  r = await nemotron(["artifacts", "publish", "x", src, "-m", "noequals"], env, work);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad --metadata 'noequals'/);
  assert.equal(Deno.readDirSync(root).some((e) => e.name === "x"), false);
});

Deno.test("artifacts root comes from env.toml [artifacts] root, relative to the env.toml", async () => {
  const work = Deno.makeTempDirSync({ prefix: "nemotron-art-envtoml-" });
  Deno.mkdirSync(join(work, ".git")); // stop env.toml discovery here
  Deno.writeTextFileSync(join(work, "env.toml"), '[artifacts]\nroot = "arts"\n');
  const sub = join(work, "sub");
  Deno.mkdirSync(sub);
  Deno.writeTextFileSync(join(sub, "f.txt"), "f");
  const r = await nemotron(["artifacts", "publish", "thing", "f.txt"], baseEnv(work), sub);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout.trim(),
    `published thing:v1 -> ${join(work, "arts", "thing", "v1", "data")}`,
  );
});
