import assert from "node:assert/strict";
import { type CliContext, extractLeadingGlobals, parseRecipeArgs } from "../lib/cli/args.ts";
import { runCli, usageError } from "./cli_helpers.ts";

/** Parse `nemotron <argv>` where the recipe leaf is `depth` words long. */
function parse(argv: string[], depth = 2) {
  const { leading, rest } = extractLeadingGlobals(argv);
  const cli: CliContext = { argv, leading, rest };
  return parseRecipeArgs(rest.slice(depth), cli);
}

Deno.test("args: globals before the group and after the leaf; later wins", () => {
  const a = parse([
    "-c",
    "default",
    "-d",
    "nano3",
    "pretrain",
    "-c",
    "tiny",
    "--stage",
    "-b",
    "cl",
  ]);
  assert.equal(a.config, "tiny");
  assert.equal(a.dryRun, true);
  assert.equal(a.stage, true);
  assert.equal(a.batch, "cl");
  assert.equal(a.mode, "batch");
  assert.equal(a.profile, "cl");
});

Deno.test("args: dotlist vs passthrough split (reference §1.2)", () => {
  const a = parse([
    "nano3",
    "pretrain",
    "train.train_iters=5",
    "--mock",
    "-t",
    "mmlu",
    "+a=1",
    "~key",
    "x",
    "--lr=3",
  ]);
  // `~key` (Hydra's delete) is an override here; the original passed it to the script.
  assert.deepEqual([...a.dotlist], ["train.train_iters=5", "+a=1", "~key"]);
  assert.deepEqual([...a.passthrough], ["--mock", "-t", "mmlu", "x", "--lr=3"]);
  assert.equal(a.mode, "local");
  assert.equal(a.profile, undefined);
});

Deno.test("args: --opt=value forms are recognised, not passed through", () => {
  const a = parse(["nano3", "pretrain", "--run=cl", "--config=tiny"]);
  assert.equal(a.run, "cl");
  assert.equal(a.config, "tiny");
  assert.deepEqual([...a.passthrough], []);
  const b = parse(["-r=cl", "-c=x.yaml", "nano3", "sft"]);
  assert.equal(b.run, "cl");
  assert.equal(b.config, "x.yaml");
  assert.equal(b.mode, "run");
  const c = parse(["nano3", "sft", "-b=cl"]);
  assert.equal(c.batch, "cl");
});

Deno.test("args: '--' ends option parsing", () => {
  const a = parse(["nano3", "pretrain", "a=1", "--", "-d", "b=2", "--run", "x", "--"]);
  assert.deepEqual([...a.dotlist], ["a=1"]);
  assert.deepEqual([...a.passthrough], ["-d", "b=2", "--run", "x", "--"]);
  assert.equal(a.dryRun, false);
  assert.equal(a.run, undefined);
  const b = parse(["nano3", "pretrain", "--", "a=1"]);
  assert.deepEqual([...b.passthrough], ["a=1"]);
  assert.deepEqual([...b.dotlist], []);
});

Deno.test("args: value options take the next token verbatim, even if it starts with '-'", () => {
  assert.equal(parse(["nano3", "pretrain", "-c", "-weird"]).config, "-weird");
});

Deno.test("args: errors — run+batch, stage without profile, missing values", () => {
  assert.equal(
    usageError(() => parse(["nano3", "pretrain", "-r", "a", "-b", "b"])).message,
    "--run and --batch cannot both be set",
  );
  assert.equal(
    usageError(() => parse(["-r", "a", "nano3", "pretrain", "--batch", "b"])).message,
    "--run and --batch cannot both be set",
  );
  assert.equal(
    usageError(() => parse(["-r", "a", "-b", "b"])).message,
    "--run and --batch cannot both be set",
  );
  assert.equal(
    usageError(() => parse(["nano3", "pretrain", "--stage"])).message,
    "--stage requires --run or --batch to specify target cluster",
  );
  assert.match(
    usageError(() => parse(["nano3", "pretrain", "-c"])).message,
    /'-c' needs a config name/,
  );
  assert.match(
    usageError(() => parse(["nano3", "pretrain", "--run"])).message,
    /'--run' needs an env\.toml profile/,
  );
  assert.match(
    usageError(() => parse(["nano3", "pretrain", "--batch", "--"])).message,
    /needs an env\.toml/,
  );
  assert.match(usageError(() => parse(["nano3", "pretrain", "--run="])).message, /needs a value/);
  assert.match(
    usageError(() => parse(["nano3", "pretrain", "--dry-run=true"])).message,
    /takes no value/,
  );
});

Deno.test("args: -h/--help and --json are read after the leaf", () => {
  const a = parse(["nano3", "pretrain", "-h", "--json"]);
  assert.equal(a.help, true);
  assert.equal(a.json, true);
  const b = parse(["nano3", "pretrain", "--", "--help"]);
  assert.equal(b.help, false);
  assert.deepEqual([...b.passthrough], ["--help"]);
});

Deno.test("cli: --version, no arguments, unknown command, leading-global conflict", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const v = await runCli(["--version"]);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), denoJson.version);
  const none = await runCli([]);
  assert.equal(none.code, 0);
  assert.match(none.stdout, /^Usage: nemotron/m);
  assert.match(none.stdout, /-r, --run PROFILE/);
  const unknown = await runCli(["frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  const conflict = await runCli(["-r", "a", "-b", "b", "env", "list"]);
  assert.equal(conflict.code, 2);
  assert.match(conflict.stderr, /error: --run and --batch cannot both be set/);
  const missing = await runCli(["runspec", "show"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /missing required argument 'script'/);
});

Deno.test("cli: completion scripts cover the tree and are valid shell", async () => {
  const bash = await runCli(["completion", "bash"]);
  assert.equal(bash.code, 0, bash.stderr);
  assert.match(bash.stdout, /"runspec"\) words="show check/);
  assert.match(bash.stdout, /complete -o default -F _nemotron nemotron/);
  const check = new Deno.Command("bash", { args: ["-n"], stdin: "piped", stderr: "piped" }).spawn();
  const w = check.stdin.getWriter();
  await w.write(new TextEncoder().encode(bash.stdout));
  await w.close();
  assert.equal((await check.output()).code, 0);
  const fish = await runCli(["completion", "fish"]);
  assert.match(fish.stdout, /complete -c nemotron -n '__fish_seen_subcommand_from env' -a 'show'/);
  const zsh = await runCli(["completion", "zsh"]);
  assert.match(zsh.stdout, /^#compdef nemotron/);
  const bad = await runCli(["completion", "tcsh"]);
  assert.equal(bad.code, 2);
});

Deno.test("colour: labels coloured only when asked; never with NO_COLOR or without a terminal", async () => {
  const { colorLabels } = await import("../lib/cli/color.ts");
  const text = "env.toml:3: error: bad\n  hint: fix it";
  assert.equal(colorLabels(text, false), text);
  const on = colorLabels(text, true);
  const ESC = "\x1b";
  assert.ok(on.includes(`${ESC}[1;31merror:${ESC}[0m`), on);
  assert.ok(on.includes(`${ESC}[36mhint:${ESC}[0m`), on);
  // A subprocess's stderr is a pipe, not a terminal: no escape codes even without NO_COLOR.
  const r = await runCli(["frobnicate"], { env: { NO_COLOR: "" } });
  assert.ok(!r.stderr.includes(ESC), r.stderr);
});
