/**
 * A small command-tree parser with the subset of commander's API nemotron uses.
 *
 * Why not commander itself: it pulls in node:events, node:child_process, node:fs and node:process,
 * which cost ~30 ms at every start (measured; see README design notes), and start-up is a hot path.
 * This module uses no node: built-ins. Usage errors are `UsageError`s (exit 2) with a hint.
 *
 * Supported: nested commands (`command()`/`addCommand()`), aliases, positional arguments
 * (`<req>`, `[opt]`, `<many...>`), options (`-s, --long`, `--long <value>`, `--long [value]`,
 * `--items <v...>`, `--no-flag`, `--long=value`, custom parsers, defaults), `--` (rest are
 * arguments), `-h/--help` on every node, `--version` on the root, `help [command]`, "did you mean"
 * suggestions, and raw leaves (`allowUnknownOption().allowExcessArguments().helpOption(false)`)
 * whose action receives every token untouched.
 */
import { closestMatch, UsageError } from "../errors.ts";
import { helpColor, helpRows, helpWidth, styleHelp, wrapWords } from "./layout.ts";

// deno-lint-ignore no-explicit-any
type ActionFn = (...args: any[]) => void | Promise<void>;
// deno-lint-ignore no-explicit-any
type ParseFn = (value: string, previous: any) => unknown;

/** One declared option. */
export class Option {
  readonly flags: string;
  readonly description: string;
  short?: string;
  long?: string;
  /** `<value>` after the flag. */
  required = false;
  /** `[value]` after the flag. */
  optional = false;
  variadic = false;
  negate = false;
  mandatory = false;
  defaultValue?: unknown;
  parseArg?: ParseFn;

  constructor(flags: string, description = "") {
    this.flags = flags;
    this.description = description;
    for (const part of flags.split(/[ ,|]+/).filter(Boolean)) {
      if (part.startsWith("<")) {
        this.required = true;
        this.variadic = part.endsWith("...>");
      } else if (part.startsWith("[")) {
        this.optional = true;
        this.variadic = part.endsWith("...]");
      } else if (part.startsWith("--")) this.long = part;
      else if (part.startsWith("-")) this.short = part;
    }
    if (this.long?.startsWith("--no-")) this.negate = true;
  }

  /** The key in `opts()`: `--dry-run` → `dryRun`, `--no-color` → `color`. */
  attributeName(): string {
    const base = (this.long ?? this.short ?? "").replace(/^--?/, "").replace(/^no-/, "");
    return base.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  }

  takesValue(): boolean {
    return this.required || this.optional;
  }
}

interface Argument {
  readonly name: string;
  readonly description: string;
  readonly required: boolean;
  readonly variadic: boolean;
  readonly defaultValue?: unknown;
}

function parseArgumentSpec(spec: string, description = "", defaultValue?: unknown): Argument {
  const variadic = spec.includes("...");
  const name = spec.replace(/[<>[\]]|\.\.\./g, "");
  return { name, description, required: spec.startsWith("<"), variadic, defaultValue };
}

/** A command node: a group with subcommands, a leaf with an action, or both. */
export class Command {
  commands: Command[] = [];
  options: Option[] = [];
  parent?: Command;
  /** Positional values of the last parse. */
  args: string[] = [];
  private _name: string;
  private _description = "";
  private _aliases: string[] = [];
  private _arguments: Argument[] = [];
  private _action?: ActionFn;
  private _allowUnknown = false;
  private _allowExcess = false;
  private _help: { short?: string; long?: string; description: string } | false = {
    short: "-h",
    long: "--help",
    description: "show help",
  };
  private _version?: { value: string; option: Option };
  private _after: string[] = [];
  private _examples: (readonly [string, string])[] = [];
  private _usage?: string;
  private _hidden = false;
  private _values: Record<string, unknown> = {};
  private _loader?: () => Promise<Command>;

  constructor(name = "") {
    this._name = name;
  }

  /**
   * A command whose module is loaded only when it runs (or for completion): start-up then pays
   * only for the command that is used. `name` and `description` are shown in the parent's help;
   * a test checks they equal the loaded command's.
   */
  static lazy(name: string, description: string, load: () => Promise<Command>): Command {
    const c = new Command(name).description(description);
    c._loader = load;
    return c;
  }

  /** Replace a lazy placeholder by its loaded command (in its parent); returns the real command. */
  async resolve(): Promise<Command> {
    if (!this._loader) return this;
    const real = await this._loader();
    real.parent = this.parent;
    if (this.parent) {
      const i = this.parent.commands.indexOf(this);
      if (i >= 0) this.parent.commands[i] = real;
    }
    return real;
  }

