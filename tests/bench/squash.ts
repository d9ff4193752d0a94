/**
 * Squash benchmark: a generated image of ≥ 300 MB in 5 layers (copies of system directories,
 * plus a top layer that overwrites and whites out files) in the local registry. Measured in the
 * same run:
 *   ours  `nemotron squash` end to end (download into an empty cache, merge, mksquashfs -tar);
 *   (a)   `mksquashfs` alone on the merged rootfs, same options;
 *   (b)   `skopeo copy` + `umoci raw unpack` + `mksquashfs` (same options).
 * Targets: ours ≤ 1.15 × (a), ≤ 0.7 × (b); our process's peak RSS ≤ 150 MB (VmHWM, sampled;
 * mksquashfs is a separate process and not counted). Needs root, docker-registry, skopeo, umoci.
 */
const PORT = 5139;
const SQUASH_OPTS = [
  "-all-root",
  "-processors",
  String(navigator.hardwareConcurrency || 1),
  "-comp",
  "lzo",
  "-noD",
];
const REG = new URL("../../../shared/registry/", import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function sh(script: string, env: Record<string, string> = {}): Promise<string> {
  const o = await new Deno.Command("bash", {
    args: ["-euo", "pipefail", "-c", script],
    env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (o.code !== 0) throw new Error(`failed: ${script}\n${new TextDecoder().decode(o.stderr)}`);
  return new TextDecoder().decode(o.stdout).trim();
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Build the OCI layout with 5 gzip layers and push it; returns the uncompressed size in MB. */
async function buildImage(w: string): Promise<number> {
  const dirs = [
    "usr/bin",
    "usr/share/locale",
    "usr/lib/gcc",
    "usr/share/doc",
    "usr/lib/python3.11",
  ];
  await sh(`mkdir -p ${w}/oci/blobs/sha256 ${w}/top/usr/bin`);
  // Top layer: overwrite two files of layer 1 and white out a directory of layer 4.
  await sh(
    `cd ${w}/top && echo replaced > usr/bin/ls && echo replaced > usr/bin/cat && mkdir -p usr/share &&
    : > usr/share/.wh.doc`,
  );
  const layers: { digest: string; size: number; diff: string }[] = [];
  let raw = 0;
  const add = async (tarCmd: string) => {
    await sh(`${tarCmd} > ${w}/l.tar`);
    const [diff, rawSize] = (await sh(`sha256sum ${w}/l.tar | cut -c1-64; stat -c %s ${w}/l.tar`))
      .split("\n");
    await sh(`gzip -1 -c ${w}/l.tar > ${w}/l.tgz; rm ${w}/l.tar`);
    const [digest, size] = (await sh(`sha256sum ${w}/l.tgz | cut -c1-64; stat -c %s ${w}/l.tgz`))
      .split("\n");
    await Deno.rename(`${w}/l.tgz`, `${w}/oci/blobs/sha256/${digest}`);
    raw += Number(rawSize);
    layers.push({ digest, size: Number(size), diff });
  };
  for (const d of dirs) await add(`tar -C / --numeric-owner -cf - ${d}`);
  await add(`tar -C ${w}/top --numeric-owner -cf - usr`);
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/bin"], Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${l.diff}`) },
  }));
  const put = async (bytes: Uint8Array) => {
    const hex = [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource))]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    await Deno.writeFile(`${w}/oci/blobs/sha256/${hex}`, bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const cfg = await put(config);
  const manifest = await put(new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
    layers: layers.map((l) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: `sha256:${l.digest}`,
      size: l.size,
    })),
  })));
  await Deno.writeTextFile(`${w}/oci/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
  await Deno.writeTextFile(
    `${w}/oci/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "img" },
      }],
    }),
  );
  await sh(
    `skopeo copy -q --dest-tls-verify=false oci:${w}/oci:img docker://127.0.0.1:${PORT}/bench/img:1`,
  );
  return raw / 1e6;
}

