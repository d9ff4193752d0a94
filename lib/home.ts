/**
 * `$NEMOTRON_HOME`: where nemotron keeps its own state (job store, artifacts by default, blob
 * cache, unpacked built-in recipes). Default `~/.nemotron`; a leading `~` is expanded and a
 * relative value is taken from the current directory.
 */
import { UsageError } from "./errors.ts";
import * as path from "./path.ts";

interface EnvReader {
  get(key: string): string | undefined;
}

/** The nemotron home directory (absolute). */
export function nemotronHome(env: EnvReader = Deno.env): string {
  const home = env.get("HOME");
  const value = env.get("NEMOTRON_HOME");
  if (value) {
    if (value === "~" || value.startsWith("~/")) {
      if (!home) throw missingHome();
      return path.join(home, value.slice(1));
    }
    return path.resolve(value);
  }
  if (!home) throw missingHome();
  return path.join(path.resolve(home), ".nemotron");
}

function missingHome(): UsageError {
  return new UsageError("cannot find the home directory (HOME is not set)", {
    hint: "set HOME, or NEMOTRON_HOME to the directory nemotron should keep its state in",
  });
}
