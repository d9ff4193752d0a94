/**
 * `nemotron completion bash|zsh|fish`: print a shell completion script for the whole command tree.
 * The script is generated from the live command tree, so it never drifts from the commands.
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";

const GLOBAL_FLAGS = [
  "-c",
  "--config",
  "-r",
  "--run",
  "-b",
  "--batch",
  "-d",
  "--dry-run",
  "--stage",
  "--force-squash",
  "-h",
  "--help",
];

/** Every command path (space-joined) with its subcommand names and option flags. */
function walk(
  cmd: Command,
  prefix: string[],
  out: Map<string, { subs: string[]; flags: string[] }>,
) {
  const subs = cmd.commands.map((c) => c.name());
  const flags = cmd.options.flatMap((o) => [o.short, o.long].filter((x): x is string => !!x));
  out.set(prefix.join(" "), { subs, flags: [...new Set([...flags, "--help"])] });
  for (const c of cmd.commands) walk(c, [...prefix, c.name()], out);
}

function bashScript(tree: Map<string, { subs: string[]; flags: string[] }>): string {
  const cases = [...tree.entries()].map(([path, { subs, flags }]) =>
    `    ${JSON.stringify(path)}) words=${JSON.stringify([...subs, ...flags].join(" "))} ;;`
  ).join("\n");
  return `# bash completion for nemotron; load with: source <(nemotron completion bash)
_nemotron() {
  local cur path="" w i words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    if [ -z "$path" ]; then path="$w"; else path="$path $w"; fi
  done
  case "$path" in
${cases}
    *) words="" ;;
  esac
  words="$words ${GLOBAL_FLAGS.join(" ")}"
  mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}
complete -o default -F _nemotron nemotron
`;
}

function zshScript(tree: Map<string, { subs: string[]; flags: string[] }>): string {
  return `#compdef nemotron
# zsh completion for nemotron; load with: source <(nemotron completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashScript(tree)}`;
}

function fishScript(tree: Map<string, { subs: string[]; flags: string[] }>): string {
  const lines = [
    "# fish completion for nemotron; load with: nemotron completion fish | source",
    "complete -c nemotron -f",
  ];
  for (const [path, { subs }] of tree) {
    const words = path === "" ? [] : path.split(" ");
    const cond = words.length === 0
      ? "__fish_use_subcommand"
      : `__fish_seen_subcommand_from ${words[words.length - 1]}`;
    for (const s of subs) lines.push(`complete -c nemotron -n '${cond}' -a '${s}'`);
  }
  for (const f of GLOBAL_FLAGS.filter((f) => f.startsWith("--"))) {
    lines.push(`complete -c nemotron -l '${f.slice(2)}'`);
  }
  return lines.join("\n") + "\n";
}

export function completionCommand(_cli: CliContext, root: () => Command): Command {
  return new Command("completion")
    .description("print a shell completion script (bash, zsh or fish)")
    .argument("<shell>", "bash | zsh | fish")
    .action(async (shell: string) => {
      const tree = new Map<string, { subs: string[]; flags: string[] }>();
      const program = root();
      await program.loadAll();
      walk(program, [], tree);
      if (shell === "bash") console.log(bashScript(tree).trimEnd());
      else if (shell === "zsh") console.log(zshScript(tree).trimEnd());
      else if (shell === "fish") console.log(fishScript(tree).trimEnd());
      else {
        throw new UsageError(`unknown shell '${shell}'`, { hint: "use one of: bash, zsh, fish" });
      }
    });
}
