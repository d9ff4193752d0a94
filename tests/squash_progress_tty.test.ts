/**
 * What a person sees during a real `nemotron squash` of the local test registry image: in a real
 * terminal (tmux, 60 columns) the progress line is redrawn in place (one line, never wider than the
 * terminal), and when it is done the per-phase lines and the summary line are left, the live line
 * gone; piped, a few lines only; `--json` keeps stdout clean; the cache cap applies after a squash.
 *
 * The test image is tiny, so the registry is reached through a throttling proxy (a stand-in for a
 * slow network, in this file): it forwards every request and dribbles blob bodies out at 48 bytes
 * per 100 ms, so the download takes seconds and the terminal has time to show it.
 */
import assert from "node:assert/strict";
import {
  MAIN,
  nemotron,
  registryUnavailable,
  startRegistryWithImage,
  stopRegistry,
} from "./fixtures/squash/registry.ts";

const PORT = 5159;
const why = await registryUnavailable();
if (why) console.log(`squash_progress_tty: SKIPPED: ${why}`);

/** The slow-network stand-in: a proxy to the registry that sends blob bodies slowly. */
function slowProxy(upstream: string): { url: string; close: () => Promise<void> } {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const u = new URL(req.url);
      const headers = new Headers(req.headers);
      headers.delete("host");
      const res = await fetch(`${upstream}${u.pathname}${u.search}`, {
        method: req.method,
        headers,
        redirect: "manual",
      });
      if (!/\/blobs\//.test(u.pathname) || req.method !== "GET" || !res.body) return res;
      const body = new Uint8Array(await res.arrayBuffer());
      const stream = new ReadableStream<Uint8Array>({
        async start(c) {
          for (let i = 0; i < body.length; i += 48) {
            c.enqueue(body.slice(i, i + 48));
            await new Promise((r) => setTimeout(r, 100));
          }
          c.close();
        },
      });
      return new Response(stream, { status: res.status, headers: res.headers });
    },
  );
  return {
    url: `127.0.0.1:${server.addr.port}`,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test({
  name: "squash progress: redrawn in place in a real terminal, few lines piped, clean --json",
  ignore: why !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const { url } = await startRegistryWithImage(PORT);
  const proxy = slowProxy(url);
  const dir = await Deno.makeTempDir({ prefix: "squash-tty-" });
  try {
    await t.step(
      "in tmux: one live line redrawn in place, then the phase and summary lines",
      async () => {
        const socket = `nemotron-squash-${Deno.pid}`;
        const tmux = async (args: string[]) =>
          new TextDecoder().decode(
            (await new Deno.Command("tmux", { args: ["-L", socket, ...args], stdout: "piped" })
              .output()).stdout,
          );
        const home = `${dir}/home-tty`;
        const go = `${dir}/go`;
        const done = `${dir}/done`;
        const raw = `${dir}/raw.log`;
        const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
        await tmux([
          "new-session",
          "-d",
          "-x",
          "60",
          "-y",
          "20",
          "sh",
          "-c",
          `while [ ! -e '${go}' ]; do sleep 0.1; done; ` +
          `DENO_DIR='${denoDir}' NEMOTRON_HOME='${home}' '${Deno.execPath()}' run -A --quiet ` +
          `'${MAIN}' squash ${proxy.url}/test/img:1 -o '${dir}/tty.sqsh'; ` +
          `touch '${done}'; sleep 60`,
        ]);
        try {
          await tmux(["pipe-pane", "-o", `cat >> '${raw}'`]);
          await Deno.writeTextFile(go, "");
          const screens: string[] = [];
          for (let i = 0; i < 600; i++) {
            const screen = await tmux(["capture-pane", "-p"]);
            if (/ETA/.test(screen)) screens.push(screen);
            try {
              Deno.statSync(done);
              break;
            } catch {
              await new Promise((r) => setTimeout(r, 100));
            }
          }
          // -J joins the lines the terminal wrapped and keeps their trailing spaces, so a wrap at
          // a space ("3 layers" cut after "3 ") reads back as the line that was written.
          const end = await tmux(["capture-pane", "-p", "-J"]);
          // Polled every ~100 ms during a ~2 s download (fewer on a loaded machine).
          assert.ok(screens.length >= 1, `the live line was on screen (${screens.length} times)`);
          for (const s of screens) {
            // One line, redrawn in place: never two progress lines on the screen at once.
            assert.equal(s.match(/ETA/g)?.length, 1, s);
          }
          // The raw bytes: the line is redrawn with \r + clear-to-end-of-line, and fits 59 columns.
          const bytes = await Deno.readTextFile(raw);
          // A draw is what follows \r ESC[K up to the next lone \r; a permanent line ends in \r\n
          // (the terminal's line discipline turns \n into \r\n).
          const draws = bytes.split("\r\x1b[K").slice(1).map((d) =>
            /^[^\r\n]*(?=\r(?!\n)|$)/.exec(d)?.[0]
          ).filter((d): d is string => d !== undefined && d !== "");
          const live = draws.filter((d) => /^download .*%.*ETA/.test(d));
          assert.ok(live.length >= 3, `redraws: ${JSON.stringify(draws.slice(0, 5))}`);
          for (const d of draws) assert.ok(d.length <= 59, `${d.length} columns: '${d}'`);
          assert.ok(new Set(live).size >= 2, "the line changes as bytes arrive");
          // What is left: the phase lines and the summary, no live line.
          assert.doesNotMatch(end, /ETA/);
          assert.match(end, /^download: 1\.9 KiB in \d+\.\d s \(\d+(\.\d)? (B|KiB)\/s\)$/m);
          assert.match(end, /^merge: 1\.9 KiB in /m);
          assert.match(end, /^mksquashfs: \d+ blocks in /m);
          // The summary line (wrapped by the 60-column terminal): path, size, layers, time, rate.
          assert.match(
            end,
            /Wrote .*tty\.sqsh \(\d+\.\d KiB\): 3 layers, 1\.9 KiB in \d+\.\d s \(\d+(\.\d)? (B|KiB)\/s\)/,
          );
        } finally {
          await tmux(["kill-server"]);
        }
      },
    );

    await t.step("piped: a handful of lines; the cache cap applies after the squash", async () => {
      const home = `${dir}/home-piped`;
      const blobs = `${home}/cache/blobs/sha256`;
      await Deno.mkdir(blobs, { recursive: true, mode: 0o700 });
      await Deno.chmod(home, 0o700);
      const stale = `${blobs}/${"f".repeat(64)}`;
      await Deno.writeFile(stale, new Uint8Array(4000));
      const old = new Date(Date.now() - 40 * 86400e3);
      await Deno.utime(stale, old, old);
      const r = await nemotron(
        ["squash", `${proxy.url}/test/img:1`, "-o", `${dir}/piped.sqsh`],
        { NEMOTRON_HOME: home, NEMOTRON_SQUASH_CACHE_MAX: "3K" },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "");
      const lines = r.stderr.trimEnd().split("\n");
      assert.ok(!r.stderr.includes("\r") && !r.stderr.includes("\x1b"), "no terminal control");
      // The image line, three phase lines, the summary and the cache line; the download takes
      // ~4 s, under the 10 s status interval, so no status line.
      assert.equal(lines.length, 6, r.stderr);
      assert.match(lines[0], /test\/img:1 sha256:[0-9a-f]{64}: 3 layers, 1\.9 KiB/);
      assert.match(lines[1], /^download: 1\.9 KiB in/);
      assert.match(lines[2], /^merge: /);
      assert.match(lines[3], /^mksquashfs: /);
      assert.match(lines[5], /^Wrote .*piped\.sqsh/);
      // 4000 + the image's 4 blobs (2894 bytes) > 3 KiB: the stale blob (least recently used) goes.
      assert.match(
        lines[4],
        /^blob cache over NEMOTRON_SQUASH_CACHE_MAX \(3\.0 KiB\): removed 1 least recently used blob\(s\), 6\.7 KiB → 2\.8 KiB$/,
      );
      await assert.rejects(Deno.lstat(stale));
      const left = [...Deno.readDirSync(blobs)].filter((d) => /^[0-9a-f]{64}$/.test(d.name));
      assert.equal(left.length, 4, "the image's blobs (just used) stay");
    });

    await t.step("--json: stdout is only the JSON result", async () => {
      const r = await nemotron(
        ["squash", `${proxy.url}/test/img:1`, "-o", `${dir}/json.sqsh`, "--json"],
        { NEMOTRON_HOME: `${dir}/home-piped` },
      );
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(r.stdout, JSON.stringify(j) + "\n");
      assert.equal(j.layers, 3);
    });
  } finally {
    await proxy.close();
    await stopRegistry(PORT);
    await Deno.remove(dir, { recursive: true });
  }
});
