/**
 * Re-create lib/exec/minijinja_js_bg.wasm.gz from the pinned npm package (run after bumping
 * minijinja-js). The WASM is embedded gzipped: 1.0 MB of WASM is 1.4 MB of base64 text in the
 * bundle, which every start-up has to scan; gzipped it is a third of that.
 * tests/foundation_vendor.test.ts checks that the file still matches the package.
 */
import wasm from "minijinja-js/dist/web/minijinja_js_bg.wasm" with { type: "bytes" };

const gz = new Uint8Array(
  await new Response(new Blob([wasm]).stream().pipeThrough(new CompressionStream("gzip")))
    .arrayBuffer(),
);
const out = new URL("../lib/exec/minijinja_js_bg.wasm.gz", import.meta.url);
await Deno.writeFile(out, gz);
console.log(`wrote ${out.pathname} (${gz.length} bytes from ${wasm.length})`);
