/**
 * The argument model of nemotron.
 *
 * Global options (`-c/--config`, `-r/--run`, `-b/--batch`, `-d/--dry-run`, `--stage`,
 * `--force-squash`, `--force-package`)
 * may stand before the group (`nemotron -d nano3 pretrain`) or anywhere after a recipe leaf
 * (`nemotron nano3 pretrain -c tiny -d`). After the leaf, a token with `=` that does not start with `-`
 * is a dotlist override (so is Hydra's `~key`, which deletes a key and needs no `=`), `--` ends option parsing (everything later is passthrough) and every other
 * token is passthrough for the script. `--run=P`, `-r=P`, `--config=X`, `-c=X`, `--batch=P`, `-b=P`
 * are recognised too (the Python original silently passed them to the script).
 */
import { UsageError } from "../errors.ts";

/** The global options, wherever they were given. Later occurrences win. */
export interface GlobalOptions {
  readonly config?: string;
  readonly run?: string;
  readonly batch?: string;
  readonly dryRun: boolean;
  readonly stage: boolean;
  readonly forceSquash: boolean;
  /** `--force-package`: ship a code package over `max_package_mb`. */
  readonly forcePackage?: boolean;
}

/** Where a job goes: `local` without a profile, `run` (attached) or `batch` (detached). */
export type RunMode = "local" | "run" | "batch";

/** Everything a recipe leaf command receives from the command line. */
export interface RecipeArgs extends GlobalOptions {
  /** `key.path=value` overrides in the order given. */
  readonly dotlist: readonly string[];
  /** Tokens forwarded to the script unchanged, in order. */
  readonly passthrough: readonly string[];
  /** `-h`/`--help` was given after the leaf (before any `--`). */
  readonly help: boolean;
  /** `--json` was given after the leaf (before any `--`): machine-readable output. */
  readonly json: boolean;
  readonly mode: RunMode;
  /** `run ?? batch`. */
  readonly profile?: string;
  /** The whole command line as the user typed it (without the executable). */
  readonly argv: readonly string[];
}

/** What main.ts hands to every command factory. */
export interface CliContext {
  /** The whole command line (without the executable). */
  readonly argv: readonly string[];
  /** Global options given before the group. */
  readonly leading: GlobalOptions;
  /** The command line after the leading global options: command path, then the leaf's tokens. */
  readonly rest: readonly string[];
}

export const NO_GLOBALS: GlobalOptions = Object.freeze({
  dryRun: false,
  stage: false,
  forceSquash: false,
  forcePackage: false,
});

const VALUE_OPTIONS: Readonly<Record<string, "config" | "run" | "batch">> = {
  "-c": "config",
  "--config": "config",
  "-r": "run",
  "--run": "run",
  "-b": "batch",
  "--batch": "batch",
};

const FLAG_OPTIONS: Readonly<
  Record<string, "dryRun" | "stage" | "forceSquash" | "forcePackage">
> = {
  "-d": "dryRun",
  "--dry-run": "dryRun",
  "--stage": "stage",
  "--force-squash": "forceSquash",
  "--force-package": "forcePackage",
};

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Try to read one global option at `tokens[i]` into `into`. Returns how many tokens it used
 * (0 when `tokens[i]` is not a global option).
 */
function readGlobal(tokens: readonly string[], i: number, into: Mutable<GlobalOptions>): number {
  const tok = tokens[i];
  const flag = FLAG_OPTIONS[tok];
  if (flag) {
    into[flag] = true;
    return 1;
  }
  const eq = tok.indexOf("=");
  if (tok.startsWith("-") && eq > 0) {
    const key = VALUE_OPTIONS[tok.slice(0, eq)];
    if (key) {
      const value = tok.slice(eq + 1);
      if (value === "") {
        throw new UsageError(`option '${tok.slice(0, eq)}' needs a value`, {
          hint: `write ${tok.slice(0, eq)}=NAME or ${tok.slice(0, eq)} NAME`,
        });
      }
      into[key] = value;
      return 1;
    }
    if (FLAG_OPTIONS[tok.slice(0, eq)]) {
      throw new UsageError(`option '${tok.slice(0, eq)}' takes no value (got '${tok}')`, {
        hint: `write ${tok.slice(0, eq)} alone`,
      });
    }
    return 0;
  }
  const key = VALUE_OPTIONS[tok];
  if (key) {
    const value = tokens[i + 1];
    if (value === undefined || value === "--" || value === "") {
      const what = key === "config" ? "a config name or path" : "an env.toml profile name";
      throw new UsageError(`option '${tok}' needs ${what}`, {
        hint: `write ${tok} ${key === "config" ? "tiny" : "my-cluster"}`,
      });
    }
    into[key] = value;
    return 2;
  }
  return 0;
}

/** The long options a recipe command knows after its leaf (for near-miss detection). */
const RECIPE_LONG_OPTIONS: readonly string[] = [
  ...Object.keys(VALUE_OPTIONS),
  ...Object.keys(FLAG_OPTIONS),
  "--json",
  "--help",
].filter((o) => o.startsWith("--"));

