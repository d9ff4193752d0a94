/**
 * Self-containment: the bundle runs from an empty directory with an empty DENO_DIR, network denied
 * and no module downloads allowed (--cached-only), so every asset must be embedded.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { tempDir, writeTree } from "./cli_helpers.ts";
import { buildBundle } from "../tools/build.ts";

let bundlePath: string | undefined;

/** Build the bundle once per test file run into a private temp dir (never dist/, which CI may use). */
async function bundle(): Promise<string> {
  if (bundlePath) return bundlePath;
  const out = path.join(await tempDir("nemotron-bundle-"), "nemotron.js");
  assert.equal(await buildBundle(out, true), 0, "deno bundle failed");
  bundlePath = out;
  return out;
}

function filesUnder(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].flatMap((e) =>
      e.isDirectory ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]
    );
  } catch {
    return [];
  }
}

/** Copy the bundle alone into a new empty dir and run it there, offline, with an empty DENO_DIR. */
export async function runBundled(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string; dir: string }> {
  const js = await bundle();
  const dir = await tempDir("nemotron-empty-");
  await Deno.copyFile(js, path.join(dir, "nemotron.js"));
  const denoDir = await tempDir("nemotron-denodir-");
  const home = await tempDir("nemotron-home-");
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--cached-only",
      "--no-config",
      "--no-lock",
      "--deny-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-run",
      "--allow-sys",
      "nemotron.js",
      ...args,
    ],
    cwd: dir,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: denoDir,
      HOME: home,
      NO_COLOR: "1",
      HTTPS_PROXY: "http://127.0.0.1:9",
      HTTP_PROXY: "http://127.0.0.1:9",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  // The empty DENO_DIR must hold no downloaded module afterwards (deno creates an empty npm/ dir).
  assert.deepEqual(filesUnder(path.join(denoDir, "npm")), [], "the bundle downloaded npm modules");
  assert.deepEqual(filesUnder(path.join(denoDir, "remote")), [], "the bundle downloaded modules");
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr), dir };
}

Deno.test("bundle: --help and --version from an empty directory, offline", async () => {
  const help = await runBundled(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: nemotron/m);
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const version = await runBundled(["--version", "--json"]);
  const info = JSON.parse(version.stdout);
  assert.equal(info.version, denoJson.version);
  // Stamped at build time: the bundle runs where no git checkout is, and still knows its commit.
  const head = new TextDecoder().decode(
    new Deno.Command("git", { args: ["rev-parse", "--short=12", "HEAD"], stdout: "piped" })
      .outputSync().stdout,
  ).trim();
  assert.match(info.commit, new RegExp(`^${head}(\\+dirty)?$`));
});

Deno.test("bundle: runspec show and env show from an empty directory, offline", async () => {
  const files = await tempDir();
  await writeTree(files, {
    "train.py":
      '# /// script\n# [tool.runspec]\n# name = "demo/x"\n# [tool.runspec.run]\n# launch = "direct"\n# ///\n',
    "env.toml":
      '[base]\nexecutor = "slurm"\naccount = "acct"\n[dev]\nextends = "base"\nclient_secret = "pw"\n',
  });
  const rs = await runBundled(["runspec", "show", path.join(files, "train.py"), "--json"]);
  assert.equal(rs.code, 0, rs.stderr);
  const j = JSON.parse(rs.stdout);
  assert.equal(j.name, "demo/x");
  assert.equal(j.run.launch, "direct");
  const env = await runBundled(["env", "show", "dev", "--json"], {
    NEMOTRON_ENV_FILE: path.join(files, "env.toml"),
  });
  assert.equal(env.code, 0, env.stderr);
  assert.deepEqual(JSON.parse(env.stdout), {
    executor: "slurm",
    account: "acct",
    client_secret: "******",
  });
});

Deno.test("bundle: demo pipe runs from an empty directory, offline (recipes are embedded)", async () => {
  const home = await tempDir("nemotron-bundle-home-");
  const r = await runBundled(["demo", "pipe", "-c", "tiny"], { NEMOTRON_HOME: home });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /step 1\/8 loss/);
  assert.match(r.stdout, /demo pipe finished; artifacts:/);
  for (const name of ["demo-data-tiny", "demo-model-tiny"]) {
    const manifest = JSON.parse(
      await Deno.readTextFile(path.join(home, "artifacts", name, "v1", "manifest.json")),
    );
    assert.equal(manifest.name, name);
  }
});

Deno.test("bundle: a Slurm dry run renders the sbatch script (embedded template and WASM)", async () => {
  const files = await tempDir();
  await writeTree(files, {
    "env.toml":
      '[cluster]\nexecutor = "slurm"\naccount = "acct"\npartition = "batch"\nremote_job_dir = "/lustre/t/jobs"\n',
  });
  const r = await runBundled(["nano3", "pretrain", "-c", "tiny", "-b", "cluster", "--dry-run"], {
    NEMOTRON_ENV_FILE: path.join(files, "env.toml"),
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^#SBATCH --account=acct$/m);
  assert.match(
    r.stdout,
    /--container-image=\/lustre\/t\/jobs\/nvcr_io_nvidia_nemo_25_11_nemotron_3_nano\.sqsh/,
  );
  assert.match(r.stdout, /torchrun/);
});

Deno.test("compile without network: one clear error with the DENORT_BIN hint, no backtrace", async () => {
  const cwd = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
  // A DENO_DIR that has the npm packages and esbuild (for the bundle step) but no denort.
  const info = JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
        .output()).stdout,
    ),
  );
  const denoDir = await tempDir("nemotron-denodir-");
  await Deno.symlink(path.join(info.denoDir, "npm"), path.join(denoDir, "npm"));
  await Deno.mkdir(path.join(denoDir, "dl"));
  for (const e of Deno.readDirSync(path.join(info.denoDir, "dl"))) {
    if (/esbuild/.test(e.name)) {
      await Deno.symlink(path.join(info.denoDir, "dl", e.name), path.join(denoDir, "dl", e.name));
    }
  }
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tools/build.ts", "compile"],
    cwd,
    env: {
      DENORT_BIN: "",
      // Any download fails at once: the proxy port is closed, and the cache is empty.
      HTTPS_PROXY: "http://127.0.0.1:9",
      HTTP_PROXY: "http://127.0.0.1:9",
      DENO_DIR: denoDir,
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 1, err);
  assert.match(err, /^error: deno compile could not download the denort runtime/m);
  assert.match(err, /hint: set DENORT_BIN=/);
  assert.doesNotMatch(err, /Stack backtrace|Caused by/);
});