  /** Load every lazy command of the tree (for completion scripts and tests). */
  async loadAll(): Promise<void> {
    for (const c of [...this.commands]) await (await c.resolve()).loadAll();
  }

  /** Get or set the name. */
  name(): string;
  name(value: string): this;
  name(value?: string): string | this {
    if (value === undefined) return this._name;
    this._name = value;
    return this;
  }

  /** Get or set the description (first line is the summary in parent listings). */
  description(): string;
  description(text: string): this;
  description(text?: string): string | this {
    if (text === undefined) return this._description;
    this._description = text;
    return this;
  }

  summary(text: string): this {
    if (!this._description) this._description = text;
    return this;
  }

  alias(a: string): this {
    this._aliases.push(a);
    return this;
  }

  aliases(): readonly string[] {
    return this._aliases;
  }

  usage(text: string): this {
    this._usage = text;
    return this;
  }

  /** Declare a positional argument: `<name>`, `[name]`, `<names...>`. */
  argument(spec: string, description = "", defaultValue?: unknown): this {
    this._arguments.push(parseArgumentSpec(spec, description, defaultValue));
    return this;
  }

  /** Declare an option. The third argument is a parser `(value, previous)` or a default value. */
  option(
    flags: string,
    description = "",
    parseOrDefault?: ParseFn | unknown,
    defaultValue?: unknown,
  ): this {
    const opt = new Option(flags, description);
    if (typeof parseOrDefault === "function") {
      opt.parseArg = parseOrDefault as ParseFn;
      opt.defaultValue = defaultValue;
    } else if (parseOrDefault !== undefined) opt.defaultValue = parseOrDefault;
    return this.addOption(opt);
  }

  /** An option that must be given. */
  requiredOption(
    flags: string,
    description = "",
    parseOrDefault?: ParseFn | unknown,
    defaultValue?: unknown,
  ): this {
    this.option(flags, description, parseOrDefault, defaultValue);
    this.options[this.options.length - 1].mandatory = true;
    return this;
  }

  addOption(opt: Option): this {
    this.options.push(opt);
    return this;
  }

  action(fn: ActionFn): this {
    this._action = fn;
    return this;
  }

  /** Create and add a subcommand: `command("show <profile>")` returns the new subcommand. */
  command(nameAndArgs: string, description?: string): Command {
    const [name, ...specs] = nameAndArgs.split(/ +/);
    const sub = new Command(name);
    for (const s of specs) sub.argument(s);
    if (description) sub.description(description);
    this.addCommand(sub);
    return sub;
  }

  addCommand(cmd: Command, opts: { hidden?: boolean } = {}): this {
    cmd.parent = this;
    if (opts.hidden) cmd._hidden = true;
    this.commands.push(cmd);
    return this;
  }

  /** True for commands left out of help and completion (e.g. `__complete`). */
  isHidden(): boolean {
    return this._hidden;
  }

  allowUnknownOption(allow = true): this {
    this._allowUnknown = allow;
    return this;
  }

  allowExcessArguments(allow = true): this {
    this._allowExcess = allow;
    return this;
  }

  /** Accepted for commander compatibility; tokens after the first argument are never re-parsed. */
  passThroughOptions(): this {
    return this;
  }

  enablePositionalOptions(): this {
    return this;
  }

  exitOverride(): this {
    return this;
  }

  showSuggestionAfterError(_b = true): this {
    return this;
  }

  /** Set the help flags (`"-h, --help"`) or disable help handling (`false`). */
  helpOption(flags: string | false, description = "show help"): this {
    if (flags === false) {
      this._help = false;
      return this;
    }
    const o = new Option(flags);
    this._help = { short: o.short, long: o.long, description };
    return this;
  }

  version(value: string, flags = "-V, --version", description = "print the version"): this {
    this._version = { value, option: new Option(flags, description) };
    return this;
  }

  /** Example command lines with what each does, shown as the Examples section of the help. */
  examples(rows: readonly (readonly [string, string])[]): this {
    this._examples.push(...rows);
    return this;
  }

  addHelpText(_position: "after" | "afterAll", text: string): this {
    this._after.push(text);
    return this;
  }

  /** Option values of the last parse, keyed by attribute name. */
  opts<T = Record<string, unknown>>(): T {
    return { ...this._values } as T;
  }

