/**
 * Help screens as a person sees them: every command's `--help` fits 80 columns when the width is
 * unknown (piped), `$COLUMNS` when set, wraps at word boundaries, and uses bold titles only on a
 * terminal (checked in a real terminal under tmux, with and without NO_COLOR).
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN, runCli, tempDir } from "./cli_helpers.ts";
import { buildProgram } from "../main.ts";
import type { Command } from "../lib/cli/command.ts";
import { wrapWords } from "../lib/cli/layout.ts";

const ESC = "\x1b";

async function commandPaths(): Promise<string[][]> {
  const program = buildProgram({ argv: [], leading: [], rest: [] } as never);
  await program.loadAll();
  const out: string[][] = [];
  const walk = (c: Command, at: string[]) => {
    out.push(at);
    for (const s of c.commands) if (!s.isHidden()) walk(s, [...at, s.name()]);
  };
  walk(program, []);
  return out;
}

function widest(text: string): number {
  return Math.max(...text.split("\n").map((l) => [...l].length));
}

Deno.test("wrapWords: never breaks a word, never exceeds the width unless one word does", () => {
  const text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu";
  for (const w of [10, 17, 23, 40]) {
    const lines = wrapWords(text, w);
    assert.equal(lines.join(" "), "Alpha" + text.slice(5)); // same words, same order
    for (const l of lines) assert.ok(l.length <= w, `${w}: '${l}'`);
  }
  assert.deepEqual(wrapWords("a verylongwordthatdoesnotfit b", 8), [
    "A",
    "verylongwordthatdoesnotfit",
    "b",
  ]);
});

Deno.test("every help screen fits 80 columns piped, and $COLUMNS when it is set", async () => {
  const paths = await commandPaths();
  assert.ok(paths.length >= 25, `only ${paths.length} commands`);
  const home = await tempDir("nemotron-help-");
  for (let i = 0; i < paths.length; i += 4) {
    await Promise.all(
      paths.slice(i, i + 4).map(async (p) => {
        const r = await runCli([...p, "--help"], { env: { HOME: home } });
        assert.equal(r.code, 0, `${p.join(" ")}: ${r.stderr}`);
        assert.match(r.stdout, /^Usage: nemotron/m, p.join(" "));
        assert.match(r.stdout, /^Examples:$/m, `nemotron ${p.join(" ")} --help has no Examples`);
        assert.ok(
          widest(r.stdout) <= 80,
          `nemotron ${p.join(" ")} --help is ${widest(r.stdout)} wide`,
        );
        assert.ok(!r.stdout.includes(ESC), "no escape codes when piped");
      }),
    );
  }
  for (const p of [[], ["squash"], ["artifacts", "publish"], ["jobs"]]) {
    const r = await runCli([...p, "--help"], { env: { HOME: home, COLUMNS: "60" } });
    assert.ok(widest(r.stdout) <= 60, `${p.join(" ")} at COLUMNS=60: ${widest(r.stdout)}`);
  }
});

/** tmux on a private socket; a command tmux refuses fails the test with tmux's own message. */
async function tmux(socket: string, args: string[]): Promise<string> {
  const r = await new Deno.Command("tmux", {
    args: ["-L", socket, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!r.success) throw new Error(`tmux ${args[0]}: ${dec.decode(r.stderr)}`);
  return dec.decode(r.stdout);
}

function has(cmd: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`] }).outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "in a real terminal (tmux 80x24): bold titles; none with NO_COLOR; lines fit",
  ignore: !has("tmux"),
  fn: async () => {
    const dir = await tempDir("nemotron-help-tty-");
    const run = async (noColor: boolean): Promise<string> => {
      const session = `h${noColor ? 1 : 0}`;
      // One tmux server per run: killing a server's last session makes it exit, and a second
      // session started on the same socket meanwhile can land on the exiting server.
      const socket = `nemotron-help-${Deno.pid}-${session}`;
      const done = path.join(dir, `${session}.done`);
      // The tmux server inherits this process's environment: set or unset NO_COLOR explicitly.
      const cmd = `${noColor ? "NO_COLOR=1 " : "env -u NO_COLOR "}'${Deno.execPath()}' run -A ` +
        `--quiet '${MAIN}' ` +
        `squash --help; touch '${done}'; sleep 30`;
      await tmux(socket, [
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "80",
        "-y",
        "24",
        "-e",
        `HOME=${dir}`,
        "sh",
        "-c",
        cmd,
      ]);
      try {
        for (let i = 0;; i++) {
          try {
            Deno.statSync(done);
            break;
          } catch {
            if (i === 600) {
              throw new Error(`squash --help did not end in 60 s (NO_COLOR=${noColor})`);
            }
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        return await tmux(socket, ["capture-pane", "-p", "-e", "-S", "-200", "-t", session]);
      } finally {
        await tmux(socket, ["kill-server"]).catch(() => "");
      }
    };
    const colour = await run(false);
    assert.ok(colour.includes(`${ESC}[1mOptions:`), "bold title");
    assert.match(colour, /--output/);
    const plain = await run(true);
    assert.ok(!plain.includes(ESC), "no escape codes with NO_COLOR");
    assert.match(plain, /^Options:$/m);
    // The terminal did not have to wrap any line: each visible line is a whole help line.
    for (const l of plain.split("\n")) assert.ok(l.length <= 80);
    assert.match(plain, /^ {2}-d, --dry-run +Show what would be fetched/m);
  },
});

Deno.test("a broken env.toml does not break a recipe's --help: the help, and one warning line", async () => {
  const dir = await tempDir("nemotron-help-broken-");
  await Deno.writeTextFile(path.join(dir, "env.toml"), "[cluster\nbroken = \n");
  for (
    const p of [["demo", "train"], ["demo", "data"], ["nano3", "pretrain"], [
      "nano3",
      "data",
      "prep",
      "sft",
    ]]
  ) {
    const r = await runCli([...p, "--help"], { cwd: dir });
    assert.equal(r.code, 0, `${p.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: nemotron ${p.join(" ")} `, "m"));
    const warnings = r.stderr.trim().split("\n");
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(warnings[0], new RegExp(`^warning: ${dir}/env.toml:1: .*profiles not listed`));
  }
  // Without --help the broken file is still an error (exit 2), never silently ignored.
  const run = await runCli(["demo", "train", "-c", "tiny", "-d"], { cwd: dir });
  assert.equal(run.code, 2);
});

Deno.test("help screens match their hand-checked goldens (piped, 80 columns)", async () => {
  // tests/golden/help/*.txt were read by eye: 80 columns, one style, Examples on each.
  for (
    const [file, args] of [
      ["root", []],
      ["jobs", ["jobs"]],
      ["jobs-logs", ["jobs", "logs"]],
      ["squash", ["squash"]],
      ["doctor", ["doctor"]],
    ] as const
  ) {
    const r = await runCli([...args, "--help"]);
    assert.equal(r.code, 0, r.stderr);
    const golden = await Deno.readTextFile(
      path.join(path.dirname(MAIN), "tests", "golden", "help", `${file}.txt`),
    );
    assert.equal(r.stdout, golden, `nemotron ${args.join(" ")} --help`);
  }
});
