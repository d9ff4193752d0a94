/**
 * Differential tests for the fast block-YAML reader (lib/config/yaml_fast.ts): wherever it
 * accepts a text, the tree must be identical to the `yaml`-package path's — values, types
 * (int / float / bigint / bool / null / str), key order and every recorded position — and
 * wherever the `yaml`-package path rejects a text, the fast reader must decline it (so errors keep
 * their messages and file:line:col). Corpora: a fast-check generated set of block-style documents
 * (fixed seed), the same documents with random single-character mutations, hand-picked edge
 * cases, the benchmark's synthetic config and every YAML file under recipes/ and tests/golden/.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { UsageError } from "../lib/errors.ts";
import { type ConfigNode, Float, positionOf } from "../lib/config/tree.ts";
import { parseYaml, parseYamlFast, parseYamlWithPackage } from "../lib/config/yaml.ts";
import { syntheticConfig } from "./bench/config.ts";

/** A canonical, strictly comparable rendering: types, key order and positions included. */
function canon(node: ConfigNode): unknown {
  const at = (c: Map<string, ConfigNode> | ConfigNode[], k: string | number) => {
    const p = positionOf(c, k);
    return p ? `${p.file}:${p.line}:${p.col}` : "?";
  };
  if (node instanceof Map) return ["map", [...node].map(([k, v]) => [k, at(node, k), canon(v)])];
  if (Array.isArray(node)) return ["seq", node.map((v, i) => [at(node, i), canon(v)])];
  if (node instanceof Float) {
    return ["float", Object.is(node.value, -0) ? "-0" : String(node.value)];
  }
  if (typeof node === "bigint") return ["bigint", String(node)];
  return [typeof node, node];
}

type Outcome = { ok: true; tree: unknown } | { ok: false; error: string };

function viaPackage(text: string): Outcome {
  try {
    return { ok: true, tree: canon(parseYamlWithPackage(text, "f.yaml")) };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return { ok: false, error: e.message };
  }
}

/** Compare both paths on `text`; true when the fast reader handled it. */
function agree(text: string): boolean {
  const fast = parseYamlFast(text, "f.yaml");
  const slow = viaPackage(text);
  if (fast === undefined) return false;
  assert.ok(
    slow.ok,
    `fast reader accepted a text the yaml package rejects (${slow.ok ? "" : slow.error}):\n${text}`,
  );
  assert.deepStrictEqual(canon(fast), slow.tree, `trees differ for:\n${JSON.stringify(text)}`);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Generated corpus: block-style documents with many layout and scalar variations.

const PLAIN = [
  "abc",
  "a b  c",
  "yes",
  "No",
  "on",
  "true",
  "~",
  "null",
  "010",
  "0x1F",
  "0b101",
  "1_000",
  "1:30",
  "1e3",
  "1.5e-3",
  "-.inf",
  ".nan",
  "3.14",
  "-7",
  "+5",
  "0.",
  "09",
  "2024-01-01",
  "a:b",
  "http://x.y/z?q=1#frag",
  "b#c",
  "x]",
  "a,b",
  "-a",
  "--x",
  ":a",
  "?a",
  "a'b",
  'a"b',
  "<<",
  "???",
  "${a.b}",
  "${.x}",
  "run_${a}_${b}",
  "${oc.env:HOME,/tmp}",
  "é ü 漢字 😀",
  "a\\b",
  "---",
  "a --- b",
];
const QUOTED = [
  "'yes'",
  "'it''s'",
  "''",
  "' a  '",
  '"010"',
  '""',
  '"a\\tb\\n"',
  '"\\u00e9\\x41\\U0001F600"',
  '"\\N\\_\\L\\P\\/\\\\\\""',
  '"${a.b}"',
  "'a: b # c'",
  '"it\'s"',
];
const FLOW = [
  "[]",
  "[ ]",
  "{}",
  "[1, 2, 3]",
  "[a,b , c ]",
  "[1,]",
  "[,]",
  "['x', \"y\", yes, 0x10]",
  "[a:b, 1:30, x:y:z]",
  "{a: 1, 'b': two, \"c\": 0.5}",
  '{"a":1}',
  "[${a.b}, x]",
  "{ k: a:b , 'q': 'it''s' }",
];
/** Scalars and collections outside the fast reader's subset, or invalid (rarely mixed in). */
const BAD = [
  "${oops",
  "=",
  "{x",
  '"\\q"',
  '"\\xZZ"',
  '"${bad"',
  "'unterminated",
  '"a" x',
  "[,]",
  "[a, [b]]",
  "{a: }",
  "{a: 1, a: 2}",
  "{a}",
  "{a:1}",
  "[a #b]",
  "[1, 2",
  "{ x: [1] }",
  "&anchor v",
  "*alias",
  "!!str x",
  "|",
  "a: b",
];
const KEYS = [
  "a",
  "b",
  "x1",
  "key with spaces",
  "1",
  "true",
  "~",
  "a[0]",
  "a,b",
  "a:b",
  "k ",
  "'q k'",
  '"d k"',
  "é",
  "${k}",
];

type Tree =
  | { t: "scalar"; text: string; comment: boolean }
  | { t: "map"; entries: Array<[string, Tree]> }
  | { t: "seq"; items: Tree[] }
  | { t: "empty"; comment: boolean };

const scalarArb: fc.Arbitrary<Tree> = fc.record({
  t: fc.constant("scalar" as const),
  text: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...PLAIN) },
    { weight: 3, arbitrary: fc.constantFrom(...QUOTED) },
    { weight: 2, arbitrary: fc.constantFrom(...FLOW) },
    { weight: 1, arbitrary: fc.constantFrom(...BAD) },
  ),
  comment: fc.boolean(),
});
const emptyArb: fc.Arbitrary<Tree> = fc.record({
  t: fc.constant("empty" as const),
  comment: fc.boolean(),
});

