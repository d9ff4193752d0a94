/**
 * MiniJinja (Rust's Jinja2 engine) as WebAssembly, embedded gzipped as bytes so `deno bundle` and
 * `deno compile` carry it (the package's own loaders read or fetch a file next to themselves,
 * which a single-file build does not have). `lib/exec/minijinja_js_bg.wasm.gz` is made from the
 * pinned package by `tools/vendor_minijinja.ts` and checked against it by a test. Import this
 * module lazily: only commands that render templates pay for decompressing and compiling it.
 */
import wasmGz from "./minijinja_js_bg.wasm.gz" with { type: "bytes" };
import { Environment, initSync } from "minijinja-js/dist/web/minijinja_js.js";

let ready: Promise<void> | undefined;

/** Decompress and instantiate the WASM once; returns the `Environment` class. */
export async function loadMinijinja(): Promise<typeof Environment> {
  ready ??= (async () => {
    const wasm = await new Response(
      new Blob([wasmGz]).stream().pipeThrough(new DecompressionStream("gzip")),
    ).arrayBuffer();
    initSync({ module: new Uint8Array(wasm) });
  })();
  await ready;
  return Environment;
}
