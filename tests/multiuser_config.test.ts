/**
 * Multi-user attacks through settings files (issue 15 §1 env.toml discovery, §5 configs and
 * auto_mount), replayed by `nemotron-other` against `nemotron-victim` in a 1777 scratch dir
 * (tests/multiuser.ts). Each planted file would run `touch MARKER` as the victim; the assertion is
 * that the marker never appears. Controls show the same shell does run when it comes from the
 * victim's own env.toml, so a missing marker means the file was refused, not that nothing ran.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { exists, mkdirAs, multiuserTest, OTHER, VICTIM, writeAs } from "./multiuser.ts";

/** A local profile whose startup command creates `marker` (as whoever runs it). */
function localProfile(marker: string): string {
  return `[cluster]\nexecutor = "local"\nstartup_commands = ["touch ${marker}"]\n`;
}

multiuserTest(
  "multiuser: an env.toml another user planted in a 1777 parent is skipped, with a warning naming it",
  async (w) => {
    const proj = path.join(w.scratch, "proj");
    mkdirAs(w, VICTIM, proj);
    const marker = path.join(w.scratch, "pwned-envtoml");
    const planted = path.join(w.scratch, "env.toml");
    const r0 = await w.shAs(OTHER, `cat > env.toml <<'EOF'\n${localProfile(marker)}EOF`);
    assert.equal(r0.code, 0, r0.stderr);

    const list = await w.runAs(VICTIM, ["env", "list"], { cwd: proj });
    assert.match(
      list.stderr,
      new RegExp(`warning: ignoring ${planted}: it belongs to another user`),
    );
    assert.doesNotMatch(list.stdout, /cluster/);

    const run = await w.runAs(VICTIM, ["demo", "data", "-c", "tiny", "--run", "cluster"], {
      cwd: proj,
    });
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, /Profile 'cluster' not found/);
    assert.equal(exists(marker), false, "the planted startup command ran as the victim");

    // Control: the same profile in the victim's own project dir is used, and its command runs.
    writeAs(w, VICTIM, path.join(proj, "env.toml"), localProfile(marker));
    const own = await w.runAs(VICTIM, ["demo", "data", "-c", "tiny", "--run", "cluster"], {
      cwd: proj,
    });
    assert.equal(own.code, 0, own.stderr);
    assert.equal(exists(marker), true, "control: the victim's own startup command did not run");
  },
);

