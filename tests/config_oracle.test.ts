/**
 * Differential tests: a generated corpus (fast-check, fixed seed) of configs — every YAML 1.1
 * scalar kind, nested maps/lists, merges, dotlists, interpolations of every form, error cases —
 * is evaluated by our engine and by real OmegaConf 2.2 (one Python process for the whole batch).
 * Values and types must be equal; where OmegaConf raises we must raise. Then every config we can
 * load is written with our YAML writer and read back by OmegaConf: same values, same types.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { mergeDotlist } from "../lib/config/dotlist.ts";
import { resolveTree } from "../lib/config/interpolate.ts";
import { mergeConfigs } from "../lib/config/merge.ts";
import type { ConfigMap } from "../lib/config/tree.ts";
import { toYaml } from "../lib/config/write.ts";
import { parseYamlMapping } from "../lib/config/yaml.ts";
import {
  encode,
  oracleAvailable,
  type OracleCase,
  type OracleResult,
  runOracle,
} from "./oracle/oracle.ts";

const SCALARS = [
  "yes",
  "no",
  "on",
  "Off",
  "True",
  "FALSE",
  "true",
  "010",
  "0x1F",
  "0b101",
  "1e3",
  "1.5e-3",
  "1_000",
  "2024-01-01",
  "~",
  "null",
  "Null",
  "1:30",
  "-.inf",
  ".nan",
  ".Inf",
  "'yes'",
  '"010"',
  "abc",
  "3.14",
  "-7",
  "+5",
  "0",
  "0.",
  "1.",
  ".5",
  "09",
  "1e-7",
  "1E5",
  "6.02e+23",
  "12345678901234567890",
  "'1.0'",
  '"a\\tb"',
  "a b",
  "x-y",
  "1_0.5",
  "-0",
  "y",
  "n",
  "'~'",
  "190:20:30.15",
  "0o17",
  "1.0",
  "100",
  "'???'",
  "???",
  "''",
  "'it''s'",
  "/path/to/x",
  "nvcr.io/nvidia/nemo:25.01",
];
const PATHS = [
  "a",
  "b",
  "c",
  "d",
  "x1",
  "a.a",
  "a.b",
  "b.a",
  "c.0",
  "c[0]",
  "a.0",
  ".a",
  ".b",
  "..a",
  "a.c.a",
  "b.b.a",
  "nope.x",
];
const TEMPLATES: Array<(p: string) => string> = [
  (p) => `\${${p}}`,
  (p) => `v_\${${p}}_w`,
  (p) => `\${${p}}\${${p}}`,
  (p) => `\${oc.select:${p},7}`,
  (p) => `\${oc.select:${p}}`,
  (p) => `\${oc.env:OC_T1,\${${p}}}`,
  (p) => `\${oc.env:OC_UNSET,\${${p}}}`,
  () => "${oc.env:OC_T1}",
  () => "${oc.env:OC_UNSET}",
  () => "${oc.env:OC_UNSET,null}",
  () => "${oc.env:OC_UNSET,'q r'}",
  () => "${oc.env:OC_UNSET,1.5}",
  () => "${oc.decode:'[1, 2.5, x, null, true]'}",
  () => "${oc.decode:'{p: 1, q: [a, 2]}'}",
  (p) => `\${oc.decode:"\${${p}}"}`,
  (p) => `\${oc.dict.keys:${p}}`,
  (p) => `\${oc.dict.values:${p}}`,
  (p) => `\\\${${p}}`,
  (p) => `\\\\\${${p}}`,
  (p) => `\${oc.create:{k: \${${p}}, l: [1]}}`,
  (p) => `pre \${oc.env:OC_T1} \${${p}} post`,
  (p) => `\${ ${p} }`,
  () => "${unknown_res:1}",
  (p) => `\${${p}`,
  (p) => `"\${${p}}"`,
  (p) => `\${oc.select:'${p}', 'dflt'}`,
];

type Gen = { kind: "scalar"; text: string } | { kind: "map"; items: Array<[string, Gen]> } | {
  kind: "list";
  items: Gen[];
};

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
const scalarArb: fc.Arbitrary<Gen> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.constantFrom(...SCALARS).map((text): Gen => ({ kind: "scalar", text })),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.constantFrom(...TEMPLATES), fc.constantFrom(...PATHS)).map((
      [t, p],
    ): Gen => ({ kind: "scalar", text: quote(t(p)) })),
  },
);
const genArb: fc.Arbitrary<Gen> = fc.letrec<{ node: Gen; map: Gen }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 3, depthIdentifier: "cfg" },
    { weight: 4, arbitrary: scalarArb },
    { weight: 2, arbitrary: tie("map") },
    {
      weight: 1,
      arbitrary: fc.array(tie("node"), { minLength: 1, maxLength: 3 }).map((items) => ({
        kind: "list" as const,
        items,
      })),
    },
  ),
  map: fc.uniqueArray(fc.tuple(fc.constantFrom("a", "b", "c", "d", "x1"), tie("node")), {
    minLength: 1,
    maxLength: 4,
    selector: ([k]) => k,
  }).map((items) => ({ kind: "map" as const, items })),
})).map;

function render(g: Gen, indent: number): string[] {
  const pad = " ".repeat(indent);
  if (g.kind === "map") {
    return g.items.flatMap(([k, v]) =>
      v.kind === "scalar" ? [`${pad}${k}: ${v.text}`] : [`${pad}${k}:`, ...render(v, indent + 2)]
    );
  }
  if (g.kind === "list") {
    return g.items.flatMap((v) => {
      if (v.kind === "scalar") return [`${pad}- ${v.text}`];
      const sub = render(v, indent + 2);
      if (sub.length === 0) return [`${pad}- ${v.kind === "map" ? "{}" : "[]"}`];
      return [`${pad}- ${sub[0].trimStart()}`, ...sub.slice(1)];
    });
  }
  return [pad + g.text];
}

const DOT_KEYS = ["a", "a.b", "e.f", "c", "b.a", "x1.y.z"];
const DOT_VALUES = [
  ...SCALARS.filter((s) => !s.startsWith("'") && !s.startsWith('"')),
  "[1, 2]",
  "{q: 1}",
  "a=b",
  "",
  "'${a}'",
];

const caseArb: fc.Arbitrary<OracleCase> = fc.record({
  yaml: genArb.map((g) => render(g, 0).join("\n") + "\n"),
  merges: fc.array(genArb.map((g) => render(g, 0).join("\n") + "\n"), { maxLength: 2 }),
  dotlist: fc.array(
    fc.tuple(fc.constantFrom(...DOT_KEYS), fc.constantFrom(...DOT_VALUES)).map(([k, v]) =>
      `${k}=${v}`
    ),
    { maxLength: 3 },
  ),
  resolve: fc.boolean(),
}).map((c) => ({ ...c, env: { OC_T1: "envval" } }));

/** Hand-written cases for forms the generator reaches rarely. */
const HANDWRITTEN: OracleCase[] = [
  { yaml: "b: &x {p: 1, q: 2}\nc:\n  <<: *x\n  q: 3\nd:\n  <<: [*x, {p: 9, r: 1}]\n  s: 1\n" },
  { yaml: "a: {x: 1}\nb: '${a}'\n", merges: ["b: {y: 2}\n"], resolve: true },
  { yaml: "a: '${b}'\nb: '${a}'\n", resolve: true },
  { yaml: "a:\n  b: '${a}'\n", resolve: true },
  { yaml: "k: x\nx: {y: 5}\na: '${${k}.y}'\n", resolve: true },
  { yaml: "a: [10, '${.0}', {q: '${..0}'}]\nb: '${a[0]}'\n", resolve: true },
  { yaml: "a: '${x y}'\n", resolve: true },
  { yaml: "a: =\n" },
  { yaml: "a: 1\na: 2\n" },
  { yaml: "a: !!float 1\nb: !!str 010\nc: !!int '7'\n" },
  { yaml: "a: [1, 2]\n", dotlist: ["a.0=5"] },
  { yaml: "a: 1e20\nb: 'x${a}'\nc: 1.0e-7\nd: 'x${c}'\ne: 1e16\nf: 'x${e}'\n", resolve: true },
  { yaml: "a: 'p \\${a} \\\\${b} \\\\\\${b}'\nb: 1\n", resolve: true },
];

