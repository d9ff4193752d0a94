/**
 * MiniJinja (Rust's Jinja2 engine) as WebAssembly, with the WASM embedded as bytes so `deno
 * bundle`/`deno compile` carry it (the package's own loaders read or fetch a file next to
 * themselves, which a single-file build does not have). Import this module lazily: instantiating
 * the WASM costs start-up time that only rendering commands should pay.
 */
import wasm from "minijinja-js/dist/web/minijinja_js_bg.wasm" with { type: "bytes" };
import { Environment, initSync } from "minijinja-js/dist/web/minijinja_js.js";

initSync({ module: wasm });

export { Environment };