/** An option name folded for comparison: no leading dashes, `_` and `-` dropped, lower case. */
function foldOption(name: string): string {
  return name.replace(/^-+/, "").replace(/[-_]/g, "").toLowerCase();
}

/** Levenshtein distance with adjacent transpositions counted as one edit (`btach` → `batch`). */
function optionDistance(a: string, b: string): number {
  const d: number[][] = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The option of ours that `tok` (a token starting with `-`, not one of ours) looks like a typo of:
 * the same letters with other dashes/underscores/case (`--dry_run`, `-dry-run`, `--forcesquash`),
 * or a letter changed or swapped (`--btach`, `--rum`; for names of 6+ letters up to two edits with
 * the length within one: `--dryrn`). Undefined otherwise, so script options such as `--stages`,
 * `--jsonl` or `--batch-size` still pass through.
 */
export function nearMissOption(tok: string): string | undefined {
  if (!tok.startsWith("-") || tok === "-" || tok === "--") return undefined;
  const name = tok.includes("=") ? tok.slice(0, tok.indexOf("=")) : tok;
  const folded = foldOption(name);
  if (folded.length < 3) return undefined;
  let best: string | undefined;
  let bestDist = Infinity;
  for (const opt of RECIPE_LONG_OPTIONS) {
    const target = foldOption(opt);
    const dist = optionDistance(folded, target);
    // short names: a changed or swapped letter; longer ones: up to two edits, length within one
    const long = target.length >= 6;
    const lengthOk = Math.abs(folded.length - target.length) <= (long ? 1 : 0);
    if (lengthOk && dist <= (long ? 2 : 1) && dist < bestDist) {
      best = opt;
      bestDist = dist;
    }
  }
  return best;
}

/** Reject option combinations the original also rejects (with its messages). */
function validateGlobals(g: GlobalOptions): void {
  if (g.run !== undefined && g.batch !== undefined) {
    throw new UsageError("--run and --batch cannot both be set", {
      hint: "use --run PROFILE to wait for the job, or --batch PROFILE to submit and return",
    });
  }
  if (g.stage && g.run === undefined && g.batch === undefined) {
    throw new UsageError("--stage requires --run or --batch to specify target cluster", {
      hint: "add --run PROFILE or --batch PROFILE",
    });
  }
}

/**
 * Split the command line into the global options before the group and the rest (command path and
 * leaf tokens). Parsing stops at the first token that is not a global option.
 */
export function extractLeadingGlobals(
  argv: readonly string[],
): { leading: GlobalOptions; rest: string[] } {
  const leading: Mutable<GlobalOptions> = { ...NO_GLOBALS };
  let i = 0;
  while (i < argv.length) {
    const used = readGlobal(argv, i, leading);
    if (used === 0) break;
    i += used;
  }
  if (leading.run !== undefined && leading.batch !== undefined) validateGlobals(leading);
  return { leading, rest: argv.slice(i) };
}

/**
 * Parse a recipe leaf's tokens (everything after the leaf name) on top of the leading globals.
 * Throws `UsageError` for conflicting or incomplete options.
 */
export function parseRecipeArgs(tokens: readonly string[], cli: CliContext): RecipeArgs {
  const g: Mutable<GlobalOptions> = { ...cli.leading };
  const dotlist: string[] = [];
  const passthrough: string[] = [];
  let help = false;
  let json = false;
  for (let i = 0; i < tokens.length;) {
    const tok = tokens[i];
    if (tok === "--") {
      passthrough.push(...tokens.slice(i + 1));
      break;
    }
    if (tok === "-h" || tok === "--help") {
      help = true;
      i++;
      continue;
    }
    if (tok === "--json") {
      json = true;
      i++;
      continue;
    }
    const used = readGlobal(tokens, i, g);
    if (used > 0) {
      i += used;
      continue;
    }
    if ((!tok.startsWith("-") && tok.includes("=")) || /^~[A-Za-z_]/.test(tok)) dotlist.push(tok);
    else {
      const near = nearMissOption(tok);
      if (near !== undefined) {
        throw new UsageError(`unknown option '${tok}': did you mean ${near}?`, {
          hint: `to pass '${tok}' to the script unchanged, put it after '--' ` +
            `(e.g. nemotron … -- ${tok})`,
        });
      }
      passthrough.push(tok);
    }
    i++;
  }
  if (!help) validateGlobals(g);
  const mode: RunMode = g.run !== undefined ? "run" : g.batch !== undefined ? "batch" : "local";
  return Object.freeze({
    ...g,
    dotlist: Object.freeze(dotlist),
    passthrough: Object.freeze(passthrough),
    help,
    json,
    mode,
    profile: g.run ?? g.batch,
    argv: cli.argv,
  });
}

/** The tokens after a leaf whose command path has `depth` words (e.g. 2 for `nano3 pretrain`). */
export function leafTokens(cli: CliContext, depth: number): readonly string[] {
  return cli.rest.slice(depth);
}
