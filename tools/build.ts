/**
 * Build the shippable artifacts.
 *   deno task bundle   → dist/nemotron.js (one JavaScript file; run with `deno run -A dist/nemotron.js`)
 *   deno task compile  → dist/nemotron (one executable with the Deno runtime inside)
 *
 * `deno compile` needs the `denort` runtime binary. By default Deno downloads it; on air-gapped
 * build hosts set DENORT_BIN to a denort binary of the same Deno version (2.9.6).
 */
const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-net",
  "--allow-sys",
];

/**
 * `--platform browser` makes npm packages resolve to their ESM browser builds (yaml's Node build is
 * CommonJS and drags in node:module at start-up); node: imports stay external and still work in
 * Deno. `--minify` halves the text V8 has to parse at every start.
 */
export const BUNDLE_FLAGS = ["--platform", "browser", "--minify"];

async function run(args: string[], quiet = false): Promise<number> {
  if (!quiet) console.error(`$ deno ${args.join(" ")}`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: quiet ? "null" : "inherit",
    stderr: quiet ? "null" : "inherit",
  })
    .output();
  return code;
}

/**
 * Write the one-file bundle to `outFile`; returns the exit code of `deno bundle`. (A variant that
 * kept code-split chunks as strings and imported them as blob: modules on demand was measured and
 * dropped: `--help` got faster, but a recipe dry run, which needs ~40 chunks, got 50 % slower.)
 */
export async function buildBundle(outFile: string, quiet = false): Promise<number> {
  const main = new URL("../main.ts", import.meta.url).pathname;
  const code = await run([
    "bundle",
    ...(quiet ? ["--quiet"] : []),
    ...BUNDLE_FLAGS,
    "--output",
    outFile,
    main,
  ], quiet);
  if (code !== 0) return code;
  // Stamp the commit the bundle is built from (lib/version.ts holds the placeholder).
  const text = await Deno.readTextFile(outFile);
  const stamped = text.replaceAll("@@NEMOTRON_BUILD_COMMIT@@", sourceCommit());
  await Deno.writeTextFile(outFile, stamped);
  return 0;
}

/** `git rev-parse --short=12 HEAD` of this checkout, `+dirty` with uncommitted changes. */
function sourceCommit(): string {
  const root = new URL("..", import.meta.url).pathname;
  const git = (args: string[]) =>
    new Deno.Command("git", { args: ["-C", root, ...args], stdout: "piped", stderr: "null" })
      .outputSync();
  const head = git(["rev-parse", "--short=12", "HEAD"]);
  if (!head.success) return "unknown";
  const sha = new TextDecoder().decode(head.stdout).trim();
  const dirty = git(["status", "--porcelain", "--untracked-files=no"]);
  return dirty.success && dirty.stdout.length > 0 ? `${sha}+dirty` : sha;
}

async function main(mode: string | undefined): Promise<number> {
  await Deno.mkdir("dist", { recursive: true });
  if (mode === "bundle") {
    return await buildBundle("dist/nemotron.js");
  }
  if (mode === "compile") {
    const denort = Deno.env.get("DENORT_BIN");
    if (denort) {
      try {
        Deno.statSync(denort);
      } catch {
        console.error(`error: DENORT_BIN=${denort} does not exist`);
        console.error("  hint: point DENORT_BIN at the denort binary of Deno 2.9.6");
        return 2;
      }
      console.error(`using DENORT_BIN=${denort}`);
    }
    // The binary is compiled from the stamped bundle, so it reports the same commit.
    const bundleCode = await buildBundle("dist/nemotron.js");
    if (bundleCode !== 0) return bundleCode;
    console.error("$ deno compile … --output dist/nemotron dist/nemotron.js");
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["compile", "--quiet", ...PERMISSIONS, "--output", "dist/nemotron", "dist/nemotron.js"],
      stdout: "inherit",
      stderr: "piped",
    }).output();
    if (r.code === 0) return 0;
    const err = new TextDecoder().decode(r.stderr);
    if (/denort|dl\.deno\.land|error sending request|dns error/i.test(err)) {
      console.error(
        denort
          ? `error: deno compile could not use DENORT_BIN=${denort}`
          : "error: deno compile could not download the denort runtime (no network?)",
      );
      console.error(
        "  hint: set DENORT_BIN=/path/to/denort (the denort binary of Deno 2.9.6), or use " +
          "`deno task bundle` and run dist/nemotron.js with deno",
      );
      return 1;
    }
    // Anything else: deno's own message, without its internal backtrace.
    console.error(err.replace(/\n*Stack backtrace:[\s\S]*$/, "").trimEnd());
    return 1;
  }
  console.error("usage: deno run -A tools/build.ts bundle|compile");
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args[0]));
