/**
 * Runs the Python OmegaConf oracle (tests/oracle/omegaconf_oracle.py, real OmegaConf 2.2 from
 * Debian's python3-omegaconf) over a batch of cases in ONE process, and encodes our trees in the
 * same typed form so results compare with deepEqual.
 */
import { type ConfigNode, Float, pyFloatRepr } from "../../lib/config/tree.ts";

export const ORACLE_PYTHON = "/usr/bin/python3";
const SCRIPT = new URL("./omegaconf_oracle.py", import.meta.url).pathname;

/** One differential case. */
export interface OracleCase {
  yaml: string;
  merges?: string[];
  dotlist?: string[];
  env?: Record<string, string>;
  resolve?: boolean;
  /** Overrides applied with Hydra's rule (`key=v`, `+key=v`, `++key=v`, `~key[=v]`). */
  hydra?: string[];
}

/** A typed value as the oracle encodes it. */
export type Encoded =
  | null
  | boolean
  | string
  | { $i: string }
  | { $f: string }
  | { $d: Array<[string, Encoded]> }
  | Encoded[];

export type OracleResult = { value: Encoded } | { error: string; message: string };

/** True when /usr/bin/python3 can import omegaconf (tests skip otherwise). */
export function oracleAvailable(): boolean {
  try {
    const r = new Deno.Command(ORACLE_PYTHON, { args: ["-c", "import omegaconf"] }).outputSync();
    return r.success;
  } catch {
    return false;
  }
}

/** Evaluate all cases with real OmegaConf in one Python process. */
export async function runOracle(cases: OracleCase[]): Promise<OracleResult[]> {
  const child = new Deno.Command(ORACLE_PYTHON, {
    args: [SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(cases)));
  await w.close();
  const out = await child.output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Our tree in the oracle's typed encoding. */
export function encode(v: ConfigNode): Encoded {
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint") return { $i: String(v) };
  if (v instanceof Float) return { $f: pyFloatRepr(v.value) };
  if (v instanceof Map) return { $d: [...v].map(([k, x]) => [k, encode(x)]) };
  return v.map(encode);
}
