import assert from "node:assert/strict";
import wasm from "minijinja-js/dist/web/minijinja_js_bg.wasm" with { type: "bytes" };
import wasmGz from "../lib/exec/minijinja_js_bg.wasm.gz" with { type: "bytes" };

Deno.test("vendored minijinja WASM (gzipped) is byte-identical to the pinned npm package's", async () => {
  const unpacked = new Uint8Array(
    await new Response(new Blob([wasmGz]).stream().pipeThrough(new DecompressionStream("gzip")))
      .arrayBuffer(),
  );
  assert.equal(unpacked.length, wasm.length);
  assert.ok(unpacked.every((b, i) => b === wasm[i]), "re-run tools/vendor_minijinja.ts");
});
