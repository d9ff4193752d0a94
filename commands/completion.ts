/**
 * `nemotron completion bash|zsh|fish`: print a shell completion script. Each script is a thin
 * adapter: it passes the words typed so far to the hidden `nemotron __complete` (commands/
 * complete.ts), which knows the command tree and the values (profiles, configs, job ids,
 * artifacts), so the three shells share one implementation and never drift from the commands.
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import BASH from "../templates/completion/nemotron.bash" with { type: "text" };
import ZSH from "../templates/completion/nemotron.zsh" with { type: "text" };
import FISH from "../templates/completion/nemotron.fish" with { type: "text" };

export function completionCommand(_cli: CliContext): Command {
  return new Command("completion")
    .description("Print a shell completion script (bash, zsh or fish)")
    .argument("<shell>", "The shell: bash, zsh or fish")
    .examples([
      ["source <(nemotron completion bash)", "In ~/.bashrc"],
      ["source <(nemotron completion zsh)", "In ~/.zshrc, after compinit"],
      ["nemotron completion fish | source", "In ~/.config/fish/config.fish"],
    ])
    .action((shell: string) => {
      const scripts: Record<string, string> = { bash: BASH, zsh: ZSH, fish: FISH };
      const script = scripts[shell];
      if (script === undefined) {
        throw new UsageError(`unknown shell '${shell}'`, { hint: "use one of: bash, zsh, fish" });
      }
      console.log(script.trimEnd());
    });
}
