/**
 * The self-contained packager: reference vectors §3.6 and a differential test — the inlined file
 * run by python3 prints exactly what the original prints with its package on PYTHONPATH.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "../lib/errors.ts";
import { inlineImports, packageSelfContained } from "../lib/packaging/inline.ts";

const PYTHON = "/usr/bin/python3";
const PROJECT = join(dirname(fileURLToPath(import.meta.url)), "fixtures/packaging/inline_project");

function write(path: string, text: string): void {
  Deno.mkdirSync(dirname(path), { recursive: true });
  Deno.writeTextFileSync(path, text);
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = Deno.realPathSync(await Deno.makeTempDir({ prefix: "nemotron-inline-" }));
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function python(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(PYTHON, {
    args,
    cwd,
    env: { PYTHONDONTWRITEBYTECODE: "1", ...env },
    clearEnv: true,
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function tarNames(archive: string): Promise<string[]> {
  const out = await new Deno.Command("tar", { args: ["-tzf", archive] }).output();
  assert.equal(out.code, 0);
  return new TextDecoder().decode(out.stdout).trim().split("\n");
}

async function extract(archive: string, file: string): Promise<string> {
  const out = await new Deno.Command("tar", { args: ["-xzOf", archive, file] }).output();
  assert.equal(out.code, 0);
  return new TextDecoder().decode(out.stdout);
}

function noLocalImportLines(text: string, pkg: string): void {
  for (const line of text.split("\n")) {
    const t = line.trimStart();
    assert.ok(!t.startsWith(`from ${pkg}`) && !t.startsWith(`import ${pkg}`), `left in: ${line}`);
  }
}

Deno.test("inline: vector — aliases, import-as, __future__, external imports; main() == 5", async () => {
  await withTemp(async (repo) => {
    write(join(repo, "src/nemotron/a.py"), "def f():\n    return 1\n");
    write(
      join(repo, "src/nemotron/b.py"),
      "from nemotron.a import f as g\n\ndef h():\n    return g() + 1\n",
    );
    const entry = `from __future__ import annotations
import math
from nemotron.b import h
import nemotron.a as a

def main():
    return h() + a.f() + int(math.sqrt(4))
`;
    const res = await inlineImports({ source: entry, path: "entry.py", repoRoot: repo });
    noLocalImportLines(res.text, "nemotron");
    assert.ok(res.text.includes("import math"));
    assert.deepEqual(res.modules, ["nemotron.a", "nemotron.b"]);
    write(join(repo, "out.py"), res.text);
    const run = await python(
      ["-c", "import runpy; print(runpy.run_path('out.py')['main']())"],
      repo,
    );
    assert.equal(run.stderr, "");
    assert.equal(run.stdout, "5\n");
  });
});

Deno.test("inline: vector — the package holds exactly config.yaml and main.py", async () => {
  await withTemp(async (repo) => {
    write(join(repo, "src/nemotron/x.py"), "def fx():\n    return 1\n");
    write(join(repo, "train.py"), "from nemotron.x import fx\nprint(fx())\n");
    const pkg = await packageSelfContained({
      script: { path: join(repo, "train.py") },
      trainConfig: "a: 1\n",
      jobDir: join(repo, "job"),
      repoRoot: repo,
    });
    assert.deepEqual(await tarNames(pkg.tarball), ["config.yaml", "main.py"]);
    const main = await extract(pkg.tarball, "main.py");
    assert.ok(!main.includes("from nemotron"));
    write(join(repo, "run/main.py"), main);
    assert.equal((await python(["main.py"], join(repo, "run"))).stdout, "1\n");
  });
});

Deno.test("inline: vector — imports nested in functions are inlined too", async () => {
  await withTemp(async (repo) => {
    write(join(repo, "src/nemotron/x.py"), "def fx():\n    return 1\n");
    write(join(repo, "src/nemotron/y.py"), "def fy():\n    return 2\n");
    write(
      join(repo, "train.py"),
      "from nemotron.x import fx\n\ndef main():\n    from nemotron.y import fy\n    print(fx() + fy())\n\nmain()\n",
    );
    const pkg = await packageSelfContained({
      script: { path: join(repo, "train.py") },
      trainConfig: "a: 1\n",
      jobDir: join(repo, "job"),
      repoRoot: repo,
    });
    assert.deepEqual(await tarNames(pkg.tarball), ["config.yaml", "main.py"]);
    const main = await extract(pkg.tarball, "main.py");
    noLocalImportLines(main, "nemotron");
    for (const d of ["def fx():", "def fy():", "def main():"]) assert.ok(main.includes(d), d);
    write(join(repo, "run/main.py"), main);
    assert.equal((await python(["main.py"], join(repo, "run"))).stdout, "3\n");
  });
});

Deno.test("inline: vector — importlib.import_module is not followed", async () => {
  await withTemp(async (repo) => {
    write(join(repo, "src/nemotron/kit/__init__.py"), "from pydantic import BaseModel\n");
    write(
      join(repo, "src/nemotron/wandb.py"),
      `import importlib


def patch_something():
    kit = importlib.import_module("nemotron.kit")
    return kit
`,
    );
    write(
      join(repo, "train.py"),
      "from nemotron.wandb import patch_something\nprint(callable(patch_something))\n",
    );
    const pkg = await packageSelfContained({
      script: { path: join(repo, "train.py") },
      trainConfig: "a: 1\n",
      jobDir: join(repo, "job"),
      repoRoot: repo,
    });
    const main = await extract(pkg.tarball, "main.py");
    assert.ok(!main.includes("from pydantic") && !main.includes("import pydantic"));
    assert.ok(main.includes("def patch_something():"));
    assert.ok(main.includes("importlib.import_module"));
    assert.deepEqual(pkg.modules, ["nemotron.wandb"]);
  });
});

Deno.test("inline: differential — the single file prints what the original prints", async () => {
  await withTemp(async (tmp) => {
    const script = join(PROJECT, "recipes/train.py");
    const original = await python([script, "--config", "c.yaml"], join(PROJECT, "recipes"), {
      PYTHONPATH: join(PROJECT, "src"),
    });
    assert.equal(original.stderr, "");
    assert.equal(original.code, 3);
    // Expected output written by hand from the fixture, so the original run is checked too.
    assert.equal(
      original.stdout,
      `Entry docstring. 1.0 c.yaml
hello ada... (9, X!) HELLO BOB! (9, X!)
quiet... 5.0 True
1, 4, 9
HELLO RUNNER!
from mypkg import nothing  # text in a string, not an import
[('loud', 'Optional[bool]'), ('name', 'str')]
`,
    );

    const pkg = await packageSelfContained({
      script: { path: script },
      trainConfig: "x: 1\n",
      jobDir: join(tmp, "job"),
      repoRoot: PROJECT,
      packagePrefixes: ["mypkg"],
    });
    assert.deepEqual(pkg.modules, [
      "mypkg.util",
      "mypkg.util.mathx",
      "mypkg.util.text",
      "mypkg.core",
      "mypkg",
      "helpers",
    ]);
    const main = await extract(pkg.tarball, "main.py");
    write(join(tmp, "run/main.py"), main);
    const inlined = await python(["main.py", "--config", "c.yaml"], join(tmp, "run"));
    assert.equal(inlined.stderr, "");
    assert.equal(inlined.code, original.code);
    assert.equal(inlined.stdout, original.stdout);

    // Source text is kept as written: comments, odd spacing, strings that look like imports.
    // (the one line of a string that looks like an import is kept, checked below)
    noLocalImportLines(main.replace("from mypkg import nothing  # text", ""), "mypkg");
    assert.ok(main.includes("# keep this comment: mathx helpers\n"));
    assert.ok(main.includes("    return   x * x    # odd spacing kept as written\n"));
    assert.ok(
      main.includes(
        'TEMPLATE = """\nfrom mypkg import nothing  # text in a string, not an import\n"""',
      ),
    );
    assert.ok(main.startsWith("#!/usr/bin/env python3\n# A recipe entry script"));
    // Exactly one __future__ import, right after the docstring; guards of inlined modules gone.
    assert.equal(main.split("from __future__ import").length, 2);
    assert.ok(main.includes('"""Entry docstring."""\nfrom __future__ import annotations\n'));
    assert.ok(!main.includes("core run as a script"));
    assert.ok(main.includes('if __name__ == "__main__":\n    sys.exit(main())'));
  });
});

Deno.test("inline: star imports of local modules are refused with file:line:col", async () => {
  await withTemp(async (repo) => {
    write(join(repo, "src/nemotron/x.py"), "X = 1\n");
    const entry = "import os\n\ndef f():\n    from nemotron.x import *\n";
    await assert.rejects(
      inlineImports({ source: entry, path: "train.py", repoRoot: repo }),
      (err) =>
        err instanceof UsageError && /star import/.test(err.message) &&
        err.location?.file === "train.py" && err.location.line === 4 && err.location.col === 5,
    );
    // External star imports are left alone.
    const ok = await inlineImports({
      source: "from os.path import *\n",
      path: "t.py",
      repoRoot: repo,
    });
    assert.equal(ok.text, "from os.path import *\n");
  });
});

Deno.test("inline: unresolvable prefixed modules and syntax errors are usage errors", async () => {
  await withTemp(async (repo) => {
    write(join(repo, "src/nemotron/x.py"), "X = 1\n");
    await assert.rejects(
      inlineImports({
        source: "x = 1\nfrom nemotron.nope import y\n",
        path: "t.py",
        repoRoot: repo,
      }),
      (err) =>
        err instanceof UsageError && /could not resolve module 'nemotron.nope'/.test(err.message) &&
        err.location?.line === 2,
    );
    write(join(repo, "src/nemotron/bad.py"), "def f(:\n    pass\n");
    await assert.rejects(
      inlineImports({ source: "import nemotron.bad\n", path: "t.py", repoRoot: repo }),
      (err) =>
        err instanceof UsageError && /cannot parse/.test(err.message) &&
        err.location?.file === "src/nemotron/bad.py" && err.location.line === 1,
    );
    await assert.rejects(
      inlineImports({ source: "from . import x\n", path: "t.py", repoRoot: repo }),
      (err) => err instanceof UsageError && /relative import in the entry script/.test(err.message),
    );
  });
});

Deno.test("inline: a script without local imports is returned unchanged", async () => {
  const source = '#!/usr/bin/env python3\n"""Doc."""\nimport os  # comment\n\nprint(os.sep)\n';
  const res = await inlineImports({ source, path: "t.py" });
  assert.equal(res.text, source);
  assert.deepEqual(res.modules, []);
});

Deno.test("inline: functions defined by two modules are reported", async () => {
  await withTemp(async (repo) => {
    write(join(repo, "src/nemotron/a.py"), "def helper():\n    return 'a'\n");
    write(join(repo, "src/nemotron/b.py"), "def helper():\n    return 'b'\n");
    const res = await inlineImports({
      source:
        "from nemotron.a import helper as ha\nfrom nemotron.b import helper as hb\nprint(ha(), hb())\n",
      path: "t.py",
      repoRoot: repo,
    });
    assert.deepEqual(res.warnings, [
      "'helper' is defined by both nemotron.a and nemotron.b; in the single file the later one wins",
    ]);
    // The bindings still reach each module's own function.
    write(join(repo, "out.py"), res.text);
    assert.equal((await python(["out.py"], repo)).stdout, "a b\n");
  });
});

Deno.test("inline: files the config names under /nemo_run/code/ ship next to main.py", async () => {
  await withTemp(async (repo) => {
    write(join(repo, "train.py"), "print(1)\n");
    write(join(repo, "data/blend.json"), "{}\n");
    const pkg = await packageSelfContained({
      script: { arcname: "recipes/train.py", text: "print(1)\n" },
      trainConfig:
        "data:\n  blend: /nemo_run/code/data/blend.json\n  missing: /nemo_run/code/nope.json\n",
      jobDir: join(repo, "job"),
      repoRoot: repo,
    });
    assert.deepEqual(await tarNames(pkg.tarball), ["config.yaml", "data/blend.json", "main.py"]);
    assert.deepEqual(pkg.configFiles, ["data/blend.json"]);
  });
});

Deno.test("inline: edge cases — mixed lines, one-line bodies, class bodies, submodules, cycles", async () => {
  await withTemp(async (repo) => {
    // nemotron is a namespace package here (no __init__.py): `from nemotron import a` is a submodule.
    write(
      join(repo, "src/nemotron/a.py"),
      "def f():\n    return 'a.f'\n\n\ndef g():\n    from nemotron.b import h\n    return 'a.g>' + h()\n",
    );
    write(
      join(repo, "src/nemotron/b.py"),
      "from nemotron.a import f\n\n\ndef h():\n    return 'b.h>' + f()\n",
    );
    write(
      join(repo, "src/nemotron/sub/__init__.py"),
      "from . import leaf\nfrom .leaf import Ann\n",
    );
    write(
      join(repo, "src/nemotron/sub/leaf.py"),
      "from __future__ import annotations\n\n\nclass Ann:\n    x: Later\n\n\nclass Later:\n    pass\n",
    );
    const entry = `import os, nemotron.a
from nemotron import b
if True: from nemotron.a import g as gg; import sys


class K:
    from nemotron.a import f as kf
    def m(self):
        from nemotron.sub import leaf
        return leaf.Ann.__annotations__


print(nemotron.a.f(), b.h(), gg(), K.kf(), K().m(), os.sep, sys.argv[1:])
`;
    write(join(repo, "entry.py"), entry);
    const original = await python(["entry.py", "arg"], repo, { PYTHONPATH: join(repo, "src") });
    const expected = "a.f b.h>a.f a.g>b.h>a.f a.f {'x': 'Later'} / ['arg']\n";
    assert.equal(original.stderr, "");
    assert.equal(original.stdout, expected);

    const res = await inlineImports({ source: entry, path: "entry.py", repoRoot: repo });
    assert.deepEqual(res.modules, [
      "nemotron.a",
      "nemotron.b",
      "nemotron.sub.leaf",
      "nemotron.sub",
    ]);
    assert.ok(res.text.startsWith("from __future__ import annotations\n"));
    noLocalImportLines(res.text, "nemotron");
    write(join(repo, "run/main.py"), res.text);
    const inlined = await python(["main.py", "arg"], join(repo, "run"));
    assert.equal(inlined.stderr, "");
    assert.equal(inlined.stdout, expected);
  });
});

Deno.test("inline: a config path whose symlink leads out of the repository is refused (exit 2), nothing written", async () => {
  await withTemp(async (tmp) => {
    const key = join(tmp, "home", ".ssh", "id_rsa");
    write(key, "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET-KEY-BYTES\n");
    const repo = join(tmp, "repo");
    write(join(repo, "assets", "ok.txt"), "fine\n");
    Deno.symlinkSync(key, join(repo, "assets", "x"));
    // A symlink that stays inside the repository is fine.
    Deno.symlinkSync("ok.txt", join(repo, "assets", "inside"));
    const jobDir = join(tmp, "job");
    await assert.rejects(
      packageSelfContained({
        script: { arcname: "recipes/train.py", text: "print(1)\n" },
        trainConfig: "a: /nemo_run/code/assets/inside\nb: /nemo_run/code/assets/x\n",
        jobDir,
        repoRoot: repo,
      }),
      (err) =>
        err instanceof UsageError && err.exitCode === 2 &&
        err.message.includes(`resolves to ${key}, outside the repository`),
    );
    assert.throws(() => Deno.statSync(jobDir), Deno.errors.NotFound);
    const ok = await packageSelfContained({
      script: { arcname: "recipes/train.py", text: "print(1)\n" },
      trainConfig: "a: /nemo_run/code/assets/inside\n",
      jobDir,
      repoRoot: repo,
    });
    assert.equal(await extract(ok.tarball, "assets/inside"), "fine\n");
  });
});

Deno.test("inline: a config naming a denied file (env.toml, .netrc, a key) is refused", async () => {
  await withTemp(async (repo) => {
    for (const rel of ["env.toml", "conf/.netrc", "keys/id_ed25519", ".env"]) {
      write(join(repo, rel), "secret\n");
      await assert.rejects(
        packageSelfContained({
          script: { arcname: "recipes/train.py", text: "print(1)\n" },
          trainConfig: `f: /nemo_run/code/${rel}\n`,
          jobDir: join(repo, "job"),
          repoRoot: repo,
        }),
        (err) => err instanceof UsageError && /is never shipped/.test(err.message),
        rel,
      );
    }
  });
});

Deno.test("inline: a local module symlinked out of the repository is refused", async () => {
  await withTemp(async (tmp) => {
    write(join(tmp, "elsewhere", "helper.py"), "X = 1\n");
    const repo = join(tmp, "repo");
    Deno.mkdirSync(join(repo, "src", "nemotron"), { recursive: true });
    write(join(repo, "src", "nemotron", "__init__.py"), "");
    Deno.symlinkSync(join(tmp, "elsewhere", "helper.py"), join(repo, "src", "nemotron", "h.py"));
    await assert.rejects(
      inlineImports({
        source: "from nemotron.h import X\nprint(X)\n",
        path: "t.py",
        repoRoot: repo,
      }),
      (err) => err instanceof UsageError && /outside the repository/.test(err.message),
    );
  });
});

Deno.test("inline: the shipped config.yaml is owner-only", async () => {
  await withTemp(async (repo) => {
    const pkg = await packageSelfContained({
      script: { arcname: "recipes/train.py", text: "print(1)\n" },
      trainConfig: "wandb: {api_key: k}\n",
      jobDir: join(repo, "job"),
      repoRoot: repo,
    });
    const out = await new Deno.Command("tar", { args: ["-tvzf", pkg.tarball], stdout: "piped" })
      .output();
    const listing = new TextDecoder().decode(out.stdout);
    assert.match(listing, /^-rw------- .* config\.yaml$/m);
    assert.match(listing, /^-rw-r--r-- .* main\.py$/m);
  });
});