Deno.test({
  name: "config engine agrees with OmegaConf 2.2 on a generated corpus",
  ignore: !oracleAvailable(),
  fn: async () => {
    const cases = [...HANDWRITTEN, ...fc.sample(caseArb, { numRuns: 400, seed: 20260101 })];
    assert.ok(cases.length >= 300);
    const ours: Array<OracleResult | { error: string; message: string }> = cases.map((c) => {
      try {
        let t: ConfigMap = parseYamlMapping(c.yaml, "case.yaml");
        for (const m of c.merges ?? []) t = mergeConfigs(t, parseYamlMapping(m, "merge.yaml"));
        t = mergeDotlist(t, c.dotlist ?? []);
        if (c.resolve) t = resolveTree(t, { env: (n) => c.env?.[n] });
        return { value: encode(t) };
      } catch (e) {
        return { error: (e as Error).name, message: (e as Error).message };
      }
    });
    // Round trip: whatever we loaded unresolved is written by our YAML writer, read by OmegaConf.
    const trips: OracleCase[] = [];
    const tripOf: number[] = [];
    cases.forEach((c, i) => {
      if (c.resolve || "error" in ours[i]) return;
      let t: ConfigMap = parseYamlMapping(c.yaml, "case.yaml");
      for (const m of c.merges ?? []) t = mergeConfigs(t, parseYamlMapping(m, "merge.yaml"));
      trips.push({ yaml: toYaml(mergeDotlist(t, c.dotlist ?? [])) });
      tripOf.push(i);
    });
    const all = await runOracle([...cases, ...trips]);
    const theirs = all.slice(0, cases.length);
    const failures: string[] = [];
    let errors = 0;
    cases.forEach((c, i) => {
      const o = ours[i];
      const t = theirs[i];
      if ("error" in t) {
        errors++;
        if (!("error" in o)) {
          failures.push(
            `${JSON.stringify(c)}\n  OmegaConf raised ${t.error}: ${t.message}\n  ours: ${
              JSON.stringify(o)
            }`,
          );
        }
      } else if (!isDeepStrictEqual(o, t)) {
        failures.push(
          `${JSON.stringify(c)}\n  OmegaConf: ${JSON.stringify(t)}\n  ours:      ${
            JSON.stringify(o)
          }`,
        );
      }
    });
    all.slice(cases.length).forEach((t, j) => {
      const o = ours[tripOf[j]];
      if (!isDeepStrictEqual(o, t)) {
        failures.push(
          `round trip of ${JSON.stringify(cases[tripOf[j]])}\n  written: ${
            JSON.stringify(trips[j].yaml)
          }\n  OmegaConf read: ${JSON.stringify(t)}\n  ours: ${JSON.stringify(o)}`,
        );
      }
    });
    assert.equal(failures.length, 0, failures.slice(0, 8).join("\n\n"));
    // The corpus must exercise both outcomes and the writer.
    assert.ok(errors > 20 && errors < cases.length - 100, `errors: ${errors}`);
    assert.ok(trips.length > 50, `round trips: ${trips.length}`);
  },
});
