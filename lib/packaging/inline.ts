/**
 * Self-contained packager: one `main.py` holding the recipe script and the local modules it
 * imports, so a job needs no copy of the repository.
 *
 * Local modules are those of the package prefixes (default `nemotron`, `nemo_runspec`; an import
 * of one that cannot be found is an error), and any module found next to the script or under
 * `<repo>/src/`. They are found with a real Python parser (@lezer/python), wherever the import is
 * (module level, functions, classes, conditionals), and inlined depth-first, dependencies first,
 * each once; modules imported only inside functions come after the rest (Python imports them
 * when the function runs), so cycles through function bodies work. `from pkg import sub` inlines
 * `pkg/__init__.py` before `sub`, as Python runs it; `import a.b.c` inlines only `a.b.c` (parent
 * packages' `__init__` files are not run, like the reference, so they cannot drag in heavy
 * dependencies). Each module's source text is kept as written, comments included (except
 * comments inside a rewritten import statement); only these spans change:
 *   - a local import becomes bindings on the same line: `from m import a as b` →
 *     `b = _nemotron_modules["m"].a`, `import p.x as y` → `y = _nemotron_modules["p.x"]`,
 *     `import p.x` → `p = _nemotron_modules["p"]` (with `.x` set);
 *   - `from __future__ import …` lines move to the top of the file (their union);
 *   - an inlined module's `if __name__ == "__main__":` block is dropped (only its condition
 *     becomes `False` when it has `elif`/`else` branches);
 *   - after each module, `_nemotron_register(...)` exposes its top-level names as a namespace.
 * `from m import *` of a local module is refused (its names cannot be known statically), as are
 * relative imports in the entry script. `importlib.import_module("m")` is not followed.
 * All inlined code shares one global namespace and `__name__ == "__main__"` everywhere;
 * top-level functions or classes defined by two modules are reported as warnings.
 */

import type { SyntaxNode } from "@lezer/common";
import { dirname, isWithin, join, relative, resolve } from "../path.ts";
import { UsageError } from "../errors.ts";
import type { ExtraFile, ScriptSource } from "./code.ts";
import { CONFIG_NAME, deniedReason } from "./code.ts";
import { compareNames, type TarEntry, writeTarGz } from "./tar.ts";

/** Name of the single file the self-contained package runs. */
export const SELF_CONTAINED_NAME = "main.py";

/** Inputs of {@link inlineImports}. */
export interface InlineOptions {
  /** The entry script's text. */
  readonly source: string;
  /** The entry script's path or name, used in messages and the file's comments. */
  readonly path: string;
  /** The script's directory on disk, searched first for local modules (like `sys.path[0]`). */
  readonly scriptDir?: string;
  /** Repository root: modules are also resolved under `<repoRoot>/src`. */
  readonly repoRoot?: string;
  /** Packages whose imports must be inlined (default `nemotron`, `nemo_runspec`). */
  readonly packagePrefixes?: readonly string[];
}

/** The single file and what went into it. */
export interface InlineResult {
  readonly text: string;
  /** Inlined modules in the order they appear in the file. */
  readonly modules: readonly string[];
  readonly warnings: readonly string[];
}

export const DEFAULT_PACKAGE_PREFIXES: readonly string[] = ["nemotron", "nemo_runspec"];

interface Edit {
  readonly from: number;
  readonly to: number;
  readonly text: string;
}

interface Resolved {
  readonly name: string;
  readonly file: string;
  readonly isPackage: boolean;
}

/** One parsed file: its edits, local dependencies, future features and exported names. */
interface ParsedModule {
  readonly name: string; // dotted name; "" for the entry script
  readonly file: string;
  readonly text: string;
  readonly edits: Edit[];
  /** Local modules imported when this one runs (module level, class bodies), in order. */
  readonly deps: string[];
  /** Local modules imported only inside functions: needed, but not before this module. */
  readonly lazyDeps: string[];
  readonly futures: string[];
  readonly exports: string[];
  /** Top-level functions and classes (for collision warnings). */
  readonly definitions: string[];
  /** Entry only: the module docstring's span. */
  docstring?: { from: number; to: number };
  /** Entry only: where the first statement starts (comments before it stay at the top). */
  bodyStart: number;
}

