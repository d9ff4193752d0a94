import assert from "node:assert/strict";
import * as path from "node:path";
import fc from "fast-check";
import { stringify as tomlStringify } from "smol-toml";
import { extractScriptBlock, parseRunspecFile, parseRunspecText } from "../lib/runspec.ts";
import { parseToml } from "../lib/toml.ts";
import { runCli, tempDir, usageError, writeTree } from "./cli_helpers.ts";

const MINIMAL = `#!/usr/bin/env python3
# /// script
# [tool.runspec]
# name = "a/b"
# ///
print("hi")
`;

Deno.test("runspec: defaults for a minimal block (reference §3.1)", () => {
  const { runspec, warnings } = parseRunspecText(MINIMAL, "/x/recipes/train.py");
  assert.deepEqual(warnings, []);
  assert.equal(runspec.schema, "1");
  assert.equal(runspec.docs, "");
  assert.equal(runspec.name, "a/b");
  assert.equal(runspec.image, null);
  assert.equal(runspec.setup, "");
  assert.deepEqual({ ...runspec.run }, { launch: "torchrun", cmd: null, workdir: null });
  assert.deepEqual({ ...runspec.config }, {
    dir: "./config",
    default: "default",
    format: "omegaconf",
  });
  assert.deepEqual({ ...runspec.resources }, { nodes: 1, gpus_per_node: 8 });
  assert.deepEqual({ ...runspec.env }, {});
  assert.equal(runspec.script_path, "/x/recipes/train.py");
  assert.equal(runspec.config_dir, "/x/recipes/config");
  assert.ok(Object.isFrozen(runspec) && Object.isFrozen(runspec.run));
});

Deno.test("runspec: full block with the nano3 RL example values", () => {
  const text = `# /// script
# [tool.runspec]
# schema = 1
# name = "nano3/rl"
# image = "nvcr.io/nvidia/nemo-rl:v0.4.0.nemotron_3_nano"
# setup = """
#   pip install x
# """
#
# [tool.runspec.run]
# launch = "ray"
# cmd = "uv run python {script} --config {config}"
# workdir = "/opt/nemo-rl"
#
# [tool.runspec.config]
# dir = "./config/../config/data_prep"
# default = "tiny"
# format = "yaml"
#
# [tool.runspec.resources]
# nodes = 2
# gpus_per_node = "gpu"
#
# [tool.runspec.env]
# FOO = "bar"
# ///
`;
  const { runspec } = parseRunspecText(text, "/r/stage2_rl/train.py");
  assert.equal(runspec.schema, "1");
  assert.equal(runspec.setup, "pip install x");
  assert.equal(runspec.run.launch, "ray");
  assert.equal(runspec.run.cmd, "uv run python {script} --config {config}");
  assert.equal(runspec.run.workdir, "/opt/nemo-rl");
  assert.equal(runspec.config.default, "tiny");
  assert.equal(runspec.config.format, "yaml");
  assert.equal(runspec.config_dir, "/r/stage2_rl/config/data_prep");
  assert.equal(runspec.resources.nodes, 2);
  assert.equal(runspec.resources.gpus_per_node, "gpu");
  assert.deepEqual({ ...runspec.env }, { FOO: "bar" });
});

Deno.test("runspec: CRLF files parse", () => {
  const { runspec } = parseRunspecText(MINIMAL.replaceAll("\n", "\r\n"), "/x/t.py");
  assert.equal(runspec.name, "a/b");
});

Deno.test("runspec: no block → original message with the absolute path", () => {
  const err = usageError(() => parseRunspecText("print(1)\n", "/abs/s.py"));
  assert.equal(err.message, "No PEP 723 metadata block found in /abs/s.py");
});

Deno.test("runspec: no [tool.runspec] or an empty one", () => {
  for (const body of ['# dependencies = ["x"]', "# [tool.runspec]"]) {
    const err = usageError(() => parseRunspecText(`# /// script\n${body}\n# ///\n`, "/s.py"));
    assert.equal(err.message, "No [tool.runspec] section found in TOML data");
  }
});