  /** `nemotron env show` */
  commandPath(): string {
    const names: string[] = [];
    // deno-lint-ignore no-this-alias
    for (let c: Command | undefined = this; c; c = c.parent) names.unshift(c._name);
    return names.filter(Boolean).join(" ");
  }

  private usageLine(): string {
    if (this._usage) return this._usage;
    const parts: string[] = [];
    if (this.options.length > 0 || this._help) parts.push("[OPTIONS]");
    if (this.commands.length > 0) parts.push("<COMMAND>");
    for (const a of this._arguments) {
      const n = a.variadic ? `${a.name}...` : a.name;
      parts.push(a.required ? `<${n}>` : `[${n}]`);
    }
    return parts.join(" ");
  }

  /** The help text of this node, laid out for `width` columns (words never broken). */
  helpInformation(width: number = helpWidth()): string {
    const usage = `Usage: ${this.commandPath()} ${this.usageLine()}`.trimEnd();
    const lines: string[] = [...wrapWords(usage, width).map((l, i) => i ? `       ${l}` : l), ""];
    if (this._description) lines.push(...wrapWords(this._description, width), "");
    const table = (title: string, rows: [string, string][]) => {
      if (rows.length === 0) return;
      lines.push(`${title}:`, ...helpRows(rows, width), "");
    };
    table(
      "Arguments",
      this._arguments.filter((a) => a.description).map((a) => [a.name, a.description]),
    );
    table(
      "Commands",
      this.commands.filter((c) => !c._hidden).map((c) => {
        const args = c._arguments.map((
          a,
        ) => (a.required
          ? `<${a.name}${a.variadic ? "..." : ""}>`
          : `[${a.name}${a.variadic ? "..." : ""}]`)
        );
        return [[c._name, ...args].join(" "), c._description.split("\n")[0]];
      }),
    );
    const optRows: [string, string][] = this.options.map((o) => {
      const empty = o.defaultValue === undefined || o.defaultValue === false ||
        (Array.isArray(o.defaultValue) && o.defaultValue.length === 0);
      const dflt = empty ? "" : ` (default: ${JSON.stringify(o.defaultValue)})`;
      return [o.flags, o.description + dflt];
    });
    if (this._version) {
      optRows.unshift([this._version.option.flags, this._version.option.description]);
    }
    if (this._help) {
      optRows.push([
        [this._help.short, this._help.long].filter(Boolean).join(", "),
        this._help.description,
      ]);
    }
    table("Options", optRows);
    if (this._examples.length > 0) {
      // An example line longer than the key column gets its description on the next line.
      lines.push("Examples:", ...helpRows(this._examples, width, 40), "");
    }
    let text = lines.join("\n").trimEnd() + "\n";
    for (const t of this._after) text += t.startsWith("\n") ? t : `\n${t}`;
    return text;
  }

  outputHelp(): void {
    console.log(styleHelp(this.helpInformation().trimEnd(), helpColor()));
  }

  private isHelp(tok: string): boolean {
    return this._help !== false && (tok === this._help.short || tok === this._help.long);
  }

  private findCommand(name: string): Command | undefined {
    return this.commands.find((c) => c._name === name || c._aliases.includes(name));
  }

  private findOption(flag: string): Option | undefined {
    return this.options.find((o) => o.short === flag || o.long === flag);
  }

  private fail(message: string): never {
    throw new UsageError(message, { hint: `see '${this.commandPath()} --help'` });
  }

  /** Parse `argv` (user tokens, without the executable) and run the selected action. */
  async parseAsync(argv: readonly string[], _opts?: { from: "user" }): Promise<this> {
    await this.dispatch([...argv]);
    return this;
  }

  private async dispatch(tokens: string[]): Promise<void> {
    if (this._loader) return await (await this.resolve()).dispatch(tokens);
    this._values = {};
    if (this.commands.length > 0) {
      // Group: own options may come first, then the subcommand name.
      if (tokens.length > 0 && tokens[0].startsWith("-") && tokens[0] !== "--") {
        const tok = tokens[0];
        if (this.isHelp(tok)) return this.outputHelp();
        if (
          this._version && (tok === this._version.option.short || tok === this._version.option.long)
        ) {
          console.log(this._version.value);
          return;
        }
        if (!this._action) this.fail(`unknown option '${tok}'`);
      }
      const name = tokens[0];
      if (name === undefined) {
        if (this._action) return await this.runLeaf(tokens);
        return this.outputHelp();
      }
      if (name === "help" && !this.findCommand("help")) {
        // deno-lint-ignore no-this-alias
        let target: Command = this;
        for (const n of tokens.slice(1)) {
          const c = target.findCommand(n);
          if (!c) target.fail(`unknown command '${n}'`);
          target = await c.resolve();
        }
        return target.outputHelp();
      }
      const sub = this.findCommand(name);
      if (sub) return await sub.dispatch(tokens.slice(1));
      if (!this._action) {
        const names = this.commands.filter((c) => !c._hidden).map((c) => c._name);
        const guess = closestMatch(name, names);
        throw new UsageError(
          `unknown command '${name}'${guess ? ` (Did you mean ${guess}?)` : ""}`,
          {
            hint: `commands of '${this.commandPath()}': ${names.join(", ")}`,
          },
        );
      }
    }
    await this.runLeaf(tokens);
  }

