/**
 * Runspec: the PEP 723 `[tool.runspec]` block of a recipe script, parsed into a frozen object.
 *
 * The block is found with PEP 723's rules (opener `# /// script`, content lines that are `#` or
 * start with `# `, closer `# ///`: the last one before the first non-comment line). Unlike the
 * Python original, which silently reports "no block" for these, an opener without a closer, two
 * `script` blocks and a content line that is not `# …` or a lone `#` are errors naming the line.
 * TOML errors point at the line and column in the script. CRLF files work.
 */
import * as path from "./path.ts";
import { UsageError } from "./errors.ts";
import { isTable, locateKey, parseToml } from "./toml.ts";

export type Launch = "torchrun" | "ray" | "direct";
export type ConfigFormat = "omegaconf" | "yaml" | "json" | "toml";

/** A parsed runspec. Field names are the TOML key names. */
export interface Runspec {
  readonly schema: "1";
  readonly docs: string;
  readonly name: string;
  readonly image: string | null;
  readonly setup: string;
  readonly run: {
    readonly launch: Launch;
    readonly cmd: string | null;
    readonly workdir: string | null;
  };
  readonly config: {
    readonly dir: string;
    readonly default: string;
    readonly format: ConfigFormat;
  };
  readonly resources: {
    readonly nodes: number;
    readonly gpus_per_node: number | "gpu";
  };
  readonly env: Readonly<Record<string, string>>;
  /** Absolute path of the script. */
  readonly script_path: string;
  /** `config.dir` resolved against the script's directory, absolute and normalised. */
  readonly config_dir: string;
}

/** A non-fatal finding (unknown keys), with its line in the script. */
export interface RunspecWarning {
  readonly file: string;
  readonly line?: number;
  readonly message: string;
}

export interface ParsedRunspec {
  readonly runspec: Runspec;
  readonly warnings: readonly RunspecWarning[];
}

const LAUNCHES: readonly Launch[] = ["torchrun", "ray", "direct"];
const FORMATS: readonly ConfigFormat[] = ["omegaconf", "yaml", "json", "toml"];
const KNOWN: Readonly<Record<string, readonly string[] | null>> = {
  schema: null,
  docs: null,
  name: null,
  image: null,
  setup: null,
  run: ["launch", "cmd", "workdir"],
  config: ["dir", "default", "format"],
  resources: ["nodes", "gpus_per_node"],
  env: null,
};

/** The TOML text of the `script` block plus where its content starts in the file. */
interface ScriptBlock {
  readonly toml: string;
  /** 1-based line number of the first content line. */
  readonly firstLine: number;
  /** For each content line, how many characters the comment prefix took (`# ` = 2, `#` = 1). */
  readonly prefixWidths: readonly number[];
  readonly lines: readonly string[];
}

const OPENER = /^# \/\/\/ script\s*$/;
const CLOSER = /^# \/\/\/\s*$/;
const CONTENT = /^#( .*)?$/;

/** Find the single PEP 723 `script` block of `text`; errors name `file` and the line. */
export function extractScriptBlock(text: string, file: string): ScriptBlock | undefined {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  let block: ScriptBlock | undefined;
  let i = 0;
  while (i < lines.length) {
    if (!OPENER.test(lines[i])) {
      if (/^# \/\/\/ script/.test(lines[i])) {
        throw new UsageError(`malformed PEP 723 opener '${lines[i]}'`, {
          location: { file, line: i + 1, col: 1 },
          hint: "the opener is exactly '# /// script'",
        });
      }
      i++;
      continue;
    }
    const opener = i;
    if (block) {
      throw new UsageError("a second '# /// script' block (PEP 723 allows one)", {
        location: { file, line: opener + 1, col: 1 },
        hint: "merge both blocks into one",
      });
    }
    let stop = opener + 1;
    while (stop < lines.length && CONTENT.test(lines[stop])) stop++;
    let closer = -1;
    for (let j = stop - 1; j > opener; j--) {
      if (CLOSER.test(lines[j])) {
        closer = j;
        break;
      }
    }
    if (closer < 0) {
      const laterCloser = lines.findIndex((l, j) => j > stop && CLOSER.test(l));
      if (stop < lines.length && laterCloser > 0) {
        const bad = lines[stop];
        const what = bad.startsWith("#")
          ? `starts with '#' but not with '# ' (a '#' and a space)`
          : `does not start with '#'`;
        throw new UsageError(
          `line inside the '# /// script' block ${what}: ${JSON.stringify(bad)}`,
          {
            location: { file, line: stop + 1, col: 1 },
            hint: bad.startsWith("#")
              ? `PEP 723 wants each line of the block to be '# ' followed by the text, or a lone '#': write ${
                JSON.stringify("# " + bad.slice(1))
              }`
              : "PEP 723 wants each line of the block to be '# ' followed by the text, or a lone '#' (blank lines too)",
          },
        );
      }
      throw new UsageError("'# /// script' block has no closing '# ///' line", {
        location: { file, line: opener + 1, col: 1 },
        hint: "end the block with a line that is exactly '# ///'",
      });
    }
    const content = lines.slice(opener + 1, closer);
    block = {
      toml: content.map((l) => (l === "#" ? "" : l.slice(2))).join("\n") + "\n",
      firstLine: opener + 2,
      prefixWidths: content.map((l) => (l === "#" ? 1 : 2)),
      lines: content.map((l) => (l === "#" ? "" : l.slice(2))),
    };
    i = closer + 1;
  }
  return block;
}

