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