  private async runLeaf(tokens: string[]): Promise<void> {
    const values: Record<string, unknown> = {};
    for (const o of this.options) {
      if (o.defaultValue !== undefined) values[o.attributeName()] = o.defaultValue;
      else if (o.negate) values[o.attributeName()] = true;
    }
    const operands: string[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const tok = tokens[i];
      if (tok === "--") {
        if (this._allowUnknown && this._help === false) operands.push(tok);
        operands.push(...tokens.slice(i + 1));
        break;
      }
      if (this.isHelp(tok)) return this.outputHelp();
      if (!tok.startsWith("-") || tok === "-") {
        operands.push(tok);
        continue;
      }
      const eq = tok.startsWith("--") ? tok.indexOf("=") : -1;
      const flag = eq > 0 ? tok.slice(0, eq) : tok;
      let opt = this.findOption(flag);
      let inline: string | undefined = eq > 0 ? tok.slice(eq + 1) : undefined;
      if (!opt && !tok.startsWith("--") && tok.length > 2) {
        // -n5 → -n 5
        opt = this.findOption(tok.slice(0, 2));
        if (opt?.takesValue()) inline = tok.slice(2);
        else opt = undefined;
      }
      if (!opt) {
        if (this._allowUnknown) {
          operands.push(tok);
          continue;
        }
        const known = this.options.flatMap((o) => [o.long, o.short]).filter((x): x is string =>
          !!x
        );
        const guess = closestMatch(flag, known);
        this.fail(`unknown option '${flag}'${guess ? ` (Did you mean ${guess}?)` : ""}`);
      }
      const key = opt.attributeName();
      if (!opt.takesValue()) {
        if (inline !== undefined) this.fail(`option '${flag}' takes no value`);
        values[key] = !opt.negate;
        continue;
      }
      const take = (value: string) => {
        values[key] = opt!.parseArg
          ? opt!.parseArg(
            value,
            values[key] === opt!.defaultValue ? opt!.defaultValue : values[key],
          )
          : opt!.variadic
          ? [
            ...((Array.isArray(values[key]) && values[key] !== opt!.defaultValue)
              ? values[key] as string[]
              : []),
            value,
          ]
          : value;
      };
      if (inline !== undefined) {
        take(inline);
        continue;
      }
      const next = tokens[i + 1];
      if (opt.required) {
        if (next === undefined) this.fail(`option '${opt.flags}' argument missing`);
        take(next);
        i++;
        if (opt.variadic) {
          while (i + 1 < tokens.length && !tokens[i + 1].startsWith("-")) take(tokens[++i]);
        }
      } else if (next !== undefined && !next.startsWith("-")) {
        take(next);
        i++;
      } else values[key] = true;
    }
    for (const o of this.options) {
      if (o.mandatory && values[o.attributeName()] === undefined) {
        this.fail(`required option '${o.flags}' not specified`);
      }
    }
    const argValues: unknown[] = [];
    let k = 0;
    for (const a of this._arguments) {
      if (a.variadic) {
        const rest = operands.slice(k);
        k = operands.length;
        if (a.required && rest.length === 0) this.fail(`missing required argument '${a.name}'`);
        argValues.push(rest.length ? rest : (a.defaultValue ?? []));
      } else {
        const v = operands[k++];
        if (v === undefined && a.required) this.fail(`missing required argument '${a.name}'`);
        argValues.push(v ?? a.defaultValue);
      }
    }
    if (k < operands.length && !this._allowExcess) {
      this.fail(
        `too many arguments${
          this._arguments.length ? ` (expected ${this._arguments.length})` : ""
        }: '${operands.slice(k).join(" ")}'`,
      );
    }
    this._values = values;
    this.args = operands;
    if (!this._action) return this.outputHelp();
    await this._action(...argValues, { ...values }, this);
  }
}