type Parser = { parse(text: string): { topNode: SyntaxNode } };

function isFile(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

function isDir(p: string): boolean {
  try {
    return Deno.statSync(p).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Refuse `file` (exit 2) unless its real path (symlinks followed) stays inside the real path of
 * one of `roots`: a symlink such as `assets/x → ~/.ssh/id_rsa` must never ship what it points to.
 */
function checkInside(file: string, roots: readonly string[], what: string): void {
  const real = Deno.realPathSync(file);
  for (const r of roots) {
    let rootReal: string;
    try {
      rootReal = Deno.realPathSync(r);
    } catch {
      continue;
    }
    if (isWithin(rootReal, real)) return;
  }
  throw new UsageError(
    `${what} ${file} resolves to ${real}, outside the repository (${roots.join(" or ")})`,
    {
      hint: "a symlink must not lead out of the repository: copy the file into the repository, " +
        "or refer to it by a path that is mounted in the job",
    },
  );
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1, start = 0;
  for (let i = text.indexOf("\n"); i >= 0 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: offset - start + 1 };
}

function children(node: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let c = node.firstChild; c; c = c.nextSibling) out.push(c);
  return out;
}

/** Top-level statements of a block, with `a; b` statement groups flattened. */
function statements(node: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (const c of children(node)) {
    if (c.name === "StatementGroup") out.push(...statements(c));
    else out.push(c);
  }
  return out;
}

/** A parsed `import` / `from … import` statement. */
interface ImportSpec {
  readonly kind: "import" | "from";
  /** `from` only: leading dots and module (empty for `from . import x`). */
  readonly level: number;
  readonly module: string;
  /** `import`: dotted modules; `from`: imported names. Empty list + star for `*`. */
  readonly items: readonly { readonly name: string; readonly alias?: string }[];
  readonly star: boolean;
}

function parseImport(node: SyntaxNode, text: string): ImportSpec {
  const toks = children(node);
  const word = (n: SyntaxNode) => text.slice(n.from, n.to);
  let i = 0;
  const kind = toks[0].name === "from" ? "from" : "import";
  let level = 0;
  let module = "";
  i = 1;
  if (kind === "from") {
    const parts: string[] = [];
    for (; i < toks.length && toks[i].name !== "import"; i++) {
      const t = toks[i];
      if (t.name === "Ellipsis") level += 3;
      else if (t.name === "." && parts.length === 0) level += 1;
      else if (t.name === "VariableName") parts.push(word(t));
    }
    module = parts.join(".");
    i++; // past "import"
  }
  const items: { name: string; alias?: string }[] = [];
  let star = false;
  let current: string[] = [];
  let alias: string | undefined;
  let afterAs = false;
  const flush = () => {
    if (current.length) items.push({ name: current.join("."), alias });
    current = [];
    alias = undefined;
    afterAs = false;
  };
  for (; i < toks.length; i++) {
    const t = toks[i];
    if (t.name === "*") star = true;
    else if (t.name === "as") afterAs = true;
    else if (t.name === "VariableName") {
      if (afterAs) alias = word(t);
      else current.push(word(t));
    } else if (t.name === ",") flush();
  }
  flush();
  return { kind, level, module, items, star };
}

/** Names bound by an assignment target (names, tuples and lists of them). */
function targetNames(node: SyntaxNode, text: string, out: string[]): void {
  if (node.name === "VariableName") out.push(text.slice(node.from, node.to));
  else if (
    node.name === "TupleExpression" || node.name === "ArrayExpression" ||
    node.name === "ParenthesizedExpression"
  ) {
    for (const c of children(node)) targetNames(c, text, out);
  }
}

function isMainGuard(node: SyntaxNode, text: string): boolean {
  if (node.name !== "IfStatement") return false;
  const cond = children(node)[1];
  if (!cond || cond.name !== "BinaryExpression") return false;
  const parts = children(cond).map((c) => text.slice(c.from, c.to).trim());
  if (parts.length !== 3 || parts[1] !== "==") return false;
  const isMain = (s: string) => s === '"__main__"' || s === "'__main__'";
  return (parts[0] === "__name__" && isMain(parts[2])) ||
    (isMain(parts[0]) && parts[2] === "__name__");
}

/** Remove a statement: its whole lines when it stands alone on them, else replace it by `pass`. */
function removal(text: string, from: number, to: number): Edit {
  const lineStart = text.lastIndexOf("\n", from - 1) + 1;
  const before = text.slice(lineStart, from);
  let end = to;
  if (text[end - 1] !== "\n") {
    const nl = text.indexOf("\n", end);
    const rest = text.slice(end, nl < 0 ? text.length : nl);
    if (/^\s*(#.*)?$/.test(rest)) end = nl < 0 ? text.length : nl + 1;
    else end = -1;
  }
  if (/^\s*$/.test(before) && end >= 0) return { from: lineStart, to: end, text: "" };
  return { from, to, text: "pass" };
}

/**
 * Resolves module names to files: the script's directory first (like `sys.path[0]`), then
 * `<repo>/src`. A top-level package is taken from the first directory that has it.
 */
class ModuleFinder {
  constructor(
    private readonly dirs: readonly string[],
    private readonly prefixes: readonly string[],
  ) {}

  /** True if the module belongs to a package prefix (so it must be found). */
  required(name: string): boolean {
    return this.prefixes.some((p) => name === p || name.startsWith(p + "."));
  }

  /** The file of `name`, searching the base dirs; namespace dirs count only for prefixes. */
  find(name: string): Resolved | undefined {
    const parts = name.split(".");
    for (const base of this.dirs) {
      const top = join(base, parts[0]);
      const regular = isFile(top + ".py") || isFile(join(top, "__init__.py"));
      if (!regular && !(this.required(name) && isDir(top))) continue;
      const p = join(base, ...parts);
      if (isFile(p + ".py")) return { name, file: p + ".py", isPackage: false };
      if (isFile(join(p, "__init__.py"))) {
        return { name, file: join(p, "__init__.py"), isPackage: true };
      }
      return undefined; // the top-level package is here; Python would not look further
    }
    return undefined;
  }

  /** True if imports of `name` are inlined: a prefix, or its top-level package is found here. */
  isLocal(name: string): boolean {
    return this.required(name) || this.find(name.split(".")[0]) !== undefined;
  }

  describe(): string {
    return this.dirs.join(" or ");
  }
}

const MODULES = "_nemotron_modules";
const REGISTER = "_nemotron_register";

/** Python source for the inlined-module namespace table. */
const PRELUDE = `import types as _nemotron_types

${MODULES} = {}


def ${REGISTER}(name, scope, exported):
    """Expose an inlined module's top-level names as a namespace, like an imported module."""
    module = ${MODULES}.setdefault(name, _nemotron_types.SimpleNamespace())
    for key in exported:
        if key in scope:
            setattr(module, key, scope[key])
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(${REGISTER}(parent, scope, ()), child, module)
    return module
`;

function pyString(s: string): string {
  return JSON.stringify(s);
}

/** Parse one file, collecting edits, local dependencies, futures and exports. */
function analyse(
  parser: Parser,
  mod: { name: string; file: string; text: string; isPackage: boolean },
  finder: ModuleFinder,
  displayPath: string,
): ParsedModule {
  const { text } = mod;
  const isEntry = mod.name === "";
  const top = parser.parse(text).topNode;
  const fail = (node: SyntaxNode | number, message: string, hint?: string): never => {
    const at = typeof node === "number" ? node : node.from;
    throw new UsageError(message, { location: { file: displayPath, ...lineCol(text, at) }, hint });
  };

  // Syntax errors: lezer recovers, so look for error nodes and refuse the file.
  top.cursor().iterate((n) => {
    if (n.type.isError) {
      fail(
        n.from,
        "cannot parse this Python file",
        `check it with: python3 -m py_compile ${displayPath}`,
      );
    }
  });

  const m: ParsedModule = {
    name: mod.name,
    file: mod.file,
    text,
    edits: [],
    deps: [],
    lazyDeps: [],
    futures: [],
    exports: [],
    definitions: [],
    bodyStart: 0,
  };
  let inFunction = false; // set while walking a function body
  const addDep = (d: string) => {
    const list = inFunction ? m.lazyDeps : m.deps;
    if (!list.includes(d)) list.push(d);
  };

  const packageOf = (): string | undefined => {
    if (isEntry) return undefined;
    return mod.isPackage ? mod.name : mod.name.split(".").slice(0, -1).join(".");
  };

  /** The absolute module of a `from` import, or undefined for external ones. */
  const absoluteFrom = (spec: ImportSpec, node: SyntaxNode): string => {
    if (spec.level === 0) return spec.module;
    const pkg = packageOf();
    if (pkg === undefined) {
      fail(
        node,
        "relative import in the entry script",
        "use an absolute import (the script runs as __main__)",
      );
    }
    const parts = pkg!.split(".").filter(Boolean);
    if (spec.level - 1 > parts.length) fail(node, "relative import beyond the top-level package");
    const base = parts.slice(0, parts.length - (spec.level - 1));
    return [...base, ...(spec.module ? [spec.module] : [])].join(".");
  };

  const mustFind = (name: string, node: SyntaxNode): Resolved => {
    const r = finder.find(name);
    if (!r) {
      fail(
        node,
        `could not resolve module '${name}' under ${finder.describe()}`,
        "check the module name, or set repo_root so <repo>/src holds it",
      );
    }
    return r!;
  };

  /** Bindings replacing a local import, or undefined if the import is external. */
  const rewriteImport = (node: SyntaxNode): string | undefined => {
    const spec = parseImport(node, text);
    if (spec.kind === "from") {
      if (spec.module === "__future__" && spec.level === 0) return undefined; // handled at top level
      const absolute = absoluteFrom(spec, node);
      if (spec.level === 0 && !finder.isLocal(absolute)) return undefined;
      if (spec.star) {
        fail(
          node,
          `star import of a local module is not supported: from ${absolute} import *`,
          `import the names you use: from ${absolute} import a, b`,
        );
      }
      const parent = finder.find(absolute);
      const binds: string[] = [];
      for (const item of spec.items) {
        const sub = finder.find(`${absolute}.${item.name}`);
        const target = item.alias ?? item.name;
        if (sub && (!parent || parent.isPackage)) {
          if (parent) addDep(parent.name); // Python runs the package's __init__ first
          addDep(sub.name);
          binds.push(`${target} = ${MODULES}[${pyString(sub.name)}]`);
        } else {
          if (!parent) mustFind(absolute, node);
          addDep(absolute);
          binds.push(`${target} = ${MODULES}[${pyString(absolute)}].${item.name}`);
        }
      }
      return binds.join("; ");
    }
    // import a.b.c [as x], …: rewrite only if every item is local; mixed lines are split.
    const binds: string[] = [];
    const external: string[] = [];
    for (const item of spec.items) {
      if (!finder.isLocal(item.name)) {
        external.push(item.alias ? `${item.name} as ${item.alias}` : item.name);
        continue;
      }
      mustFind(item.name, node);
      addDep(item.name);
      if (item.alias) binds.push(`${item.alias} = ${MODULES}[${pyString(item.name)}]`);
      else {
        const top = item.name.split(".")[0];
        binds.push(`${top} = ${MODULES}[${pyString(top)}]`);
      }
    }
    if (binds.length === 0) return undefined;
    if (external.length) binds.unshift(`import ${external.join(", ")}`);
    return binds.join("; ");
  };

  /** Names an import statement binds (kept or rewritten), for exports. */
  const importNames = (node: SyntaxNode): string[] => {
    const spec = parseImport(node, text);
    if (spec.kind === "from") {
      if (spec.module === "__future__") return [];
      return spec.items.map((i) => i.alias ?? i.name);
    }
    return spec.items.map((i) => i.alias ?? i.name.split(".")[0]);
  };

  // Walk every node; rewrite local imports at any depth.
  const walk = (node: SyntaxNode, topLevel: boolean) => {
    for (const c of children(node)) {
      if (c.name === "ImportStatement") {
        const rewritten = rewriteImport(c);
        if (rewritten !== undefined) m.edits.push({ from: c.from, to: c.to, text: rewritten });
        continue;
      }
      if (topLevel && !isEntry && isMainGuard(c, text)) continue; // handled below
      const outer = inFunction;
      if (c.name === "FunctionDefinition" || c.name === "LambdaExpression") inFunction = true;
      walk(c, false);
      inFunction = outer;
    }
  };

  // Top level: futures, main guards, docstring, exports.
  const stmts = statements(top);
  const firstCode = stmts.find((s) => s.name !== "Comment");
  m.bodyStart = firstCode ? firstCode.from : text.length;
  if (
    isEntry && firstCode?.name === "ExpressionStatement" && children(firstCode).length === 1 &&
    children(firstCode)[0].name === "String"
  ) {
    m.docstring = { from: firstCode.from, to: firstCode.to };
  }
  const collectExports = (block: SyntaxNode[]) => {
    for (const s of block) {
      let def = s;
      if (s.name === "DecoratedStatement") {
        def = children(s).find((c) =>
          c.name === "FunctionDefinition" || c.name === "ClassDefinition"
        ) ?? s;
      }
      if (def.name === "FunctionDefinition" || def.name === "ClassDefinition") {
        const n = children(def).find((c) => c.name === "VariableName");
        if (n) {
          const name = text.slice(n.from, n.to);
          m.exports.push(name);
          m.definitions.push(name);
        }
      } else if (s.name === "AssignStatement" || s.name === "UpdateStatement") {
        const kids = children(s);
        const lastOp = kids.map((k) => k.name).lastIndexOf(
          s.name === "AssignStatement" ? "AssignOp" : "UpdateOp",
        );
        const targets = lastOp < 0 ? kids.slice(0, 1) : kids.slice(0, lastOp);
        for (const t of targets) targetNames(t, text, m.exports);
      } else if (s.name === "TypeDefinition") {
        const n = children(s).find((c) => c.name === "VariableName");
        if (n) m.exports.push(text.slice(n.from, n.to));
      } else if (s.name === "ImportStatement") {
        m.exports.push(...importNames(s));
      } else if (
        ["IfStatement", "TryStatement", "WithStatement", "ForStatement", "WhileStatement"].includes(
          s.name,
        )
      ) {
        const bodies = children(s).filter((c) => c.name === "Body");
        // A dropped main guard's body never runs; its elif/else branches do.
        for (const b of !isEntry && isMainGuard(s, text) ? bodies.slice(1) : bodies) {
          collectExports(statements(b));
        }
      }
    }
  };
  collectExports(stmts);

  for (const s of stmts) {
    if (s.name === "ImportStatement") {
      const spec = parseImport(s, text);
      if (spec.kind === "from" && spec.level === 0 && spec.module === "__future__") {
        for (const item of spec.items) {
          if (!m.futures.includes(item.name)) m.futures.push(item.name);
        }
        m.edits.push(removal(text, s.from, s.to));
      }
    } else if (!isEntry && isMainGuard(s, text)) {
      const hasElse = children(s).some((c) => c.name === "else" || c.name === "elif");
      if (hasElse) {
        const cond = children(s)[1];
        m.edits.push({ from: cond.from, to: cond.to, text: "False" });
        // Walk the other branches for imports; the guarded body is dead code.
        for (const b of children(s).filter((c) => c.name === "Body").slice(1)) walk(b, false);
      } else {
        m.edits.push(removal(text, s.from, s.to));
      }
    }
  }
  walk(top, true);

  m.exports.splice(
    0,
    m.exports.length,
    ...new Set(m.exports.filter((n) => !(n.startsWith("__") && n.endsWith("__")))),
  );
  return m;
}

/** Apply non-overlapping edits to `text` between `from` and `to`. */
function applyEdits(text: string, edits: readonly Edit[], from = 0, to = text.length): string {
  const sorted = edits.filter((e) => e.from >= from && e.to <= to).sort((a, b) => a.from - b.from);
  let out = "";
  let pos = from;
  for (const e of sorted) {
    if (e.from < pos) continue; // nested inside an earlier edit
    out += text.slice(pos, e.from) + e.text;
    pos = e.to;
  }
  return out + text.slice(pos, to);
}

function withNewline(s: string): string {
  return s === "" || s.endsWith("\n") ? s : s + "\n";
}

/**
 * Build the single-file program: the entry script with its local imports inlined.
 * Bad input (syntax errors, unresolvable local modules, star imports) is a UsageError with the
 * file, line and column.
 */
export async function inlineImports(opts: InlineOptions): Promise<InlineResult> {
  const { parser } = await import("@lezer/python");
  const dirs: string[] = [];
  if (opts.scriptDir) dirs.push(resolve(opts.scriptDir));
  if (opts.repoRoot) dirs.push(join(resolve(opts.repoRoot), "src"));
  const finder = new ModuleFinder(
    dirs.filter(isDir),
    opts.packagePrefixes ?? DEFAULT_PACKAGE_PREFIXES,
  );
  const shown = (file: string) => {
    const base = opts.repoRoot ? resolve(opts.repoRoot) : opts.scriptDir;
    return base && isWithin(base, file) ? relative(base, file) : file;
  };

  const entry = analyse(
    parser,
    { name: "", file: opts.path, text: opts.source, isPackage: false },
    finder,
    opts.path,
  );
  const order: ParsedModule[] = [];
  const state = new Map<string, "active" | "done">();
  // Depth-first, dependencies first; modules imported only inside functions come afterwards
  // (as Python imports them lazily), so import cycles through function bodies work.
  const later: string[] = [];
  const visit = (name: string) => {
    if (state.has(name)) return; // done, or a cycle: Python would see a partly run module too
    state.set(name, "active");
    const r = finder.find(name)!;
    checkInside(r.file, dirs, `module ${name}:`);
    const m = analyse(
      parser,
      { name, file: r.file, text: Deno.readTextFileSync(r.file), isPackage: r.isPackage },
      finder,
      shown(r.file),
    );
    for (const d of m.deps) visit(d);
    later.push(...m.lazyDeps);
    order.push(m);
    state.set(name, "done");
  };
  for (const d of entry.deps) visit(d);
  later.push(...entry.lazyDeps);
  while (later.length) visit(later.shift()!);

  const warnings: string[] = [];
  const definedBy = new Map<string, string>();
  for (const m of [...order, entry]) {
    const who = m.name || `the script ${opts.path}`;
    for (const d of new Set(m.definitions)) {
      const prev = definedBy.get(d);
      if (prev && prev !== who) {
        warnings.push(
          `'${d}' is defined by both ${prev} and ${who}; in the single file the later one wins`,
        );
      }
      definedBy.set(d, who);
    }
  }

  const futures: string[] = [];
  for (const m of [entry, ...order]) {
    for (const f of m.futures) if (!futures.includes(f)) futures.push(f);
  }

  let out = withNewline(entry.text.slice(0, entry.bodyStart));
  if (entry.docstring) {
    out += withNewline(entry.text.slice(entry.docstring.from, entry.docstring.to));
  }
  if (futures.length) out += `from __future__ import ${futures.join(", ")}\n`;
  if (order.length) {
    out += "\n# --- nemotron: namespaces of the inlined modules ---\n" + PRELUDE;
    for (const m of order) {
      out += `\n# --- begin inlined: ${m.name} (${shown(m.file)}) ---\n`;
      out += withNewline(applyEdits(m.text, m.edits));
      const names = m.exports.map(pyString).join(", ") + (m.exports.length === 1 ? "," : "");
      out += `${REGISTER}(${pyString(m.name)}, globals(), (${names}))\n`;
      out += `# --- end inlined: ${m.name} ---\n`;
    }
    out += `\n# --- entry script: ${opts.path} ---\n`;
  }
  const entryEdits = entry.docstring
    ? [...entry.edits, removal(entry.text, entry.docstring.from, entry.docstring.to)]
    : entry.edits;
  out += applyEdits(entry.text, entryEdits, entry.bodyStart);
  return { text: withNewline(out), modules: order.map((m) => m.name), warnings };
}

/** Inputs of {@link packageSelfContained}. */
export interface SelfContainedOptions {
  readonly script: ScriptSource;
  /** Train config text (YAML), shipped as `config.yaml`. */
  readonly trainConfig: string;
  readonly jobDir: string;
  /** Base name of the archive (default `code`). */
  readonly name?: string;
  /** Repository root: `<repoRoot>/src` holds the packages; `/nemo_run/code/<rest>` config paths map here. */
  readonly repoRoot?: string;
  readonly packagePrefixes?: readonly string[];
  /** Directory searched first for local modules (default: the script's directory, if on disk). */
  readonly scriptDir?: string;
  /** More files to ship next to main.py. */
  readonly extraFiles?: readonly ExtraFile[];
}

/** What {@link packageSelfContained} wrote. */
export interface SelfContainedPackage {
  readonly tarball: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly entries: number;
  readonly modules: readonly string[];
  /** Repository files shipped because the config names them under `/nemo_run/code/`. */
  readonly configFiles: readonly string[];
  readonly warnings: readonly string[];
}

/** Every string value in a parsed YAML document. */
function strings(value: unknown, out: string[]): void {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) { for (const v of value) strings(v, out); }
  else if (value && typeof value === "object") {
    for (const v of Object.values(value)) strings(v, out);
  }
}

/**
 * Write `<jobDir>/<name>.tar.gz` holding `main.py` (the inlined script), `config.yaml`, and every
 * repository file the config refers to as `/nemo_run/code/<path>` (refused, exit 2, when its real
 * path leaves the repository or it is on the code packager's deny list). The job runs
 * `python main.py --config config.yaml` in the extracted directory. Always rebuilt.
 */
export async function packageSelfContained(
  opts: SelfContainedOptions,
): Promise<SelfContainedPackage> {
  const onDisk = "path" in opts.script;
  const path = onDisk
    ? resolve((opts.script as { path: string }).path)
    : (opts.script as { arcname: string }).arcname;
  const source = onDisk ? Deno.readTextFileSync(path) : (opts.script as { text: string }).text;
  const scriptDir = opts.scriptDir ?? (onDisk ? dirname(path) : undefined);
  const inlined = await inlineImports({
    source,
    path,
    scriptDir,
    repoRoot: opts.repoRoot,
    packagePrefixes: opts.packagePrefixes,
  });

  const enc = new TextEncoder();
  const entries = new Map<string, TarEntry>();
  const configFiles: string[] = [];
  if (opts.repoRoot) {
    const { parse } = await import("yaml");
    let doc: unknown;
    try {
      doc = parse(opts.trainConfig);
    } catch (err) {
      throw new UsageError(`train config is not valid YAML: ${(err as Error).message}`);
    }
    const found: string[] = [];
    strings(doc, found);
    for (const s of found) {
      if (!s.startsWith("/nemo_run/code/")) continue;
      const rest = s.slice("/nemo_run/code/".length);
      const file = join(resolve(opts.repoRoot), rest);
      if (rest.split("/").includes("..") || !isFile(file) || entries.has(rest)) continue;
      checkInside(file, [opts.repoRoot], `the config names /nemo_run/code/${rest}, but`);
      const denied = deniedReason(rest);
      if (denied !== undefined) {
        throw new UsageError(
          `the config names /nemo_run/code/${rest}, which is never shipped (${denied})`,
          { hint: "keep secrets out of the job's code: pass them as env_vars in env.toml" },
        );
      }
      const st = Deno.statSync(file);
      entries.set(rest, {
        kind: "file",
        name: rest,
        path: file,
        size: st.size,
        executable: false,
        ownerOnly: st.mode !== null && (st.mode & 0o004) === 0,
      });
      configFiles.push(rest);
    }
  }
  for (const x of opts.extraFiles ?? []) {
    entries.set(x.arcname, {
      kind: "bytes",
      name: x.arcname,
      data: enc.encode(x.text),
      executable: false,
    });
  }
  entries.set(SELF_CONTAINED_NAME, {
    kind: "bytes",
    name: SELF_CONTAINED_NAME,
    data: enc.encode(inlined.text),
    executable: false,
  });
  entries.set(CONFIG_NAME, {
    kind: "bytes",
    name: CONFIG_NAME,
    data: enc.encode(opts.trainConfig),
    executable: false,
    ownerOnly: true, // may carry secret-looking values the script needs
  });

  const jobDir = resolve(opts.jobDir);
  await Deno.mkdir(jobDir, { recursive: true });
  const sorted = [...entries.values()].sort((a, b) => compareNames(a.name, b.name));
  const res = await writeTarGz(join(jobDir, `${opts.name ?? "code"}.tar.gz`), sorted);
  return {
    tarball: res.path,
    sha256: res.sha256,
    bytes: res.bytes,
    entries: res.entries,
    modules: inlined.modules,
    configFiles,
    warnings: inlined.warnings,
  };
}