/** Run `cmd`, sampling the peak RSS (VmHWM, KiB) of the process itself. */
async function runWithPeak(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ seconds: number; peakKiB: number }> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, { args, env, stdout: "null", stderr: "piped" }).spawn();
  let peak = 0;
  let done = false;
  const status = child.status.then((s) => {
    done = true;
    return s;
  });
  while (!done) {
    try {
      const m = /VmHWM:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${child.pid}/status`));
      if (m) peak = Math.max(peak, Number(m[1]));
    } catch { /* exited */ }
    await new Promise((r) => setTimeout(r, 25));
  }
  const s = await status;
  const err = new TextDecoder().decode(
    (await child.output().catch(() => ({ stderr: new Uint8Array() }))).stderr,
  );
  if (!s.success) throw new Error(`${cmd} failed: ${err}`);
  return { seconds: (performance.now() - t0) / 1000, peakKiB: peak };
}

export async function bench(): Promise<void> {
  for (const tool of ["docker-registry", "skopeo", "umoci", "mksquashfs"]) {
    if (
      (await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
        .output()).code !== 0
    ) {
      console.log(`squash bench skipped: ${tool} not installed`);
      return;
    }
  }
  const w = await Deno.makeTempDir({ prefix: "squash-bench-" });
  try {
    await sh(`${REG}start-local-registry.sh >/dev/null`, { LOCAL_REGISTRY_PORT: String(PORT) });
    const mb = await buildImage(w);
    console.log(`image: 5 gzip layers, ${mb.toFixed(0)} MB uncompressed`);
    await sh("sync");

    const ours = await runWithPeak(Deno.execPath(), [
      "run",
      "-A",
      MAIN,
      "squash",
      `127.0.0.1:${PORT}/bench/img:1`,
      "-o",
      `${w}/ours.sqsh`,
    ], {
      NEMOTRON_HOME: `${w}/home`,
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
    });
    await sh(`unsquashfs -q -n -d ${w}/rootfs ${w}/ours.sqsh >/dev/null`);
    await sh(
      `rm -f ${w}/rootfs/etc/rc ${w}/rootfs/etc/rc.local ${w}/rootfs/etc/fstab ${w}/rootfs/etc/environment`,
    );
    const a = await timed(() =>
      sh(
        `mksquashfs ${w}/rootfs ${w}/a.sqsh -noappend -no-progress ${
          SQUASH_OPTS.join(" ")
        } >/dev/null`,
      )
    );
    // (c) the floor of any streaming design: mksquashfs -tar reading a ready tar of the same tree.
    await sh(`tar -C ${w}/rootfs --numeric-owner -cf ${w}/rootfs.tar . && sync`);
    const c = await timed(() =>
      sh(
        `mksquashfs - ${w}/c.sqsh -tar -noappend -no-progress ${
          SQUASH_OPTS.join(" ")
        } < ${w}/rootfs.tar >/dev/null 2>&1`,
      )
    );
    await Deno.remove(`${w}/rootfs.tar`);
    const b = await timed(() =>
      sh(
        `skopeo copy -q --src-tls-verify=false docker://127.0.0.1:${PORT}/bench/img:1 oci:${w}/b:img &&
        umoci raw unpack --image ${w}/b:img ${w}/b-rootfs >/dev/null &&
        mksquashfs ${w}/b-rootfs ${w}/b.sqsh -noappend -no-progress ${
          SQUASH_OPTS.join(" ")
        } >/dev/null`,
      )
    );
    const sizes = await sh(`stat -c %s ${w}/ours.sqsh ${w}/a.sqsh ${w}/b.sqsh`);
    // Same tree as the reference chain? Types, modes, owners, names, link targets (sizes of
    // directories depend on inode order, times differ); our four enroot files left out.
    const list = (f: string) =>
      `unsquashfs -lln ${f} | awk '{$3=$4=$5=""; print}' | grep -Ev 'squashfs-root/etc(/rc|/fstab|/environment|/rc.local)?$'`;
    const diff = await sh(
      `diff <(${list(`${w}/ours.sqsh`)}) <(${list(`${w}/b.sqsh`)}) | head -20 || true`,
    );
    console.log(
      `tree of ours (minus /etc/rc etc.) vs the skopeo+umoci chain: ${
        diff === "" ? "same" : `DIFFERENT:\n${diff}`
      }`,
    );
    console.log(
      `ours (end to end, empty cache): ${ours.seconds.toFixed(2)} s, peak RSS ${
        (ours.peakKiB / 1024).toFixed(0)
      } MiB (target ≤ 150)`,
    );
    console.log(
      `(a) mksquashfs alone on the merged rootfs: ${a.toFixed(2)} s → ours/(a) = ${
        (ours.seconds / a).toFixed(2)
      } (target ≤ 1.15)`,
    );
    console.log(
      `(c) mksquashfs -tar from a ready tar file:  ${c.toFixed(2)} s → ours/(c) = ${
        (ours.seconds / c).toFixed(2)
      }`,
    );
    console.log(
      `(b) skopeo + umoci unpack + mksquashfs:    ${b.toFixed(2)} s → ours/(b) = ${
        (ours.seconds / b).toFixed(2)
      } (target ≤ 0.70)`,
    );
    console.log(
      `output sizes (bytes): ours ${
        sizes.split("\n").join(", (a) ").replace(/, \(a\) (\d+)$/, ", (b) $1")
      }`,
    );
  } finally {
    await sh(`${REG}stop-local-registry.sh 2>/dev/null || true`, {
      LOCAL_REGISTRY_PORT: String(PORT),
      LOCAL_REGISTRY_PURGE: "1",
    });
    await Deno.remove(w, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await bench();