const treeArb = fc.letrec<{ node: Tree; map: Tree; seq: Tree }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { weight: 5, arbitrary: scalarArb },
    { weight: 1, arbitrary: emptyArb },
    { weight: 2, arbitrary: tie("map") },
    { weight: 2, arbitrary: tie("seq") },
  ),
  map: fc.oneof(
    {
      weight: 9,
      arbitrary: fc.uniqueArray(fc.tuple(fc.constantFrom(...KEYS), tie("node")), {
        minLength: 1,
        maxLength: 4,
        selector: ([k]) => k.trim(),
      }),
    },
    // Sometimes duplicate or unsupported keys.
    {
      weight: 1,
      arbitrary: fc.array(
        fc.tuple(fc.constantFrom(...KEYS, "<<", "-k", "'1'", "? k"), tie("node")),
        { minLength: 1, maxLength: 4 },
      ),
    },
  ).map((entries): Tree => ({ t: "map", entries })),
  seq: fc.array(tie("node"), { minLength: 1, maxLength: 4 })
    .map((items): Tree => ({ t: "seq", items })),
}));

interface Style {
  indent: number; // spaces per level (1..4)
  seqSameIndent: boolean; // `key:\n- x` instead of `key:\n  - x`
  compact: boolean; // `- key: v` and `- - x`
  extraSpaces: number; // extra spaces after `:` / `-`
  comments: number; // per-mille chance of a comment line before an entry
  blank: boolean; // blank lines between entries
  trailing: boolean; // trailing spaces at the end of lines
  baseIndent: number; // the document's top-level indent
}

const styleArb: fc.Arbitrary<Style> = fc.record({
  indent: fc.integer({ min: 1, max: 4 }),
  seqSameIndent: fc.boolean(),
  compact: fc.boolean(),
  extraSpaces: fc.constantFrom(0, 0, 0, 1, 2),
  comments: fc.constantFrom(0, 0, 200, 500),
  blank: fc.boolean(),
  trailing: fc.boolean(),
  baseIndent: fc.constantFrom(0, 0, 0, 2),
});

