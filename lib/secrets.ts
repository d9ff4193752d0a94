/**
 * Secret detection and redaction: the ONE rule of nemotron. Every place that writes or prints a
 * value (job.yaml, dry runs, job.json, sbatch.sh, the job store, `env show`, the command line
 * recorded for provenance) asks `isSecretName` and redacts with `redactSecrets` / `redactArgv`.
 *
 * The rule, on the name's word parts (split at every non-letter and at camelCase humps, compared
 * upper-case: `wandb.api_key` → WANDB API KEY, `hfToken` → HF TOKEN, `--db-pass` → DB PASS):
 * - a part that ENDS with KEY or TOKEN (`API_KEY`, `APIKEY`, `HF_TOKEN`, `AUTHTOKEN`);
 * - a part that CONTAINS SECRET, PASSWORD, PASSWD, PASSPHRASE or CREDENTIAL (`CLIENT_SECRET`,
 *   `DBPASSWORD`, `GOOGLE_APPLICATION_CREDENTIALS`);
 * - a part that IS PASS or PWD (`DB_PASS`, `MYSQL_PWD`, `--pass`).
 * Not secret: `KEYBOARD`, `TOKENIZER`, `max_tokens` (TOKENS), `PASSES`, `PASSAGE`, `BYPASS`, and the
 * shell's own `PWD`/`OLDPWD` (the working directory, used in `${oc.env:PWD}`). Known false
 * positives, accepted because hiding a value costs little: `MONKEY`, `TURKEY`, `PUBLIC_KEY`.
 */

/** The text shown instead of a secret value. */
export const REDACTED = "******";

const ENDS_WITH = /(?:KEY|TOKEN)$/;
const CONTAINS = /SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL/;
const IS = new Set(["PASS", "PWD"]);
/** Whole names that match the rule but are not secrets. */
const NOT_SECRET = new Set(["PWD", "OLDPWD"]);

/** The upper-case word parts of a name: split at non-letters and at lower→upper case changes. */
export function nameParts(name: string): string[] {
  return name
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .split(/[^A-Za-z]+/)
    .filter(Boolean)
    .map((p) => p.toUpperCase());
}

/** True when `name` looks like it holds a secret (see the rule above). */
export function isSecretName(name: string): boolean {
  if (NOT_SECRET.has(name)) return false;
  return nameParts(name).some((p) => ENDS_WITH.test(p) || CONTAINS.test(p) || IS.has(p));
}

/** A value that is only a reference to another value (`${oc.env:HF_TOKEN}`), not a secret. */
function isReference(v: string): boolean {
  return /^\$\{[^${}]*\}$/.test(v);
}

/** True when `value` under a secret-looking key must be hidden: a non-empty literal string. */
function hides(value: unknown): boolean {
  return typeof value === "string" && value !== "" && !isReference(value);
}

/** A plain `{…}` object (not a class instance such as a config `Float`, which is kept as is). */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * A deep copy of `value` (plain objects, arrays and `Map`s, i.e. config trees too) where every
 * mapping entry whose key is secret-looking and whose value is a non-empty string is replaced by
 * `******`, at any depth. Numbers and booleans are never credentials, so `max_tokens = 512` stays
 * visible; a pure reference such as `${oc.env:HF_TOKEN}` stays (it holds no secret); tables under
 * such keys are searched further.
 */
export function redactSecrets<T>(value: T): T {
  if (value instanceof Map) {
    const out = new Map();
    for (const [k, v] of value) {
      out.set(
        k,
        typeof k === "string" && isSecretName(k) && hides(v) ? REDACTED : redactSecrets(v),
      );
    }
    return out as T;
  }
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v)) as T;
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = isSecretName(k) && hides(v) ? REDACTED : redactSecrets(v);
    }
    return out as T;
  }
  return value;
}

/** Redact secret-looking entries of a name → value map (environment variables). */
export function redactEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, isSecretName(k) && v ? REDACTED : v]),
  );
}

/** A value that cannot be a credential: a number, a boolean or null as YAML would read it. */
function plainValue(v: string): boolean {
  return /^(?:[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|true|false|null|~|)$/i.test(v);
}

/**
 * The secret-looking options of a passthrough argument list and their values: `--password=X`,
 * `--hf-token X`, `DB_PASS=X`. `index` is the token holding the value, `prefix` what precedes
 * the value in it (`--password=` or `` for a separate token). Numbers and booleans are not secrets.
 */
export function secretArgs(
  tokens: readonly string[],
): { index: number; prefix: string; value: string; name: string }[] {
  const out: { index: number; prefix: string; value: string; name: string }[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    const eq = t.indexOf("=");
    if (eq > 0) {
      const name = t.slice(0, eq).replace(/^-+/, "");
      const value = t.slice(eq + 1);
      if (isSecretName(name) && !plainValue(value)) {
        out.push({ index: i, prefix: t.slice(0, eq + 1), value, name });
      }
      continue;
    }
    const next = tokens[i + 1];
    const name = t.replace(/^-+/, "");
    if (
      t.startsWith("-") && isSecretName(name) && next !== undefined &&
      !next.startsWith("-") && !plainValue(next)
    ) {
      out.push({ index: i + 1, prefix: "", value: next, name });
      i++;
    }
  }
  return out;
}

/**
 * Command-line tokens with secrets hidden: the value of `KEY=value` / `--key=value` when the key
 * is secret-looking (`run.env.env_vars.MY_API_KEY=…`, `--hf-token=…`), and the token after a
 * secret-looking flag (`--api-key VALUE`). Numbers and booleans stay (`train.max_tokens=512`).
 */
export function redactArgv(tokens: readonly string[]): string[] {
  const out = [...tokens];
  for (const s of secretArgs(tokens)) out[s.index] = s.prefix + REDACTED;
  return out;
}
