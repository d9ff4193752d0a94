/**
 * Private files and code packages on a shared filesystem (issue 15 §3), replayed by the real user
 * `nemotron-other` against the real user `nemotron-victim` (tests/multiuser.ts). The victim's git
 * checkout and `remote_job_dir` sit in the shared 1777 scratch dir; the checkout holds a 0600
 * file with a secret, env.toml / .env / .netrc / .git-credentials (tracked or not), a local job dir
 * from an earlier local run (`.nemotron/`, job configs with secret values) and a symlink to the
 * victim's SSH key. The victim submits `demo data -c tiny --batch cluster` to the shared local
 * Slurm cluster (bare metal; the job sleeps and is cancelled). The other user then tries to read
 * the job dir, the code tarball and the extracted secret; the tar listing, read as the victim,
 * must keep the secret file 0600 and hold none of the deny-listed files.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import {
  mkdirAs,
  multiuserTest,
  OTHER,
  scancel,
  VICTIM,
  type World,
  writeAs,
} from "./multiuser.ts";

const SECRET = "victim-private-data-7f3a\n";
const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nvictim-ssh-key-91c2\n" +
  "-----END OPENSSH PRIVATE KEY-----\n";
/** Values of the deny-listed files: none may appear in any member of the package. */
const DENIED_VALUES = [
  "victim-api-key-5d1e",
  "hf_victim_dotenv_3b8c",
  "netrc-pass-66a0",
  "gitcred-token-c0de",
  "env-prod-token-aa11",
  "victim-ssh-key-91c2",
];

interface Member {
  readonly type: string;
  readonly mode: number;
  readonly link: string;
  readonly data: string | null;
}

/** name → member of a .tar.gz, read with Python's tarfile as `user`. */
async function members(w: World, user: string, tarball: string): Promise<Map<string, Member>> {
  const py = `
import json, sys, tarfile
out = {}
with tarfile.open(sys.argv[1], "r:gz") as t:
    for m in t.getmembers():
        data = t.extractfile(m).read().decode("latin-1") if m.isfile() else None
        out[m.name] = {"type": m.type.decode(), "mode": m.mode, "link": m.linkname, "data": data}
print(json.dumps(out))
`;
  const r = await w.shAs(user, `/usr/bin/python3 -c '${py}' ${tarball}`);
  assert.equal(r.code, 0, r.stderr);
  return new Map(Object.entries(JSON.parse(r.stdout)));
}

function filesUnder(dir: string, rel = ""): string[] {
  return [...Deno.readDirSync(path.join(dir, rel))].flatMap((e) => {
    const p = path.join(rel, e.name);
    return e.isDirectory ? filesUnder(dir, p) : [p];
  });
}

/** Whether a package path is one the deny list must keep out. */
function denied(name: string): boolean {
  const parts = name.split("/");
  const base = parts[parts.length - 1];
  return parts.includes(".nemotron") || base === "env.toml" || base === ".netrc" ||
    base === ".git-credentials" || base === ".env" || base.startsWith(".env.");
}