/** Render `tree` as block YAML; a deterministic pseudo-random stream varies small details. */
function render(tree: Tree, style: Style, seed: number): string {
  let r = seed >>> 0;
  const rand = (n: number) => {
    r = (Math.imul(r, 1103515245) + 12345) >>> 0;
    return (r >>> 8) % n;
  };
  const out: string[] = [];
  const sp = (n: number) => " ".repeat(n);
  const tail = () => (style.trailing && rand(4) === 0 ? sp(1 + rand(2)) : "");
  const between = (ind: number) => {
    if (style.comments && rand(1000) < style.comments) {
      out.push(`${sp(rand(3) === 0 ? rand(ind + 3) : ind)}# note: x${tail()}`);
    }
    if (style.blank && rand(5) === 0) out.push(rand(2) ? "" : sp(rand(4)));
  };
  const inline = (node: Tree): string => {
    if (node.t === "scalar") return node.text + (node.comment ? `${sp(1 + rand(2))}# c` : "");
    return node.t === "empty" && node.comment ? "# c" : "";
  };
  const gap = () => sp(1 + style.extraSpaces);

  // `first` is the prefix already written on the current line (`- ` for a compact entry).
  const block = (node: Tree, ind: number, first: string | undefined): void => {
    if (node.t === "map") {
      node.entries.forEach(([k, v], i) => {
        if (i > 0 || first === undefined) between(ind);
        const head = i === 0 && first !== undefined ? first : sp(ind);
        value(`${head}${k}:`, v, ind, true);
      });
    } else if (node.t === "seq") {
      node.items.forEach((v, i) => {
        if (i > 0 || first === undefined) between(ind);
        const head = i === 0 && first !== undefined ? first : sp(ind);
        value(`${head}-`, v, ind, false);
      });
    }
  };
  const value = (head: string, v: Tree, ind: number, inMap: boolean): void => {
    if (v.t === "scalar" || v.t === "empty") {
      const text = inline(v);
      out.push(text === "" ? head + tail() : `${head}${gap()}${text}${tail()}`);
      return;
    }
    if (!inMap && style.compact) {
      const pad = gap();
      block(v, head.length + pad.length, head + pad);
      return;
    }
    out.push(head + tail());
    const child = v.t === "seq" && inMap && style.seqSameIndent ? ind : ind + style.indent;
    block(v, child, undefined);
  };

  if (tree.t === "map" || tree.t === "seq") block(tree, style.baseIndent, undefined);
  else out.push(inline(tree));
  return out.join("\n") + (rand(4) ? "\n" : "");
}

const docArb = fc.tuple(
  fc.oneof({ weight: 8, arbitrary: treeArb.map }, treeArb.seq, treeArb.node),
  styleArb,
  fc.integer(),
).map(([t, s, seed]) => render(t, s, seed));

const MUTATIONS = [
  " ",
  "  ",
  "\n",
  "\t",
  "#",
  " #",
  ":",
  ": ",
  "-",
  "- ",
  "&a ",
  "*a",
  "!!str ",
  "|",
  ">",
  "'",
  '"',
  "[",
  "]",
  "{",
  "}",
  ",",
  "?",
  "%",
  "@",
  "\\",
  "\r",
  "---\n",
  "<<: ",
  "${",
  "x",
];

const mutatedArb = fc.tuple(docArb, fc.nat(), fc.constantFrom(...MUTATIONS), fc.boolean()).map(
  ([doc, at, ins, del]) => {
    const i = doc.length === 0 ? 0 : at % doc.length;
    return doc.slice(0, i) + ins + doc.slice(del ? i + 1 : i);
  },
);

Deno.test("fast YAML reader = yaml package on a generated block-style corpus", () => {
  let handled = 0;
  let total = 0;
  fc.assert(
    fc.property(docArb, (text) => {
      total++;
      if (agree(text)) handled++;
    }),
    { seed: 20250611, numRuns: 3000 },
  );
  // The comparison above is only meaningful if the fast reader really takes most documents.
  assert.ok(handled > total * 0.5, `fast reader handled only ${handled} of ${total} documents`);
});

