import assert from "node:assert/strict";
import nodePath from "node:path";
import fc from "fast-check";
import * as path from "../lib/path.ts";
import { Command } from "../lib/cli/command.ts";
import { UsageError } from "../lib/errors.ts";

// node:path (posix) is the oracle for lib/path.ts.
const segment = fc.constantFrom("a", "b", "..", ".", "", "c.d", "x.tar.gz", ".hidden");
const pathArb = fc.tuple(fc.boolean(), fc.array(segment, { maxLength: 6 }), fc.boolean()).map(
  ([abs, segs, trailing]) => (abs ? "/" : "") + segs.join("/") + (trailing ? "/" : ""),
);

Deno.test("path: normalize/join/dirname/basename/extname/isAbsolute agree with node:path", () => {
  fc.assert(
    fc.property(pathArb, pathArb, (p, q) => {
      assert.equal(path.normalize(p), nodePath.posix.normalize(p), `normalize ${p}`);
      assert.equal(path.join(p, q), nodePath.posix.join(p, q), `join ${p} ${q}`);
      // node keeps doubled slashes in dirname ("a//b" → "a/"); we compare on single-slash paths.
      const single = p.replace(/\/{2,}/g, "/");
      assert.equal(path.dirname(single), nodePath.posix.dirname(single), `dirname ${single}`);
      assert.equal(path.basename(p), nodePath.posix.basename(p), `basename ${p}`);
      assert.equal(path.extname(p), nodePath.posix.extname(p), `extname ${p}`);
      assert.equal(path.isAbsolute(p), nodePath.posix.isAbsolute(p));
      assert.equal(path.resolve(p, q), nodePath.posix.resolve(p, q), `resolve ${p} ${q}`);
      assert.equal(path.relative(p, q), nodePath.posix.relative(p, q), `relative ${p} ${q}`);
    }),
    { numRuns: 500 },
  );
  assert.equal(path.basename("/a/b.yaml", ".yaml"), "b");
});

Deno.test("path: isWithin is segment-aware (/local/repo2 is not inside /local/repo)", () => {
  assert.equal(path.isWithin("/local/repo", "/local/repo/x"), true);
  assert.equal(path.isWithin("/local/repo", "/local/repo"), true);
  assert.equal(path.isWithin("/local/repo", "/local/repo2/x"), false);
  assert.equal(path.isWithin("/", "/x"), true);
});

function tree(calls: unknown[][]) {
  const root = new Command("tool");
  root.command("show")
    .argument("<name>", "the name")
    .argument("[more...]")
    .option("--json", "json")
    .option("-n, --lines <n>", "lines", (v: string) => Number(v), 10)
    .option("--meta <kv>", "repeatable", (v: string, prev: string[]) => [...prev, v], [])
    .option("--no-color", "no colour")
    .action((...args: unknown[]) => {
      calls.push(args.slice(0, -1));
    });
  const raw = new Command("raw").allowUnknownOption().allowExcessArguments().helpOption(false)
    .action((_o: unknown, cmd: Command) => {
      calls.push([cmd.args]);
    });
  root.addCommand(raw);
  return root;
}

async function usage(p: Promise<unknown>): Promise<UsageError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof UsageError, String(err));
    return err;
  }
  assert.fail("expected a UsageError");
}

Deno.test("command: arguments, options, parsers, defaults, negation, --", async () => {
  const calls: unknown[][] = [];
  await tree(calls).parseAsync([
    "show",
    "x",
    "y",
    "--json",
    "-n",
    "5",
    "--meta=a=1",
    "--meta",
    "b=2",
    "--no-color",
  ]);
  assert.deepEqual(calls[0], ["x", ["y"], {
    lines: 5,
    meta: ["a=1", "b=2"],
    color: false,
    json: true,
  }]);
  await tree(calls).parseAsync(["show", "x", "-n3"]);
  assert.deepEqual(calls[1], ["x", [], { lines: 3, meta: [], color: true }]);
  await tree(calls).parseAsync(["show", "--", "--json"]);
  assert.deepEqual(calls[2], ["--json", [], { lines: 10, meta: [], color: true }]);
});

Deno.test("command: raw leaves get every token", async () => {
  const calls: unknown[][] = [];
  await tree(calls).parseAsync(["raw", "-c", "tiny", "a=1", "--", "--help", "-h"]);
  assert.deepEqual(calls[0], [["-c", "tiny", "a=1", "--", "--help", "-h"]]);
});

Deno.test("command: usage errors with suggestions", async () => {
  const calls: unknown[][] = [];
  assert.match(
    (await usage(tree(calls).parseAsync(["shwo"]))).message,
    /unknown command 'shwo' \(Did you mean show\?\)/,
  );
  assert.match(
    (await usage(tree(calls).parseAsync(["show"]))).message,
    /missing required argument 'name'/,
  );
  assert.match(
    (await usage(tree(calls).parseAsync(["show", "x", "--jsn"]))).message,
    /unknown option '--jsn' \(Did you mean --json\?\)/,
  );
  assert.match(
    (await usage(tree(calls).parseAsync(["show", "x", "--lines"]))).message,
    /argument missing/,
  );
  assert.match(
    (await usage(tree(calls).parseAsync(["show", "x", "--json=1"]))).message,
    /takes no value/,
  );
  assert.equal(calls.length, 0);
});

Deno.test("command: help output lists arguments, options and commands", () => {
  const root = tree([]);
  const show = root.commands[0];
  const text = show.helpInformation(80);
  assert.match(text, /^Usage: tool show \[OPTIONS\] <name> \[more\.\.\.\]/);
  assert.match(text, /-n, --lines <n> +Lines \(default: 10\)/);
  assert.match(text, /-h, --help +Show help/);
  assert.match(root.helpInformation(), /Commands:\n {2}show <name> \[more\.\.\.\]/);
});

Deno.test("main: every lazy command's listed name and description equal the loaded command's", async () => {
  const { buildProgram } = await import("../main.ts");
  const cli = { argv: [], leading: { dryRun: false, stage: false, forceSquash: false }, rest: [] };
  const program = buildProgram(cli);
  const listed = new Map<string, string>();
  const collect = (c: Command, prefix: string) => {
    for (const sub of c.commands) {
      listed.set(`${prefix}${sub.name()}`, sub.description());
      collect(sub, `${prefix}${sub.name()} `);
    }
  };
  collect(program, "");
  await program.loadAll();
  const loaded = new Map<string, string>();
  const collectLoaded = (c: Command, prefix: string) => {
    for (const sub of c.commands) {
      loaded.set(`${prefix}${sub.name()}`, sub.description());
      collectLoaded(sub, `${prefix}${sub.name()} `);
    }
  };
  collectLoaded(program, "");
  for (const [name, description] of listed) {
    assert.equal(loaded.get(name), description, `description of '${name}'`);
  }
  assert.ok(loaded.has("nano3 data prep pretrain"));
  assert.ok(loaded.has("jobs logs"), "subcommands of lazily loaded groups are there after loading");
});