multiuserTest(
  "multiuser: a 0600 file of the victim's checkout stays owner-only in the job dir and package; env.toml/.env/.netrc never shipped",
  async (w) => {
    const rjd = path.join(w.scratch, "victim-rjd");
    const proj = path.join(w.scratch, "victim-proj");
    const ssh = path.join(w.home(VICTIM), ".ssh");
    mkdirAs(w, VICTIM, ssh, 0o700);
    writeAs(w, VICTIM, path.join(ssh, "id_rsa"), SSH_KEY, 0o600);
    // The victim's checkout and job base, made by the victim in the shared scratch dir.
    const made = await w.shAs(
      VICTIM,
      `mkdir ${rjd} ${proj} && cd ${proj} && git init -q && mkdir -p sub assets && ` +
        `printf 'public notes\\n' > notes.txt && ` +
        `printf '${SECRET.trim()}\\n' > secret.txt && chmod 600 secret.txt && ` +
        `printf 'HF_TOKEN=hf_victim_dotenv_3b8c\\n' > .env && ` +
        `printf 'machine example.com login v password netrc-pass-66a0\\n' > .netrc && ` +
        `chmod 600 .netrc && ` +
        `printf 'https://v:gitcred-token-c0de@example.com\\n' > .git-credentials && ` +
        `printf 'TOKEN=env-prod-token-aa11\\n' > sub/.env.production && ` +
        `printf '[x]\\nenv_vars = { MY_API_KEY = "victim-api-key-5d1e" }\\n' > sub/env.toml && ` +
        `ln -s ${ssh}/id_rsa assets/key && ` +
        `git add notes.txt .env sub/env.toml && ` +
        `git -c user.name=v -c user.email=v@example.com commit -q -m init`,
    );
    assert.equal(made.code, 0, made.stderr);
    writeAs(
      w,
      VICTIM,
      path.join(proj, "env.toml"),
      `[cluster]\nexecutor = "slurm"\ncontainer_image = ""\ntime = "00:10:00"\n` +
        `remote_job_dir = "${rjd}"\nstartup_commands = ["sleep 300"]\n` +
        `env_vars = { MY_API_KEY = "victim-api-key-5d1e" }\n`,
    );
    // An earlier local run leaves `.nemotron/jobs/…` (job configs) in the checkout.
    const local = await w.runAs(VICTIM, ["demo", "data", "-c", "tiny"], { cwd: proj });
    assert.equal(local.code, 0, local.stderr);
    assert.ok(filesUnder(path.join(proj, ".nemotron")).length > 0, "the local run left a job dir");

    const r = await w.runAs(
      VICTIM,
      ["demo", "data", "-c", "tiny", "--batch", "cluster", "--json"],
      {
        cwd: proj,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const job = JSON.parse(r.stdout).jobs[0] as { slurm_job_id: string; job_dir: string };
    try {
      const jd = job.job_dir;
      const tarball = path.join(jd, "code.tar.gz");
      assert.equal(Deno.statSync(jd).mode! & 0o777, 0o700, "the job dir is private");
      assert.equal(Deno.statSync(tarball).mode! & 0o777, 0o600, "the tarball is owner-only");
      assert.equal(Deno.statSync(tarball).uid, w.uid(VICTIM));
      const extracted = path.join(jd, "code", "secret.txt");
      assert.equal(Deno.readTextFileSync(extracted), SECRET);
      assert.equal(Deno.statSync(extracted).mode! & 0o777, 0o600, "code/secret.txt widened");

      // The other user's moves: each refused by the kernel.
      for (
        const [what, script] of [
          ["list the job dir", `ls ${jd}`],
          ["read the code tarball", `cat ${tarball} > /dev/null`],
          ["read the extracted secret", `cat ${extracted}`],
          ["read the extracted config", `cat ${jd}/code/config.yaml`],
        ]
      ) {
        const m = await w.shAs(OTHER, script);
        assert.notEqual(m.code, 0, `the other user could ${what}: ${m.stdout}`);
        assert.match(m.stderr, /Permission denied/, `${what}: ${m.stderr}`);
        assert.doesNotMatch(m.stdout, /victim-private-data/);
      }

      // The package, read as the victim: the secret keeps 0600, the public file is there
      // (control), the key stays a symlink, and no deny-listed file or value is inside.
      const tar = await members(w, VICTIM, tarball);
      assert.equal(tar.get("secret.txt")?.data, SECRET);
      assert.equal(tar.get("secret.txt")?.mode, 0o600, "the package widened the 0600 file");
      assert.equal(tar.get("notes.txt")?.mode, 0o644);
      assert.equal(tar.get("notes.txt")?.data, "public notes\n");
      assert.equal(tar.get("assets/key")?.type, "2", "the link to the SSH key was followed");
      assert.equal(tar.get("assets/key")?.link, path.join(ssh, "id_rsa"));
      assert.deepEqual([...tar.keys()].filter(denied), [], "a deny-listed file was packaged");
      for (const [name, m] of tar) {
        for (const v of DENIED_VALUES) {
          assert.ok(!(m.data ?? "").includes(v), `${name} holds ${v}`);
        }
      }
      // The same for what was unpacked into the job's code/ (read as root).
      const unpacked = filesUnder(path.join(jd, "code"));
      assert.ok(unpacked.includes("notes.txt"), "control: code/ holds the checkout");
      assert.deepEqual(unpacked.filter(denied), []);
    } finally {
      await scancel(job.slurm_job_id);
    }
  },
  { slurm: true },
);