multiuserTest(
  "multiuser: a group/world-writable env.toml is skipped; the walk stops at $HOME",
  async (w) => {
    const marker = path.join(w.scratch, "pwned-writable");
    // The victim's own file, but writable by everyone: anyone could have edited it.
    const proj = path.join(w.scratch, "proj2");
    mkdirAs(w, VICTIM, proj);
    writeAs(w, VICTIM, path.join(proj, "env.toml"), localProfile(marker), 0o666);
    const r = await w.runAs(VICTIM, ["demo", "data", "-c", "tiny", "--run", "cluster"], {
      cwd: proj,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /warning: ignoring .*proj2\/env\.toml: it is writable by group or others/,
    );
    assert.equal(exists(marker), false);

    // Above $HOME: a (trusted, victim-owned) env.toml is not reached from inside the home dir.
    const above = path.join(w.scratch, "above");
    const home = path.join(above, "home");
    mkdirAs(w, VICTIM, path.join(home, "proj"));
    mkdirAs(w, VICTIM, above);
    writeAs(w, VICTIM, path.join(above, "env.toml"), localProfile(marker));
    const list = await w.runAs(VICTIM, ["env", "list"], {
      cwd: path.join(home, "proj"),
      env: { HOME: home },
    });
    assert.doesNotMatch(list.stdout, /cluster/, list.stdout);
    const fromAbove = await w.runAs(VICTIM, ["env", "list"], { cwd: above, env: { HOME: home } });
    assert.match(fromAbove.stdout, /cluster/, "control: the file is found from its own directory");
  },
);

multiuserTest(
  "multiuser: a config from another user cannot set setup_lines, startup_commands or sbatch_template",
  async (w) => {
    const marker = path.join(w.scratch, "pwned-config");
    const proj = path.join(w.scratch, "proj");
    mkdirAs(w, VICTIM, proj);
    writeAs(
      w,
      VICTIM,
      path.join(proj, "env.toml"),
      `[here]\nexecutor = "local"\n\n[cluster]\nexecutor = "slurm"\ncontainer_image = ""\n` +
        `remote_job_dir = "${path.join(proj, "rjd")}"\n`,
    );
    const cases: Record<string, string> = {
      "setup_lines": `run:\n  env:\n    setup_lines: "touch ${marker}"\n`,
      "startup_commands": `run:\n  env:\n    startup_commands: ["touch ${marker}"]\n`,
      "sbatch_template": `run:\n  env:\n    sbatch_template: /etc/passwd\n`,
    };
    for (const [key, yaml] of Object.entries(cases)) {
      const cfg = path.join(w.scratch, `${key}.yaml`);
      const put = await w.shAs(OTHER, `cat > ${cfg} <<'EOF'\n${yaml}EOF`);
      assert.equal(put.code, 0, put.stderr);
      for (const mode of [["--run", "here"], ["--batch", "cluster", "--dry-run"]]) {
        const r = await w.runAs(VICTIM, ["demo", "data", "-c", cfg, ...mode], { cwd: proj });
        assert.equal(r.code, 2, `${key} ${mode.join(" ")}: ${r.stdout}${r.stderr}`);
        assert.match(
          r.stderr,
          new RegExp(`${cfg}:\\d+:\\d+: error: run\\.env\\.${key} cannot be set in a config file`),
        );
        assert.match(r.stderr, /hint: .*env\.toml profile/);
        assert.doesNotMatch(r.stdout, /root:x:0:0/, "the dry run rendered /etc/passwd");
        assert.equal(exists(marker), false, `${key} from a config ran as the victim`);
      }
    }
    // The victim's own command line may still set them (they are the victim's own words).
    const own = await w.runAs(VICTIM, [
      "demo",
      "data",
      "-c",
      "tiny",
      "--run",
      "here",
      `run.env.startup_commands=["touch ${marker}"]`,
    ], { cwd: proj });
    assert.equal(own.code, 0, own.stderr);
    assert.equal(exists(marker), true, "control: a command-line startup command did not run");
  },
);

multiuserTest(
  "multiuser: an auto_mount URL that is a git option is refused before git runs",
  async (w) => {
    const marker = path.join(w.scratch, "pwned-git");
    const proj = path.join(w.scratch, "proj");
    mkdirAs(w, VICTIM, proj);
    writeAs(
      w,
      VICTIM,
      path.join(proj, "env.toml"),
      `[cluster]\nexecutor = "slurm"\ncontainer_image = ""\nremote_job_dir = "${
        path.join(proj, "rjd")
      }"\n`,
    );
    const cfg = path.join(w.scratch, "mount.yaml");
    const yaml = `defaults: ${path.join(proj, "base")}\nrun:\n  env:\n    mounts:\n` +
      `      - "\${auto_mount:'git+--upload-pack=touch ${marker};false@main',/x}"\n`;
    const put = await w.shAs(OTHER, `cat > ${cfg} <<'EOF'\n${yaml}EOF`);
    assert.equal(put.code, 0, put.stderr);
    writeAs(w, VICTIM, path.join(proj, "base.yaml"), "max_documents: 1\n");
    const r = await w.runAs(VICTIM, ["demo", "data", "-c", cfg, "--batch", "cluster"], {
      cwd: proj,
    });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /auto_mount: URL '--upload-pack=.*' starts with '-'/);
    assert.equal(exists(marker), false, "git ran the injected --upload-pack as the victim");
    assert.equal(exists(path.join(proj, "rjd", "jobs")), false, "a job dir was written");
  },
);

multiuserTest(
  "multiuser: env.toml discovery does not climb out of a mounted filesystem",
  async (w) => {
    // A trusted (victim-owned) env.toml above a mount point is not reached from inside the mount.
    const marker = path.join(w.base, "unused");
    writeAs(w, VICTIM, path.join(w.base, "env.toml"), localProfile(marker));
    const mnt = path.join(w.base, "mnt");
    Deno.mkdirSync(mnt);
    const m = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
    })
      .output();
    if (!m.success) {
      console.log("SKIP mount boundary: cannot mount a tmpfs here");
      return;
    }
    try {
      mkdirAs(w, VICTIM, path.join(mnt, "proj"));
      const inside = await w.runAs(VICTIM, ["env", "list"], { cwd: path.join(mnt, "proj") });
      assert.doesNotMatch(inside.stdout, /cluster/, inside.stdout);
      // Control: from a directory on the same filesystem as the file, it is found.
      mkdirAs(w, VICTIM, path.join(w.base, "proj"));
      const same = await w.runAs(VICTIM, ["env", "list"], { cwd: path.join(w.base, "proj") });
      assert.match(same.stdout, /cluster/, same.stdout + same.stderr);
    } finally {
      await new Deno.Command("umount", { args: [mnt] }).output();
    }
  },
);
