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
  // The commit comes from git itself (the oracle), not from the code under test.
  const head = new TextDecoder().decode(
    new Deno.Command("git", { args: ["rev-parse", "--short=12", "HEAD"], stdout: "piped" })
      .outputSync().stdout,
  ).trim();
  assert.match(
    v.stdout.trim(),
    new RegExp(
      `^nemotron ${denoJson.version.replaceAll(".", "\\.")} \\(commit ${head}(\\+dirty)?, deno ${
        Deno.version.deno.replaceAll(".", "\\.")
      }\\)$`,
    ),
  );
  const vj = await runCli(["--version", "--json"]);
  const info = JSON.parse(vj.stdout);
  assert.equal(info.version, denoJson.version);
  assert.match(info.commit, new RegExp(`^${head}(\\+dirty)?$`));
  assert.equal(info.deno, Deno.version.deno);
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

Deno.test("cli: completion scripts are valid shell; unknown shell is exit 2", async () => {
  for (
    const [shell, check] of [["bash", ["bash", "-n"]], ["zsh", ["zsh", "-n"]], ["fish", [
      "fish",
      "--no-execute",
    ]]] as const
  ) {
    const r = await runCli(["completion", shell]);
    assert.equal(r.code, 0, r.stderr);
    let exe: string;
    try {
      exe = new Deno.Command("sh", { args: ["-c", `command -v ${check[0]}`], stdout: "piped" })
          .outputSync().stdout.length > 0
        ? check[0]
        : "";
    } catch {
      exe = "";
    }
    if (!exe) continue; // the shell is not installed here (the test setup installs it)
    const child = new Deno.Command(exe, {
      args: [...check.slice(1)],
      stdin: "piped",
      stderr: "piped",
    })
      .spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(r.stdout));
    await w.close();
    const out = await child.output();
    assert.equal(out.code, 0, `${shell}: ${new TextDecoder().decode(out.stderr)}`);
  }
  const bad = await runCli(["completion", "tcsh"]);
  assert.equal(bad.code, 2);
});

Deno.test("cli: __complete offers exactly the visible subcommands of every group", async () => {
  const { buildProgram } = await import("../main.ts");
  const { complete } = await import("../commands/complete.ts");
  const cli = { argv: [], leading: [], rest: [] };
  const program = buildProgram(cli as never);
  await program.loadAll();
  const groups: [string[], string[]][] = [];
  const walk = (cmd: typeof program, at: string[]) => {
    const subs = cmd.commands.filter((c) => !c.isHidden()).map((c) => c.name());
    if (subs.length > 0) groups.push([at, subs]);
    for (const c of cmd.commands) walk(c, [...at, c.name()]);
  };
  walk(program, []);
  assert.ok(groups.length >= 8, `groups: ${groups.map(([g]) => g.join(" "))}`);
  for (const [at, subs] of groups) {
    const got = await complete(buildProgram(cli as never), at, "");
    assert.deepEqual(
      got.candidates.map((c) => c.split("\t")[0]).sort(),
      [...subs].sort(),
      at.join(" "),
    );
    assert.equal(got.files, false);
  }
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