Deno.test("fast YAML reader never accepts what the yaml package rejects (mutated corpus)", () => {
  let handled = 0;
  let total = 0;
  fc.assert(
    fc.property(mutatedArb, (text) => {
      total++;
      if (agree(text)) handled++;
    }),
    { seed: 7031, numRuns: 3000 },
  );
  assert.ok(handled > total * 0.1, `fast reader handled only ${handled} of ${total} documents`);
});

/** Every .yaml/.yml file under `dir`. */
async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await yamlFiles(p));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

Deno.test("fast YAML reader handles every recipe and golden YAML file identically", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const files = [
    ...await yamlFiles(`${root}recipes`),
    ...await yamlFiles(`${root}tests/golden`),
  ];
  assert.ok(files.length >= 10, `found only ${files.length} YAML files`);
  for (const f of files) {
    const text = await Deno.readTextFile(f);
    assert.ok(agree(text), `fast reader declined ${f}`);
  }
});

Deno.test("fast YAML reader handles the benchmark config identically", () => {
  assert.ok(agree(syntheticConfig(20)));
});

Deno.test("fast YAML reader: hand-picked layouts agree", () => {
  const handled = [
    "",
    "# only a comment\n",
    "a:\nb: 1",
    "a:   # c\nb: 1",
    "a:\n  # c\n\n  b: 1",
    "a:\n# c at column 1\n  b: 1\n",
    "a:\n- x\n-\n- # c\n-  \nz: 1",
    'a: [1, "x", b]',
    'a: {x: 1, "y": 2}',
    "- a: 1\n  b:\n- - x\n  - y",
    "- a:\n  - x",
    "-   a: 1\n    b: 2\n-\n  c: 3",
    "a: b\n   # c\nd: e",
    "a: 'it''s' # c",
    "k : v",
    "'a b' : 2",
    "a[0]: 1",
    "  a: 1\n  b:\n    c: 2\n",
    "a: ${x.y}\nx:\n  y: 1",
    "a: <<",
    "a:\n  b:\n    c:\n      d: [1, 2.5, yes, ~, 0x1F, 1:30, .inf]",
  ];
  for (const t of handled) assert.ok(agree(t), `fast reader declined ${JSON.stringify(t)}`);
});

Deno.test("fast YAML reader declines what it does not cover; errors keep file:line:col", () => {
  const declined = [
    "a: &x 1\nb: *x",
    "<<: {a: 1}\nb: 2",
    "a: !!str 1",
    "a: |\n  text\n",
    "a: >\n  text\n",
    "a: multi\n  line",
    'a: "multi\n  line"',
    "? complex\n: key",
    "%YAML 1.1\n---\na: 1",
    "---\na: 1",
    "a: 1\n---\nb: 2",
    "a:\tb",
    "a: 1\r\nb: 2",
    "a: [1,\n  2]",
    "a: {x: [1]}",
    "plain scalar",
    "a: 1\na: 2",
    "a: ${oops",
    "a: =",
    "a: b: c",
    'a: "x"# c',
    "a: 1\n- x",
    'a: "\\U00110000"',
    "x: 1\na #b: c",
  ];
  for (const t of declined) {
    assert.equal(parseYamlFast(t, "f.yaml"), undefined, `fast reader took ${JSON.stringify(t)}`);
  }
  // Errors come from the yaml-package path, located (expected positions checked by hand).
  const errs: Array<[string, string, number, number]> = [
    ["a: 1\na: 2", "Map keys must be unique", 2, 1],
    ["a: ${oops", "invalid interpolation", 1, 4],
    ["x:\n  a: =", "'=' is a reserved YAML value", 2, 6],
    ["a: 1\n- x", "Implicit keys need to be on a single line", 2, 1],
  ];
  for (const [text, msg, line, col] of errs) {
    assert.throws(() => parseYaml(text, "e.yaml"), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.ok(e.message.includes(msg), e.message);
      assert.deepEqual(e.location, { file: "e.yaml", line, col });
      return true;
    });
  }
});
