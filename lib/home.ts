/**
 * `$NEMOTRON_HOME`: where nemotron keeps its own state (job store, artifacts by default, blob
 * cache, unpacked built-in recipes). Default `~/.nemotron`; a leading `~` is expanded and a
 * relative value is taken from the current directory. It is private: `ensureNemotronHome` creates
 * it with mode 0700 (and takes group/other bits away from one of ours that has them), so the job
 * store and the blob cache of private images are never readable by other users.
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

/**
 * Create `$NEMOTRON_HOME` (mode 0700) if it is missing and return it. An existing one owned by
 * this user is made 0700 if others had access; one that is not a directory, or is owned by
 * someone else (other than root), is refused.
 */
export function ensureNemotronHome(env: EnvReader = Deno.env): string {
  const dir = nemotronHome(env);
  const parent = path.dirname(dir);
  try {
    Deno.mkdirSync(parent, { recursive: true });
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const st = Deno.statSync(dir); // a symlink to a directory of one's own is fine
  const uid = Deno.uid();
  if (!st.isDirectory) {
    throw new UsageError(`NEMOTRON_HOME ${dir} is not a directory`, {
      hint: "remove it, or set NEMOTRON_HOME to a directory of your own",
    });
  }
  if (uid !== null && st.uid !== uid) {
    throw new UsageError(`NEMOTRON_HOME ${dir} belongs to uid ${st.uid}, not to you (uid ${uid})`, {
      hint: "set NEMOTRON_HOME to a directory of your own (default ~/.nemotron)",
    });
  }
  if (st.mode !== null && (st.mode & 0o077) !== 0) Deno.chmodSync(dir, 0o700);
  return dir;
}

function missingHome(): UsageError {
  return new UsageError("cannot find the home directory (HOME is not set)", {
    hint: "set HOME, or NEMOTRON_HOME to the directory nemotron should keep its state in",
  });
}
