/** Job directories: `<base>/<YYYYmmdd-HHMMSS>-<name>-<suffix>`, never shared between runs. */
import { join } from "../path.ts";
import { UsageError } from "../errors.ts";
import { untrustedPathComponent } from "../trusted_path.ts";

function stamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${
    p(d.getMinutes())
  }${p(d.getSeconds())}`;
}

/**
 * Create a fresh job directory under `baseDir` (created if needed) and return its path:
 * `<YYYYmmdd-HHMMSS>-<name with / → ->-<6 hex>`. The last component is made with a plain
 * `mkdir` (no `recursive`), which fails if it exists, and then retried with a new suffix, so
 * two runs in the same second — or twenty at once — never share a directory. The job dir is
 * private (0700), and a base that another user could swap (lib/trusted_path.ts) is refused: the
 * code in a job dir runs as you.
 */
export function createJobDir(baseDir: string, name: string, now: Date = new Date()): string {
  const problem = untrustedPathComponent(baseDir);
  if (problem) {
    throw new UsageError(
      `job dirs under ${baseDir} are not safe: ${problem.dir}: ${problem.reason}`,
      {
        hint: `another user could replace a job dir there and run code as you. ${problem.fix}`,
      },
    );
  }
  Deno.mkdirSync(baseDir, { recursive: true });
  const safe = name.replaceAll("/", "-");
  for (let attempt = 0; attempt < 100; attempt++) {
    const suffix = crypto.getRandomValues(new Uint8Array(3)).reduce(
      (s, b) => s + b.toString(16).padStart(2, "0"),
      "",
    );
    const dir = join(baseDir, `${stamp(now)}-${safe}-${suffix}`);
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
      return dir;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
  }
  throw new Error(`could not create a unique job directory under ${baseDir}`);
}