Deno.test("runspec: opener without closer is an error at the opener line", () => {
  const err = usageError(() =>
    parseRunspecText("x = 1\n# /// script\n# [tool.runspec]\n# name = 'a'\n", "s.py")
  );
  assert.match(err.message, /no closing '# \/\/\/'/);
  assert.deepEqual(err.location, { file: "s.py", line: 2, col: 1 });
});

Deno.test("runspec: closer with trailing space still closes (whitespace tolerated)", () => {
  const { runspec } = parseRunspecText(
    "# /// script\n# [tool.runspec]\n# name = 'a'\n# /// \n",
    "s.py",
  );
  assert.equal(runspec.name, "a");
});

Deno.test("runspec: a blank line inside the block names that line", () => {
  const text = "# /// script\n# [tool.runspec]\n\n# name = 'a'\n# ///\n";
  const err = usageError(() => parseRunspecText(text, "s.py"));
  assert.match(err.message, /does not start with '#'/);
  assert.equal(err.location?.line, 3);
});

Deno.test("runspec: '#name = ...' (no space) says what PEP 723 requires, not 'does not start with #'", () => {
  const text = '# /// script\n# [tool.runspec]\n#name = "a/b"\n# ///\n';
  const err = usageError(() => parseRunspecText(text, "s.py"));
  assert.doesNotMatch(err.message, /does not start with '#'/);
  assert.match(err.message, /starts with '#' but not with '# '/);
  assert.match(err.hint ?? "", /'# ' followed by the text, or a lone '#'/);
  assert.match(err.hint ?? "", /write "# name = \\"a\/b\\""/);
  assert.equal(err.location?.line, 3);
});

Deno.test("runspec: two script blocks are an error at the second opener", () => {
  const block = "# /// script\n# [tool.runspec]\n# name = 'a'\n# ///\n";
  const err = usageError(() => parseRunspecText(block + "x=1\n" + block, "s.py"));
  assert.match(err.message, /second '# \/\/\/ script' block/);
  assert.equal(err.location?.line, 6);
});

Deno.test("runspec: the closer is the last '# ///' of the comment run (PEP 723)", () => {
  const text = "# /// script\n# [tool.runspec]\n# name = 'a'\n# ///\n# note\n# ///\nprint()\n";
  // Per PEP 723 the block runs to the last closer before a non-comment line, so the first '# ///'
  // (line 4) is TOML content, and invalid there.
  const err = usageError(() => parseRunspecText(text, "s.py"));
  assert.match(err.message, /invalid TOML/);
  assert.equal(err.location?.line, 4);
});

Deno.test("runspec: TOML syntax errors point at line and column in the script", () => {
  const text = '#!/usr/bin/env python\n# /// script\n# [tool.runspec]\n# name = "a\n# ///\n';
  const err = usageError(() => parseRunspecText(text, "s.py"));
  assert.match(err.message, /^invalid TOML/);
  assert.equal(err.location?.file, "s.py");
  assert.equal(err.location?.line, 4);
  assert.ok((err.location?.col ?? 0) > 2, "column is inside the line, past the '# ' prefix");
});

Deno.test("runspec: validation errors name the key's line", () => {
  const cases: [string, RegExp, number][] = [
    ['# [tool.runspec]\n# name = "a"\n# schema = "2"', /unsupported runspec schema/, 4],
    [
      '# [tool.runspec]\n# name = "a"\n# [tool.runspec.run]\n# launch = "mpi"',
      /run\.launch must be one of/,
      5,
    ],
    ["# [tool.runspec]\n# [tool.runspec.resources]\n# nodes = 0", /positive integer/, 4],
    ["# [tool.runspec]\n# [tool.runspec.resources]\n# nodes = 1.5", /positive integer/, 4],
    ["# [tool.runspec]\n# [tool.runspec.resources]\n# gpus_per_node = -1", /gpus_per_node/, 4],
    ['# [tool.runspec]\n# [tool.runspec.resources]\n# gpus_per_node = "all"', /gpus_per_node/, 4],
    [
      '# [tool.runspec]\n# [tool.runspec.config]\n# format = "ini"',
      /config\.format must be one of/,
      4,
    ],
    ['# [tool.runspec]\n# name = "a"\n# [tool.runspec.env]\n# N = 1', /env\.N must be a string/, 5],
    ["# [tool.runspec]\n# name = 3", /'name' must be a string/, 3],
  ];
  for (const [body, re, line] of cases) {
    const err = usageError(() => parseRunspecText(`# /// script\n${body}\n# ///\n`, "s.py"));
    assert.match(err.message, re, body);
    assert.equal(err.location?.line, line, body);
  }
});