function fail(file: string, block: ScriptBlock, key: string, message: string, hint: string): never {
  const rel = locateKey(block.lines, "tool.runspec", key);
  const line = rel === undefined ? undefined : block.firstLine + rel - 1;
  throw new UsageError(message, {
    location: {
      file,
      line,
      col: line === undefined ? undefined : 1 + (block.prefixWidths[rel! - 1] ?? 2),
    },
    hint,
  });
}

function optString(
  table: Record<string, unknown>,
  key: string,
  full: string,
  file: string,
  block: ScriptBlock,
): string | undefined {
  const v = table[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") {
    fail(
      file,
      block,
      full,
      `'${full}' must be a string, got ${describe(v)}`,
      `write ${full} = "…"`,
    );
  }
  return v;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (isTable(v)) return "a table";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * Parse the runspec from a script's text. `scriptPath` is used for messages and to resolve
 * `config.dir` (made absolute against the current directory).
 */
export function parseRunspecText(text: string, scriptPath: string): ParsedRunspec {
  const abs = path.resolve(scriptPath);
  const file = scriptPath;
  const block = extractScriptBlock(text, file);
  if (!block) {
    throw new UsageError(`No PEP 723 metadata block found in ${abs}`, {
      location: { file },
      hint: "add a '# /// script' … '# ///' block with a [tool.runspec] table",
    });
  }
  const data = parseToml(block.toml, file, (line, col) => ({
    line: block.firstLine + line - 1,
    col: col + (block.prefixWidths[line - 1] ?? 2),
  }));
  const tool = data.tool;
  const spec = isTable(tool) ? tool.runspec : undefined;
  if (!isTable(spec) || Object.keys(spec).length === 0) {
    throw new UsageError("No [tool.runspec] section found in TOML data", {
      location: { file, line: block.firstLine - 1 },
      hint: 'add a [tool.runspec] table with at least name = "group/recipe"',
    });
  }
  const warnings: RunspecWarning[] = [];
  for (const [key, value] of Object.entries(spec)) {
    if (!(key in KNOWN)) {
      warnings.push(unknownKey(file, block, key));
      continue;
    }
    const sub = KNOWN[key];
    if (sub && isTable(value)) {
      for (const k of Object.keys(value)) {
        if (!sub.includes(k)) warnings.push(unknownKey(file, block, `${key}.${k}`));
      }
    } else if (sub && !isTable(value)) {
      fail(
        file,
        block,
        key,
        `'${key}' must be a table, got ${describe(value)}`,
        `write [tool.runspec.${key}]`,
      );
    }
  }

  let schema = spec.schema ?? "1";
  if (schema === 1) schema = "1";
  if (schema !== "1") {
    fail(
      file,
      block,
      "schema",
      `unsupported runspec schema ${JSON.stringify(schema)}`,
      'this nemotron reads schema = "1"',
    );
  }
  const run = isTable(spec.run) ? spec.run : {};
  const config = isTable(spec.config) ? spec.config : {};
  const resources = isTable(spec.resources) ? spec.resources : {};

  const launch = optString(run, "launch", "run.launch", file, block) ?? "torchrun";
  if (!LAUNCHES.includes(launch as Launch)) {
    fail(
      file,
      block,
      "run.launch",
      `run.launch must be one of ${LAUNCHES.join(", ")}; got '${launch}'`,
      'e.g. launch = "direct"',
    );
  }
  const format = optString(config, "format", "config.format", file, block) ?? "omegaconf";
  if (!FORMATS.includes(format as ConfigFormat)) {
    fail(
      file,
      block,
      "config.format",
      `config.format must be one of ${FORMATS.join(", ")}; got '${format}'`,
      'e.g. format = "yaml"',
    );
  }
  const nodes = resources.nodes ?? 1;
  if (typeof nodes !== "number" || !Number.isInteger(nodes) || nodes < 1) {
    fail(
      file,
      block,
      "resources.nodes",
      `resources.nodes must be a positive integer, got ${describe(nodes)}`,
      "e.g. nodes = 2",
    );
  }
  const gpus = resources.gpus_per_node ?? 8;
  if (!(gpus === "gpu" || (typeof gpus === "number" && Number.isInteger(gpus) && gpus >= 0))) {
    fail(
      file,
      block,
      "resources.gpus_per_node",
      `resources.gpus_per_node must be an integer >= 0 or "gpu", got ${describe(gpus)}`,
      "e.g. gpus_per_node = 8",
    );
  }
  const env: Record<string, string> = {};
  if (spec.env !== undefined) {
    if (!isTable(spec.env)) {
      fail(
        file,
        block,
        "env",
        `'env' must be a table of strings, got ${describe(spec.env)}`,
        "write [tool.runspec.env]",
      );
    }
    for (const [k, v] of Object.entries(spec.env)) {
      if (typeof v !== "string") {
        fail(
          file,
          block,
          `env.${k}`,
          `env.${k} must be a string, got ${describe(v)}`,
          `write ${k} = "${String(v)}"`,
        );
      }
      env[k] = v;
    }
  }
  const dir = optString(config, "dir", "config.dir", file, block) ?? "./config";
  const runspec: Runspec = {
    schema: "1",
    docs: optString(spec, "docs", "docs", file, block) ?? "",
    name: optString(spec, "name", "name", file, block) ?? "",
    image: optString(spec, "image", "image", file, block) ?? null,
    setup: (optString(spec, "setup", "setup", file, block) ?? "").trim(),
    run: Object.freeze({
      launch: launch as Launch,
      cmd: optString(run, "cmd", "run.cmd", file, block) ?? null,
      workdir: optString(run, "workdir", "run.workdir", file, block) ?? null,
    }),
    config: Object.freeze({
      dir,
      default: optString(config, "default", "config.default", file, block) ?? "default",
      format: format as ConfigFormat,
    }),
    resources: Object.freeze({ nodes: nodes as number, gpus_per_node: gpus as number | "gpu" }),
    env: Object.freeze(env),
    script_path: abs,
    config_dir: path.resolve(path.dirname(abs), dir),
  };
  return { runspec: Object.freeze(runspec), warnings };
}

function unknownKey(file: string, block: ScriptBlock, key: string): RunspecWarning {
  const rel = locateKey(block.lines, "tool.runspec", key);
  return {
    file,
    line: rel === undefined ? undefined : block.firstLine + rel - 1,
    message: `unknown key 'tool.runspec.${key}' (ignored; newer schema or a typo?)`,
  };
}

/** Read and parse a script from disk. A missing file is a `UsageError` naming the absolute path. */
export function parseRunspecFile(scriptPath: string): ParsedRunspec {
  let text: string;
  try {
    text = Deno.readTextFileSync(scriptPath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UsageError(`Script not found: ${path.resolve(scriptPath)}`, {
        hint: "check the path (relative paths are taken from the current directory)",
      });
    }
    throw err;
  }
  return parseRunspecText(text, scriptPath);
}

/** The runspec as JSON-ready data with the TOML key names. */
export function runspecToJson(r: Runspec): Record<string, unknown> {
  return {
    schema: r.schema,
    docs: r.docs,
    name: r.name,
    image: r.image,
    setup: r.setup,
    run: { ...r.run },
    config: { ...r.config },
    resources: { ...r.resources },
    env: { ...r.env },
    script_path: r.script_path,
    config_dir: r.config_dir,
  };
}
