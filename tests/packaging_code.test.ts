/**
 * The code packager on real git checkouts built in temp dirs. Archives are read back with Python's
 * tarfile and extracted with GNU tar; expected file sets are written out by hand.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkPackageSize,
  maxPackageMb,
  packageCode,
  planCodePackage,
  writeCodePackage,
} from "../lib/packaging/code.ts";
import { UsageError } from "../lib/errors.ts";

const GIT_ENV = {
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.com",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.com",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_COUNT: "2",
  GIT_CONFIG_KEY_0: "protocol.file.allow",
  GIT_CONFIG_VALUE_0: "always",
  GIT_CONFIG_KEY_1: "init.defaultBranch",
  GIT_CONFIG_VALUE_1: "main",
};

async function run(cwd: string, cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, env: GIT_ENV }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `${cmd} ${args.join(" ")}: ${stderr}`);
  return new TextDecoder().decode(out.stdout);
}

const git = (cwd: string, ...args: string[]) => run(cwd, "git", ...args);

function write(path: string, text: string | Uint8Array, mode?: number): void {
  Deno.mkdirSync(join(path, ".."), { recursive: true });
  if (typeof text === "string") Deno.writeTextFileSync(path, text, mode ? { mode } : {});
  else Deno.writeFileSync(path, text, mode ? { mode } : {});
}

interface Member {
  type: string;
  mode: number;
  link: string;
  data: string | null;
}

/** name → member, read by Python's tarfile (data as latin-1 text so binary round-trips). */
async function members(archive: string): Promise<Map<string, Member>> {
  const code = `
import json, sys, tarfile
out = {}
with tarfile.open(sys.argv[1], "r:gz") as t:
    for m in t.getmembers():
        data = t.extractfile(m).read().decode("latin-1") if m.isfile() else None
        out[m.name] = dict(type=m.type.decode(), mode=m.mode, link=m.linkname, data=data)
print(json.dumps(out))
`;
  const out = await new Deno.Command("/usr/bin/python3", { args: ["-c", code, archive] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new Map(Object.entries(JSON.parse(new TextDecoder().decode(out.stdout))));
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = Deno.realPathSync(await Deno.makeTempDir({ prefix: "nemotron-pkg-" }));
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("code: a checkout ships its working tree, untracked files, no ignored or deleted ones", async () => {
  await withTemp(async (tmp) => {
    const repo = join(tmp, "repo");
    write(join(repo, "a.py"), "v1\n");
    write(join(repo, "b.txt"), "to be deleted\n");
    write(join(repo, "run.sh"), "#!/bin/sh\n", 0o755);
    write(join(repo, "bin.dat"), new Uint8Array([0, 1, 2, 255, 0]));
    write(join(repo, ".gitignore"), "*.log\nbuild/\n");
    write(join(repo, "main.py"), "the repo's own main.py\n");
    Deno.symlinkSync("a.py", join(repo, "ln"));
    await git(repo, "init", "-q");
    await git(repo, "add", ".");
    await git(repo, "commit", "-qm", "one");
    // Uncommitted work of every kind.
    write(join(repo, "a.py"), "v2\n");
    write(join(repo, "bin.dat"), new Uint8Array([9, 0, 8, 0, 7]));
    Deno.removeSync(join(repo, "b.txt"));
    write(join(repo, "s.py"), "staged\n");
    await git(repo, "add", "s.py");
    write(join(repo, "u.py"), "untracked\n");
    write(join(repo, "x.log"), "ignored\n");
    write(join(repo, "build", "out.txt"), "ignored\n");
    write(join(repo, "recipes", "train.py"), "print('train')\n");
    const jobDir = join(repo, "jobs", "j1"); // inside the checkout, untracked and not ignored
    write(join(jobDir, "old.txt"), "previous job output\n");

    const pkg = await packageCode({
      script: { path: join(repo, "recipes", "train.py") },
      trainConfig: "lr: 0.1\n",
      jobDir,
      cwd: join(repo, "recipes"),
    });
    assert.equal(pkg.source, "git");
    assert.equal(pkg.root, repo);
    assert.equal(pkg.scriptArcname, "recipes/train.py");
    const m = await members(pkg.tarball);
    assert.deepEqual([...m.keys()], [
      ".gitignore",
      "a.py",
      "bin.dat",
      "config.yaml",
      "ln",
      "main.py",
      "recipes/train.py",
      "run.sh",
      "s.py",
      "u.py",
    ]);
    assert.equal(m.get("a.py")!.data, "v2\n");
    assert.equal(m.get("bin.dat")!.data, "\x09\x00\x08\x00\x07");
    assert.equal(m.get("config.yaml")!.data, "lr: 0.1\n");
    assert.equal(m.get("ln")!.type, "2");
    assert.equal(m.get("ln")!.link, "a.py");
    assert.equal(m.get("run.sh")!.mode, 0o755);
    assert.equal(m.get("a.py")!.mode, 0o644);
    assert.match(m.get("main.py")!.data!, /SCRIPT = "recipes\/train.py"/);
    assert.deepEqual(pkg.warnings, [
      "the checkout's main.py is replaced by the generated one in the package",
    ]);

    // The commit and the binary-safe diff rebuild the tracked working tree from a clean clone.
    const head = (await git(repo, "rev-parse", "HEAD")).trim();
    assert.equal(pkg.commit, head);
    assert.equal(Deno.readTextFileSync(pkg.commitFile!), head + "\n");
    assert.equal(pkg.dirty, true);
    const clone = join(tmp, "clone");
    await git(tmp, "clone", "-q", repo, clone);
    await git(clone, "checkout", "-q", Deno.readTextFileSync(pkg.commitFile!).trim());
    await git(clone, "apply", "--binary", pkg.diffFile!);
    assert.equal(Deno.readTextFileSync(join(clone, "a.py")), "v2\n");
    assert.deepEqual(Deno.readFileSync(join(clone, "bin.dat")), new Uint8Array([9, 0, 8, 0, 7]));
    assert.equal(Deno.readTextFileSync(join(clone, "s.py")), "staged\n");
    assert.throws(() => Deno.statSync(join(clone, "b.txt")), Deno.errors.NotFound);
    // Nothing but the package files was written into the job dir.
    const names = [...Deno.readDirSync(jobDir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["code.commit", "code.diff", "code.tar.gz", "old.txt"]);
  });
});

Deno.test("code: submodules ship at the commit the parent records, nested ones too", async () => {
  await withTemp(async (tmp) => {
    // inner: i1, i2
    const inner = join(tmp, "inner");
    write(join(inner, "inner.py"), "inner1\n");
    await git(inner, "init", "-q");
    await git(inner, "add", ".");
    await git(inner, "commit", "-qm", "i1");
    write(join(inner, "inner.py"), "inner2\n");
    await git(inner, "commit", "-qam", "i2");
    const i1 = (await git(inner, "rev-parse", "HEAD~1")).trim();
    // sub: c1 = lib one + inner@i1; c2 = lib two + inner@i2
    const sub = join(tmp, "sub");
    write(join(sub, "lib.py"), "one\n");
    write(join(sub, "tool.sh"), "#!/bin/sh\n", 0o755);
    Deno.mkdirSync(sub, { recursive: true });
    await git(sub, "init", "-q");
    await git(sub, "submodule", "add", "-q", inner, "deps/inner");
    await git(join(sub, "deps/inner"), "checkout", "-q", i1);
    await git(sub, "add", ".");
    await git(sub, "commit", "-qm", "c1");
    const c1 = (await git(sub, "rev-parse", "HEAD")).trim();
    write(join(sub, "lib.py"), "two\n");
    await git(join(sub, "deps/inner"), "checkout", "-q", "main");
    await git(sub, "commit", "-qam", "c2");
    // parent records sub@c1
    const repo = join(tmp, "repo");
    write(join(repo, "top.py"), "top\n");
    await git(repo, "init", "-q");
    await git(repo, "submodule", "add", "-q", sub, "ext/sub");
    await git(join(repo, "ext/sub"), "checkout", "-q", c1);
    await git(repo, "add", ".");
    await git(repo, "commit", "-qm", "parent");
    await git(repo, "submodule", "update", "--init", "--recursive", "-q");
    assert.equal(Deno.readTextFileSync(join(repo, "ext/sub/deps/inner/inner.py")), "inner1\n");
    // The submodule's worktree moves on (new HEAD, dirty file): the package must not follow it.
    await git(join(repo, "ext/sub"), "checkout", "-q", "main");
    await git(join(repo, "ext/sub"), "submodule", "update", "-q", "--recursive");
    write(join(repo, "ext/sub/lib.py"), "dirty\n");
    assert.equal(Deno.readTextFileSync(join(repo, "ext/sub/deps/inner/inner.py")), "inner2\n");

    const pkg = await packageCode({
      script: { arcname: "recipe/train.py", text: "print(1)\n" },
      trainConfig: "{}\n",
      jobDir: join(tmp, "job"),
      cwd: repo,
    });
    const m = await members(pkg.tarball);
    assert.deepEqual([...m.keys()], [
      ".gitmodules",
      "config.yaml",
      "ext/sub/.gitmodules",
      "ext/sub/deps/inner/inner.py",
      "ext/sub/lib.py",
      "ext/sub/tool.sh",
      "main.py",
      "recipe/train.py",
      "top.py",
    ]);
    assert.equal(m.get("ext/sub/lib.py")!.data, "one\n");
    assert.equal(m.get("ext/sub/deps/inner/inner.py")!.data, "inner1\n");
    assert.equal(m.get("ext/sub/tool.sh")!.mode, 0o755);
    assert.equal(m.get("recipe/train.py")!.data, "print(1)\n");
    assert.deepEqual(pkg.warnings, []);

    // A clone without its submodules initialised: they are left out, with a warning.
    const bare = join(tmp, "bare");
    await git(tmp, "clone", "-q", repo, bare);
    const pkg2 = await packageCode({
      script: { arcname: "recipe/train.py", text: "print(1)\n" },
      trainConfig: "{}\n",
      jobDir: join(tmp, "job2"),
      cwd: bare,
    });
    const m2 = await members(pkg2.tarball);
    assert.deepEqual([...m2.keys()], [
      ".gitmodules",
      "config.yaml",
      "main.py",
      "recipe/train.py",
      "top.py",
    ]);
    assert.equal(pkg2.warnings.length, 1);
    assert.match(pkg2.warnings[0], /submodule ext\/sub is not initialised/);
    assert.equal(pkg2.dirty, false);
    assert.equal(Deno.readTextFileSync(pkg2.diffFile!), "");
  });
});

Deno.test("code: packaging twice gives the same sha256, whatever the files' mtimes", async () => {
  await withTemp(async (tmp) => {
    const repo = join(tmp, "repo");
    for (let i = 0; i < 30; i++) write(join(repo, `d${i % 4}`, `f${i}.py`), `x = ${i}\n`.repeat(i));
    await git(repo, "init", "-q");
    await git(repo, "add", ".");
    await git(repo, "commit", "-qm", "one");
    write(join(repo, "new.py"), "untracked\n");
    const opts = {
      script: { arcname: "r/train.py", text: "print(1)\n" },
      trainConfig: "a: 1\n",
      cwd: repo,
    };
    const p1 = await packageCode({ ...opts, jobDir: join(tmp, "j1") });
    Deno.utimeSync(join(repo, "d1", "f1.py"), 1000, 1000);
    Deno.utimeSync(join(repo, "new.py"), 5, 5);
    const p2 = await packageCode({ ...opts, jobDir: join(tmp, "j2"), name: "other" });
    assert.equal(p1.sha256, p2.sha256);
    assert.deepEqual(Deno.readFileSync(p1.tarball), Deno.readFileSync(p2.tarball));
    write(join(repo, "new.py"), "untracked, edited\n");
    const p3 = await packageCode({ ...opts, jobDir: join(tmp, "j3") });
    assert.notEqual(p1.sha256, p3.sha256);
  });
});

Deno.test("code: the launcher runs the script with config and args from its dir, exit code kept", async () => {
  await withTemp(async (tmp) => {
    const repo = join(tmp, "repo");
    write(join(repo, "src", "mypkg", "__init__.py"), "");
    write(join(repo, "src", "mypkg", "helper.py"), "VALUE = 123\n");
    write(
      join(repo, "recipes", "train.py"),
      `import json, os, sys
from mypkg.helper import VALUE
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "value": VALUE,
                  "config": open(sys.argv[2]).read()}))
sys.exit(3)
`,
    );
    await git(repo, "init", "-q");
    const pkg = await packageCode({
      script: { path: join(repo, "recipes", "train.py") },
      trainConfig: "model: tiny\n",
      jobDir: join(tmp, "job"),
      cwd: repo,
    });
    assert.equal(pkg.commit, undefined); // no commit yet: nothing to record
    assert.equal(pkg.commitFile, undefined);
    const code = join(tmp, "code");
    Deno.mkdirSync(code);
    await run(tmp, "tar", "-xzf", pkg.tarball, "-C", code);
    const out = await new Deno.Command("/usr/bin/python3", {
      args: [join(code, "main.py"), "--flag", "it's $x"],
      cwd: tmp,
    }).output();
    assert.equal(out.code, 3, new TextDecoder().decode(out.stderr));
    const got = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(got, {
      argv: ["--config", join(code, "config.yaml"), "--flag", "it's $x"],
      cwd: code,
      value: 123,
      config: "model: tiny\n",
    });
  });
});

Deno.test("code: outside a git checkout the recipe's own directory ships", async () => {
  await withTemp(async (tmp) => {
    const dir = join(tmp, "recipe");
    write(join(dir, "train.py"), "from helper import VALUE\nprint(VALUE)\n");
    write(join(dir, "helper.py"), "VALUE = 7\n");
    write(join(dir, "data", "x.txt"), "x\n");
    write(join(dir, "__pycache__", "helper.cpython-311.pyc"), "junk");
    write(join(tmp, "elsewhere", "other.py"), "not shipped\n");
    const pkg = await packageCode({
      script: { path: join(dir, "train.py") },
      trainConfig: "a: 1\n",
      jobDir: join(dir, "job"), // inside the recipe dir: must not ship itself
      cwd: join(tmp, "elsewhere"),
    });
    assert.equal(pkg.source, "directory");
    assert.equal(pkg.commitFile, undefined);
    const m = await members(pkg.tarball);
    assert.deepEqual([...m.keys()], [
      "config.yaml",
      "data/x.txt",
      "helper.py",
      "main.py",
      "train.py",
    ]);
    const code = join(tmp, "code");
    Deno.mkdirSync(code);
    await run(tmp, "tar", "-xzf", pkg.tarball, "-C", code);
    assert.equal(await run(tmp, "/usr/bin/python3", join(code, "main.py")), "7\n");
  });
});

Deno.test("code: vector 3.6 — src/ package, excluded dirs, output ends with 123", async () => {
  await withTemp(async (tmp) => {
    const repo = join(tmp, "repo");
    write(join(repo, "src/nemotron/__init__.py"), "");
    write(join(repo, "src/nemotron/helper.py"), "VALUE = 123\n");
    write(
      join(repo, "src/nemotron/train.py"),
      `import argparse
from nemotron.helper import VALUE
p = argparse.ArgumentParser()
p.add_argument("--config")
args = p.parse_args()
print("config", args.config)
print(VALUE)
`,
    );
    write(join(repo, "usage-cookbook/x.txt"), "x\n");
    write(join(repo, "use-case-examples/y.txt"), "y\n");
    await git(repo, "init", "-q");
    const pkg = await packageCode({
      script: { path: join(repo, "src/nemotron/train.py") },
      trainConfig: "a: 1\n",
      jobDir: join(tmp, "out"),
      cwd: repo,
      excludeDirs: ["usage-cookbook", "use-case-examples"],
    });
    const names = [...(await members(pkg.tarball)).keys()];
    for (const n of ["main.py", "config.yaml", "src/nemotron/helper.py"]) {
      assert.ok(names.includes(n), n);
    }
    assert.ok(
      !names.some((n) => n.startsWith("usage-cookbook/") || n.startsWith("use-case-examples/")),
    );
    const code = join(tmp, "code");
    Deno.mkdirSync(code);
    await run(tmp, "tar", "-xzf", pkg.tarball, "-C", code);
    const out = await run(code, "/usr/bin/python3", "main.py", "--config", "config.yaml");
    assert.ok(out.trimEnd().endsWith("123"), out);
  });
});

Deno.test("code: an embedded script outside any checkout ships alone; reserved names refused", async () => {
  await withTemp(async (tmp) => {
    const pkg = await packageCode({
      script: { arcname: "recipes/demo/train.py", text: "print('demo')\n" },
      extraFiles: [{ arcname: "recipes/demo/util.py", text: "U = 1\n" }],
      trainConfig: "a: 1\n",
      jobDir: join(tmp, "job"),
      cwd: tmp,
    });
    assert.equal(pkg.source, "script");
    const m = await members(pkg.tarball);
    assert.deepEqual([...m.keys()], [
      "config.yaml",
      "main.py",
      "recipes/demo/train.py",
      "recipes/demo/util.py",
    ]);
    await assert.rejects(
      packageCode({
        script: { arcname: "main.py", text: "" },
        trainConfig: "",
        jobDir: join(tmp, "job2"),
        cwd: tmp,
      }),
      (err) => err instanceof UsageError && /cannot be shipped as main.py/.test(err.message),
    );
  });
});

Deno.test("code: a submodule whose recorded commit is missing is a usage error, nothing written", async () => {
  await withTemp(async (tmp) => {
    const sub = join(tmp, "sub");
    write(join(sub, "lib.py"), "one\n");
    await git(sub, "init", "-q");
    await git(sub, "add", ".");
    await git(sub, "commit", "-qm", "c1");
    const repo = join(tmp, "repo");
    write(join(repo, "top.py"), "top\n");
    await git(repo, "init", "-q");
    await git(repo, "submodule", "add", "-q", sub, "ext/sub");
    const missing = "0123456789abcdef0123456789abcdef01234567";
    await git(repo, "update-index", "--cacheinfo", `160000,${missing},ext/sub`);
    const jobDir = join(tmp, "job");
    await assert.rejects(
      packageCode({ script: { arcname: "r/t.py", text: "" }, trainConfig: "", jobDir, cwd: repo }),
      (err) =>
        err instanceof UsageError &&
        err.message.includes(`submodule ext/sub: the commit the parent records (${missing})`) &&
        /git submodule update --init --recursive/.test(err.hint ?? ""),
    );
    // Not even the job dir is created: planning writes nothing.
    assert.throws(() => Deno.statSync(jobDir), Deno.errors.NotFound);
  });
});

// ---- the deny list: one test per entry, tracked or untracked, whatever .gitignore says ----

/** A checkout holding `files` (some committed, the rest untracked); returns the package members. */
async function packageWith(
  tmp: string,
  files: Record<string, string>,
  opts: { track?: boolean; envFile?: string; remoteJobDir?: string; jobDir?: string } = {},
) {
  const repo = join(tmp, "repo");
  write(join(repo, "keep.py"), "kept\n");
  for (const [rel, text] of Object.entries(files)) write(join(repo, rel), text);
  await git(repo, "init", "-q");
  // `.gitignore` un-ignores everything: the deny list does not depend on it.
  write(join(repo, ".gitignore"), "!*\n");
  if (opts.track) {
    await git(repo, "add", "-f", ".");
    await git(repo, "commit", "-qm", "with secrets");
  }
  const pkg = await packageCode({
    script: { arcname: "r/t.py", text: "" },
    trainConfig: "x: 1\n",
    jobDir: opts.jobDir ?? join(tmp, "job"),
    cwd: repo,
    envFile: opts.envFile,
    remoteJobDir: opts.remoteJobDir,
  });
  return { repo, pkg, names: [...(await members(pkg.tarball)).keys()] };
}

const DENIED: [string, string, RegExp][] = [
  ["env.toml", "[p]\nenv_vars = { MY_API_KEY = 's' }\n", /env\.toml/],
  ["conf/env.toml", "[p]\n", /env\.toml/],
  [".env", "DB_PASS=s\n", /dotenv/],
  ["app/.env.local", "DB_PASS=s\n", /dotenv/],
  [".netrc", "machine h login u password s\n", /netrc/],
  [".git-credentials", "https://u:s@example.com\n", /git credentials/],
  ["certs/client.pem", "-----BEGIN CERTIFICATE-----\n", /PEM/],
  ["id_rsa", "key\n", /SSH private key/],
  ["keys/id_ed25519", "key\n", /SSH private key/],
  ["id_ecdsa_sk", "key\n", /SSH private key/],
  ["deploy/robot", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n", /private key \(by content\)/],
  ["deploy/tls.key", "-----BEGIN RSA PRIVATE KEY-----\nMII\n", /private key \(by content\)/],
  [".nemotron-secrets/0123.env", "export MY_API_KEY=s\n", /secrets directory/],
  [".nemotron-secrets-1000/0123.env", "export MY_API_KEY=s\n", /secrets directory/],
  [".nemotron/jobs/20260101-demo-data-abc/job.yaml", "api_key: s\n", /local job directory/],
];

for (const [rel, text, reason] of DENIED) {
  for (const track of [false, true]) {
    Deno.test(`code: deny list — ${rel} never ships (${track ? "tracked" : "untracked"})`, async () => {
      await withTemp(async (tmp) => {
        const { pkg, names } = await packageWith(tmp, { [rel]: text }, { track });
        assert.ok(names.includes("keep.py"), names.join(" "));
        assert.ok(!names.includes(rel), `${rel} shipped`);
        const top = rel.startsWith(".nemotron") ? rel.split("/")[0] + "/" : rel;
        const x = pkg.excluded.find((e) => e.path === top);
        assert.ok(x, JSON.stringify(pkg.excluded));
        assert.match(x.reason, reason);
      });
    });
  }
}

Deno.test("code: deny list — public keys and look-alike names still ship", async () => {
  await withTemp(async (tmp) => {
    const files = {
      "id_rsa.pub": "ssh-rsa AAAA\n",
      "src/id_mapping.py": "x = 1\n",
      "docs/env.toml.example": "[p]\n",
      "environment.yaml": "a: 1\n",
      "src/pem_utils.py": "x = 1\n",
    };
    const { pkg, names } = await packageWith(tmp, files);
    for (const f of Object.keys(files)) assert.ok(names.includes(f), `${f} left out`);
    assert.deepEqual(pkg.excluded, []);
  });
});

Deno.test("code: deny list — the env.toml nemotron read, whatever its name", async () => {
  await withTemp(async (tmp) => {
    const { pkg, names, repo } = await packageWith(tmp, { "cluster-profiles.toml": "[p]\n" }, {
      envFile: join(tmp, "repo", "cluster-profiles.toml"),
    });
    assert.ok(!names.includes("cluster-profiles.toml"));
    assert.deepEqual(pkg.excluded, [
      { path: "cluster-profiles.toml", reason: "the env.toml nemotron read" },
    ]);
    assert.ok(repo);
  });
});

Deno.test("code: deny list — remote_job_dir and the job dir inside the checkout", async () => {
  await withTemp(async (tmp) => {
    const rjd = join(tmp, "repo", "runs");
    const files = {
      "runs/jobs/old-job/code/main.py": "old\n",
      "runs/.nemotron-secrets/ab.env": "export X_TOKEN=s\n",
      "runs/jobs/this/stale.txt": "x\n",
    };
    const { pkg, names } = await packageWith(tmp, files, {
      remoteJobDir: rjd,
      jobDir: join(rjd, "jobs", "this"),
    });
    assert.ok(names.every((n) => !n.startsWith("runs/")), names.join(" "));
    assert.deepEqual(pkg.excluded.map((e) => e.path).sort(), ["runs/", "runs/jobs/this/"].sort());
  });
});

Deno.test("code: deny list — NEMOTRON_HOME inside the checkout", async () => {
  await withTemp(async (tmp) => {
    const saved = Deno.env.get("NEMOTRON_HOME");
    Deno.env.set("NEMOTRON_HOME", join(tmp, "repo", "state"));
    try {
      const { pkg, names } = await packageWith(tmp, { "state/jobs.db": "SQLite" });
      assert.ok(!names.includes("state/jobs.db"));
      assert.deepEqual(pkg.excluded.map((e) => e.path), ["state/"]);
    } finally {
      if (saved === undefined) Deno.env.delete("NEMOTRON_HOME");
      else Deno.env.set("NEMOTRON_HOME", saved);
    }
  });
});

Deno.test("code: deny list — outside a checkout the script's directory is filtered too", async () => {
  await withTemp(async (tmp) => {
    const dir = join(tmp, "plain");
    write(join(dir, "train.py"), "print(1)\n");
    write(join(dir, ".env"), "DB_PASS=s\n");
    write(join(dir, "id_rsa"), "key\n");
    write(join(dir, ".nemotron", "jobs", "j", "job.yaml"), "api_key: s\n");
    write(join(dir, "data", "ok.txt"), "ok\n");
    const pkg = await packageCode({
      script: { path: join(dir, "train.py") },
      trainConfig: "",
      jobDir: join(tmp, "job"),
      cwd: dir,
    });
    assert.equal(pkg.source, "directory");
    const names = [...(await members(pkg.tarball)).keys()];
    assert.deepEqual(names, ["config.yaml", "data/ok.txt", "main.py", "train.py"]);
    assert.deepEqual(pkg.excluded.map((e) => e.path).sort(), [".env", ".nemotron/", "id_rsa"]);
  });
});

// ---- modes ----

Deno.test("code: owner-only files stay owner-only in the archive and in the extracted code", async () => {
  await withTemp(async (tmp) => {
    const repo = join(tmp, "repo");
    write(join(repo, "public.txt"), "p\n", 0o644);
    write(join(repo, "run.sh"), "#!/bin/sh\n", 0o755);
    write(join(repo, "private.txt"), "secret-ish\n");
    Deno.chmodSync(join(repo, "private.txt"), 0o600);
    write(join(repo, "group.txt"), "g\n");
    Deno.chmodSync(join(repo, "group.txt"), 0o640);
    write(join(repo, "tool.sh"), "#!/bin/sh\n");
    Deno.chmodSync(join(repo, "tool.sh"), 0o700);
    await git(repo, "init", "-q");
    const pkg = await packageCode({
      script: { arcname: "r/t.py", text: "" },
      trainConfig: "wandb: {api_key: k}\n",
      jobDir: join(tmp, "job"),
      cwd: repo,
    });
    const m = await members(pkg.tarball);
    const modes = Object.fromEntries([...m].map(([k, v]) => [k, v.mode]));
    assert.deepEqual(modes, {
      "config.yaml": 0o600,
      "group.txt": 0o600,
      "main.py": 0o755,
      "private.txt": 0o600,
      "public.txt": 0o644,
      "r/t.py": 0o644,
      "run.sh": 0o755,
      "tool.sh": 0o700,
    });
    assert.equal(Deno.statSync(pkg.tarball).mode! & 0o777, 0o600);
    // GNU tar as a normal user applies the umask to these modes; as root it keeps them.
    const out = join(tmp, "out");
    Deno.mkdirSync(out);
    await run(tmp, "tar", "-xzf", pkg.tarball, "-C", out);
    assert.equal(Deno.statSync(join(out, "private.txt")).mode! & 0o077, 0);
    assert.equal(Deno.statSync(join(out, "config.yaml")).mode! & 0o077, 0);
    assert.equal(Deno.statSync(join(out, "tool.sh")).mode! & 0o077, 0);
  });
});

Deno.test("code: a symlink to a file outside the checkout ships as a link, never its content", async () => {
  await withTemp(async (tmp) => {
    const outside = join(tmp, "home", ".ssh", "id_rsa_like");
    write(outside, "OUTSIDE-CONTENT\n");
    const repo = join(tmp, "repo");
    write(join(repo, "a.py"), "a\n");
    Deno.mkdirSync(join(repo, "assets"));
    Deno.symlinkSync(outside, join(repo, "assets", "x"));
    await git(repo, "init", "-q");
    const pkg = await packageCode({
      script: { arcname: "r/t.py", text: "" },
      trainConfig: "",
      jobDir: join(tmp, "job"),
      cwd: repo,
    });
    const m = await members(pkg.tarball);
    assert.equal(m.get("assets/x")?.type, "2");
    assert.equal(m.get("assets/x")?.link, outside);
    for (const v of m.values()) assert.ok(!(v.data ?? "").includes("OUTSIDE-CONTENT"));
  });
});

// ---- size guard ----

Deno.test("code: size guard — over max_package_mb is a usage error listing the largest files; nothing written", async () => {
  await withTemp(async (tmp) => {
    const repo = join(tmp, "repo");
    write(join(repo, "small.py"), "x\n");
    write(join(repo, "data", "big.bin"), new Uint8Array(3 << 20));
    write(join(repo, "data", "mid.bin"), new Uint8Array(1 << 19));
    await git(repo, "init", "-q");
    const jobDir = join(tmp, "job");
    const plan = await planCodePackage({
      script: { arcname: "r/t.py", text: "" },
      trainConfig: "",
      jobDir,
      cwd: repo,
    });
    assert.ok(plan.totalBytes > 3 << 20);
    const err = usageErrorOf(() => checkPackageSize(plan, 2, false));
    assert.equal(err.exitCode, 2);
    assert.match(err.message, /would be 3\.5 MB, over the limit of 2 MB/);
    const lines = err.message.split("\n").slice(1).map((l) => l.trim());
    assert.deepEqual(lines.slice(0, 2), ["3.0 MB  data/big.bin", "0.5 MB  data/mid.bin"]);
    assert.ok(lines.length <= 10);
    assert.match(err.hint ?? "", /\.gitignore.*max_package_mb.*--force-package/s);
    assert.throws(() => Deno.statSync(jobDir), Deno.errors.NotFound);
    // Forced, or under a higher limit: fine.
    checkPackageSize(plan, 2, true);
    checkPackageSize(plan, 4, false);
    const pkg = await writeCodePackage(plan);
    assert.ok((await members(pkg.tarball)).has("data/big.bin"));
  });
});

Deno.test("code: size guard — only the 10 largest files are listed", async () => {
  await withTemp(async (tmp) => {
    const repo = join(tmp, "repo");
    for (let i = 1; i <= 12; i++) write(join(repo, `f${i}.bin`), new Uint8Array(i * 1024));
    await git(repo, "init", "-q");
    const plan = await planCodePackage({
      script: { arcname: "r/t.py", text: "" },
      trainConfig: "",
      jobDir: join(tmp, "job"),
      cwd: repo,
    });
    const err = usageErrorOf(() => checkPackageSize(plan, 0.01, false));
    const listed = err.message.split("\n").slice(1).map((l) => l.trim().split(/\s+/).pop());
    assert.deepEqual(listed, [
      "f12.bin",
      "f11.bin",
      "f10.bin",
      "f9.bin",
      "f8.bin",
      "f7.bin",
      "f6.bin",
      "f5.bin",
      "f4.bin",
      "f3.bin",
    ]);
  });
});

Deno.test("code: max_package_mb — default 100, a positive number, anything else refused", () => {
  assert.equal(maxPackageMb(undefined), 100);
  assert.equal(maxPackageMb({}), 100);
  assert.equal(maxPackageMb({ max_package_mb: 250 }), 250);
  assert.equal(maxPackageMb({ max_package_mb: 0.5 }), 0.5);
  for (const bad of [0, -1, "100", true]) {
    assert.equal(usageErrorOf(() => maxPackageMb({ max_package_mb: bad })).exitCode, 2);
  }
});

function usageErrorOf(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    return err;
  }
  assert.fail("expected a UsageError");
}

Deno.test("code: deny list — any nemotron job dir (another profile's remote_job_dir) is left out", async () => {
  await withTemp(async (tmp) => {
    const files = {
      "old-runs/jobs/k1/job.json": '{\n  "format": "nemotron-job/1",\n  "key": "k1"\n}\n',
      "old-runs/jobs/k1/configs/train.yaml": "wandb: {api_key: s}\n",
      "data/job.json": '{"format": "something-else"}\n',
    };
    const { pkg, names } = await packageWith(tmp, files);
    assert.ok(!names.some((n) => n.startsWith("old-runs/jobs/k1/")), names.join(" "));
    assert.ok(names.includes("data/job.json"));
    assert.deepEqual(pkg.excluded, [{ path: "old-runs/jobs/k1/", reason: "a nemotron job dir" }]);
  });
});

Deno.test("code: the diff next to the package leaves out changes to denied files", async () => {
  await withTemp(async (tmp) => {
    const repo = join(tmp, "repo");
    write(join(repo, "a.py"), "v1\n");
    write(join(repo, ".env"), "DB_PASS=old\n");
    write(join(repo, "conf", "env.toml"), "[p]\n");
    await git(repo, "init", "-q");
    await git(repo, "add", "-f", ".");
    await git(repo, "commit", "-qm", "one");
    write(join(repo, "a.py"), "v2\n");
    write(join(repo, ".env"), "DB_PASS=new-diff-secret\n");
    write(join(repo, "conf", "env.toml"), "[p]\nenv_vars = { X_TOKEN = 'toml-diff-secret' }\n");
    const pkg = await packageCode({
      script: { arcname: "r/t.py", text: "" },
      trainConfig: "",
      jobDir: join(tmp, "job"),
      cwd: repo,
    });
    const diff = Deno.readTextFileSync(pkg.diffFile!);
    assert.match(diff, /^\+v2$/m);
    assert.ok(!diff.includes("new-diff-secret") && !diff.includes("toml-diff-secret"), diff);
    assert.equal(Deno.statSync(pkg.diffFile!).mode! & 0o777, 0o600);
    assert.ok(pkg.dirty);
  });
});

Deno.test("code: a symlink to a fifo is shipped as a link and never opened", async () => {
  await withTemp(async (tmp) => {
    const repo = join(tmp, "repo");
    write(join(repo, "a.py"), "a\n");
    await run(tmp, "mkfifo", join(tmp, "pipe"));
    Deno.symlinkSync(join(tmp, "pipe"), join(repo, "link"));
    await git(repo, "init", "-q");
    const pkg = await packageCode({
      script: { arcname: "r/t.py", text: "" },
      trainConfig: "",
      jobDir: join(tmp, "job"),
      cwd: repo,
    });
    assert.equal((await members(pkg.tarball)).get("link")?.type, "2");
  });
});

Deno.test("code: config.format json/toml ships config.json/config.toml and the launcher passes it", async () => {
  await withTemp(async (tmp) => {
    for (const [format, name] of [["json", "config.json"], ["toml", "config.toml"]] as const) {
      const jobDir = join(tmp, `job-${format}`);
      const pkg = await packageCode({
        script: {
          arcname: "recipes/x/show.py",
          text: "import sys\nprint(sys.argv[1:])\nprint(open(sys.argv[2]).read())\n",
        },
        trainConfig: format === "json" ? '{"a": 1}\n' : "a = 1\n",
        configFormat: format,
        jobDir,
        cwd: tmp,
      });
      const m = await members(pkg.tarball);
      assert.deepEqual([...m.keys()], [name, "main.py", "recipes/x/show.py"]);
      const dir = join(tmp, `x-${format}`);
      Deno.mkdirSync(dir);
      const tar = await new Deno.Command("tar", { args: ["-xzf", pkg.tarball, "-C", dir] })
        .output();
      assert.equal(tar.code, 0);
      const out = await new Deno.Command("/usr/bin/python3", {
        args: [join(dir, "main.py"), "--mock"],
        stdout: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.ok(text.startsWith(`['--config', '${join(dir, name)}', '--mock']\n`), text);
      assert.ok(text.includes(format === "json" ? '{"a": 1}' : "a = 1"), text);
    }
  });
});