Deno.test("runspec: unknown keys are warnings naming the key and line", () => {
  const text =
    '# /// script\n# [tool.runspec]\n# name = "a"\n# colour = "red"\n# [tool.runspec.run]\n# launcher = "x"\n# ///\n';
  const { warnings } = parseRunspecText(text, "s.py");
  assert.equal(warnings.length, 2);
  assert.match(warnings[0].message, /tool\.runspec\.colour/);
  assert.equal(warnings[0].line, 4);
  assert.match(warnings[1].message, /tool\.runspec\.run\.launcher/);
  assert.equal(warnings[1].line, 6);
});

Deno.test("runspec: missing script file", () => {
  const err = usageError(() => parseRunspecFile("does/not/exist.py"));
  assert.equal(err.message, `Script not found: ${path.resolve("does/not/exist.py")}`);
});

// Property: any TOML table written into a PEP 723 block parses back equal.
const key = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,8}$/);
const scalar = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.integer({ min: -1e9, max: 1e9 }),
  fc.boolean(),
  // -0 is excluded: JS cannot tell TOML writers it is negative zero.
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).map((x) =>
    x === 0 ? 0 : x
  ),
);
const table = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, scalar, fc.array(scalar, { maxLength: 4 }), tie("table")),
  table: fc.dictionary(key, tie("value"), { maxKeys: 5 }),
})).table as fc.Arbitrary<Record<string, unknown>>;

/** Copy into ordinary objects (the TOML parser makes null-prototype ones). */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

Deno.test("runspec: property — a TOML table in a PEP 723 block round-trips", () => {
  fc.assert(
    fc.property(table, (t) => {
      const toml = tomlStringify(t);
      const body = toml.split("\n").map((l) => (l === "" ? "#" : `# ${l}`)).join("\n");
      const text = `import x\n# /// script\n${body}\n# ///\nprint(1)\n`;
      const block = extractScriptBlock(text, "p.py");
      assert.ok(block);
      assert.deepEqual(plain(parseToml(block.toml, "p.py")), plain(t));
    }),
    { numRuns: 300 },
  );
});

Deno.test("cli: runspec show --json uses the TOML key names", async () => {
  const dir = await tempDir();
  await writeTree(dir, { "rec/train.py": MINIMAL });
  const r = await runCli(["runspec", "show", "rec/train.py", "--json"], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(j), [
    "schema",
    "docs",
    "name",
    "image",
    "setup",
    "run",
    "config",
    "resources",
    "env",
    "script_path",
    "config_dir",
  ]);
  assert.equal(j.script_path, path.join(dir, "rec/train.py"));
  assert.equal(j.config_dir, path.join(dir, "rec/config"));
  assert.equal(j.run.cmd, null);
});

Deno.test("cli: runspec check reports path:line:col per problem and exits 2", async () => {
  const dir = await tempDir();
  await writeTree(dir, {
    "ok.py": MINIMAL,
    "bad.py": '# /// script\n# [tool.runspec]\n# name = "a\n# ///\n',
    "none.py": "print(1)\n",
  });
  const r = await runCli(["runspec", "check", "ok.py", "bad.py", "none.py"], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^bad\.py:3:\d+: error: invalid TOML/m);
  assert.match(r.stderr, /^none\.py: error: No PEP 723 metadata block found/m);
  assert.doesNotMatch(r.stderr, /ok\.py/);
  const ok = await runCli(["runspec", "check", "ok.py"], { cwd: dir });
  assert.equal(ok.code, 0, ok.stderr);
});
