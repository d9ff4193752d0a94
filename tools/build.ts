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
  return await run([
    "bundle",
    ...(quiet ? ["--quiet"] : []),
    ...BUNDLE_FLAGS,
    "--output",
    outFile,
    main,
  ], quiet);
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
    const code = await run(["compile", ...PERMISSIONS, "--output", "dist/nemotron", "main.ts"]);
    if (code !== 0 && !denort) {
      console.error(
        "hint: deno compile downloads the denort runtime; on an air-gapped host set DENORT_BIN=/path/to/denort (same Deno version)",
      );
    }
    return code;
  }
  console.error("usage: deno run -A tools/build.ts bundle|compile");
  return 2;
}

if (import.meta.main) Deno.exit(await main(Deno.args[0]));
