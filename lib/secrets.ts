/**
 * Secret detection and redaction. A name is secret-looking when its upper-case form contains KEY,
 * TOKEN, SECRET, PASSWORD, PASSWD or CREDENTIAL. Secret values never appear in scripts, job files,
 * logs, dry-run output or the job database.
 */

const MARKERS = ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"] as const;

/** The text shown instead of a secret value. */
export const REDACTED = "******";

/** True when `name` looks like it holds a secret. */
export function isSecretName(name: string): boolean {
  const up = name.toUpperCase();
  return MARKERS.some((m) => up.includes(m));
}

/**
 * A deep copy of `value` where every mapping entry whose key is secret-looking and whose value is a
 * non-empty string is replaced by `******` (numbers and booleans are never credentials, so
 * `max_tokens = 512` stays visible; tables under such keys are searched further).
 */
export function redactSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v)) as T;
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = isSecretName(k) && typeof v === "string" && v !== "" ? REDACTED : redactSecrets(v);
    }
    return out as T;
  }
  return value;
}

/** A value that cannot be a credential: a number, a boolean or null as YAML would read it. */
function plainValue(v: string): boolean {
  return /^(?:[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|true|false|null|~|)$/i.test(v);
}

/**
 * Command-line tokens with secrets hidden: the value of `KEY=value` / `--key=value` when the key
 * is secret-looking (`run.env.env_vars.MY_API_KEY=…`, `--hf-token=…`), and the token after a
 * secret-looking flag (`--api-key VALUE`). Numbers and booleans stay (`train.max_tokens=512`).
 */
export function redactArgv(tokens: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    const eq = t.indexOf("=");
    if (eq > 0) {
      const key = t.slice(0, eq).replace(/^-+/, "");
      const value = t.slice(eq + 1);
      out.push(isSecretName(key) && !plainValue(value) ? `${t.slice(0, eq)}=${REDACTED}` : t);
      continue;
    }
    out.push(t);
    const next = tokens[i + 1];
    if (
      t.startsWith("-") && isSecretName(t.replace(/^-+/, "")) && next !== undefined &&
      !next.startsWith("-") && !plainValue(next)
    ) {
      out.push(REDACTED);
      i++;
    }
  }
  return out;
}
