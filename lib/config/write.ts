/**
 * Writing config trees: YAML (what OmegaConf reads back with the same types — floats stay floats,
 * strings that would retype are quoted, interpolations kept), JSON and TOML, plus atomic file
 * writes (temp file in the same directory, then rename).
 */
import { UsageError } from "../errors.ts";
import { type ConfigNode, Float, pyFloatRepr } from "./tree.ts";
import { plainKeepsString } from "./yaml.ts";

const PLAIN_SAFE = /^[A-Za-z0-9_/.][A-Za-z0-9_/.+\-@=%~ ]*$/;

function yamlString(s: string): string {
  if (s !== "" && PLAIN_SAFE.test(s) && !s.endsWith(" ") && plainKeepsString(s)) return s;
  // deno-lint-ignore no-control-regex
  if (!/[\u0000-\u001f\u007f\u0085\u2028\u2029\ufeff]/.test(s)) {
    return `'${s.replaceAll("'", "''")}'`;
  }
  return JSON.stringify(s).replace(/\u007f/g, "\\x7F");
}

function yamlFloat(x: number): string {
  if (Number.isNaN(x)) return ".nan";
  if (x === Infinity) return ".inf";
  if (x === -Infinity) return "-.inf";
  return pyFloatRepr(x);
}

function yamlScalar(v: ConfigNode): string {
  if (v === null) return "null";
  if (v === true) return "true";
  if (v === false) return "false";
  if (typeof v === "string") return yamlString(v);
  if (v instanceof Float) return yamlFloat(v.value);
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (v instanceof Map) return "{}";
  return "[]";
}

function nonEmpty(v: ConfigNode): boolean {
  return (v instanceof Map && v.size > 0) || (Array.isArray(v) && v.length > 0);
}

function emit(v: ConfigNode, indent: number, out: string[]): void {
  const pad = " ".repeat(indent);
  if (v instanceof Map) {
    for (const [k, x] of v) {
      if (nonEmpty(x)) {
        out.push(`${pad}${yamlString(k)}:`);
        emit(x, Array.isArray(x) ? indent : indent + 2, out);
      } else out.push(`${pad}${yamlString(k)}: ${yamlScalar(x)}`);
    }
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) {
      if (nonEmpty(x)) {
        const sub: string[] = [];
        emit(x, indent + 2, sub);
        sub[0] = `${pad}- ${sub[0].slice(indent + 2)}`;
        out.push(...sub);
      } else out.push(`${pad}- ${yamlScalar(x)}`);
    }
    return;
  }
  out.push(pad + yamlScalar(v));
}

/** YAML text of a tree, block style, keys in order. Reads back (ours or OmegaConf) identically. */
export function toYaml(tree: ConfigNode): string {
  if (!nonEmpty(tree)) return yamlScalar(tree) + "\n";
  const out: string[] = [];
  emit(tree, 0, out);
  return out.join("\n") + "\n";
}

function jsonValue(v: ConfigNode, indent: string, step: string): string {
  if (v instanceof Float) {
    if (Number.isNaN(v.value)) return "NaN";
    if (!Number.isFinite(v.value)) return v.value > 0 ? "Infinity" : "-Infinity";
    return pyFloatRepr(v.value);
  }
  if (typeof v === "bigint") return String(v);
  if (v instanceof Map) {
    if (v.size === 0) return "{}";
    const inner = indent + step;
    const items = [...v].map(([k, x]) =>
      `${inner}${JSON.stringify(k)}: ${jsonValue(x, inner, step)}`
    );
    return `{\n${items.join(",\n")}\n${indent}}`;
  }
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    const inner = indent + step;
    return `[\n${v.map((x) => inner + jsonValue(x, inner, step)).join(",\n")}\n${indent}]`;
  }
  return JSON.stringify(v);
}

/**
 * JSON text of a tree. Floats keep a decimal point or exponent (`1.0`), so Python's json reads
 * them as floats; non-finite floats are written as Python's json does (`NaN`, `Infinity`).
 */
export function toJson(tree: ConfigNode): string {
  return jsonValue(tree, "", "  ") + "\n";
}

function tomlKey(k: string): string {
  return /^[A-Za-z0-9_-]+$/.test(k) ? k : tomlString(k);
}

function tomlString(s: string): string {
  return JSON.stringify(s).replace(
    /[\u007f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function tomlInline(v: ConfigNode, path: string): string {
  if (v === null) {
    throw new UsageError(`TOML cannot represent null (at '${path}')`, {
      hint: "give the key a value or remove it, or use config.format yaml/json",
    });
  }
  if (typeof v === "string") return tomlString(v);
  if (typeof v === "boolean") return String(v);
  if (v instanceof Float) {
    if (Number.isNaN(v.value)) return "nan";
    if (!Number.isFinite(v.value)) return v.value > 0 ? "inf" : "-inf";
    return pyFloatRepr(v.value);
  }
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (v instanceof Map) {
    return `{ ${
      [...v].map(([k, x]) => `${tomlKey(k)} = ${tomlInline(x, `${path}.${k}`)}`).join(", ")
    } }`;
  }
  return `[${v.map((x, i) => tomlInline(x, `${path}.${i}`)).join(", ")}]`;
}

function emitToml(m: Map<string, ConfigNode>, prefix: string[], out: string[]): void {
  const tables: Array<[string, Map<string, ConfigNode>]> = [];
  const lines: string[] = [];
  for (const [k, v] of m) {
    if (v instanceof Map) tables.push([k, v]);
    else lines.push(`${tomlKey(k)} = ${tomlInline(v, [...prefix, k].join("."))}`);
  }
  if (prefix.length > 0 && (lines.length > 0 || tables.length === 0)) {
    out.push(`${out.length ? "\n" : ""}[${prefix.map(tomlKey).join(".")}]`);
  }
  out.push(...lines);
  for (const [k, v] of tables) emitToml(v, [...prefix, k], out);
}

/**
 * TOML text of a resolved tree (no interpolations: TOML has none, resolve first). `null` cannot
 * be written and is a `UsageError` naming the key.
 */
export function toToml(tree: Map<string, ConfigNode>): string {
  const out: string[] = [];
  emitToml(tree, [], out);
  return out.join("\n") + "\n";
}
