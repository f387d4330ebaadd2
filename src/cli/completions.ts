/**
 * `queuectl completions bash|zsh|fish` prints a shell completion script, and the hidden
 * `queuectl __complete -- <words...>` prints the candidates for the last (partial) word.
 *
 * The scripts hold no list of commands or flags: on each TAB they call `__complete`, which asks
 * stricli's `proposeCompletions` about the live command tree, so completions always match it.
 * Both command bodies live in completion_scripts.ts, loaded with import() only when one of these
 * commands runs.
 */
import { buildChoiceParser, buildCommand } from "@stricli/core";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = typeof SHELLS[number];

export const completionsCommand = () =>
  buildCommand({
    loader: async () => (await import("./completion_scripts.ts")).printScript,
    parameters: {
      positional: {
        kind: "tuple",
        parameters: [{
          brief: `Shell: ${SHELLS.join(", ")}`,
          parse: buildChoiceParser(SHELLS),
          placeholder: "shell",
          proposeCompletions: (partial: string) => SHELLS.filter((s) => s.startsWith(partial)),
        }],
      },
    },
    docs: {
      brief: "Print a shell completion script (bash, zsh or fish)",
      fullDescription: [
        "Print a completion script for the given shell on stdout. Load it with:",
        "  bash: source <(queuectl completions bash)    (in ~/.bashrc), or save it as",
        "        ~/.local/share/bash-completion/completions/queuectl",
        "  zsh:  queuectl completions zsh > ~/.zfunc/_queuectl   (with fpath+=(~/.zfunc) before",
        "        compinit in ~/.zshrc), or source <(queuectl completions zsh) after compinit",
        "  fish: queuectl completions fish > ~/.config/fish/completions/queuectl.fish",
        "The script asks queuectl itself for candidates, so it stays right after upgrades.",
      ].join("\n"),
    },
  });

/** Hidden: `__complete -- <words after the program name>`; prints `candidate<TAB>brief` lines. */
export const completeCommand = () =>
  buildCommand({
    loader: async () => (await import("./completion_scripts.ts")).printCandidates,
    parameters: {
      positional: {
        kind: "array",
        parameter: {
          brief: "Words of the command line; the last one is being completed",
          parse: String,
        },
      },
    },
    docs: { brief: "Print completion candidates (used by the completion scripts)" },
  });
