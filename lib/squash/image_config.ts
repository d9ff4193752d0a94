/**
 * The image config written into the rootfs the way enroot's import does (enroot's documented image
 * format: `/etc/rc` is the container's command script, `/etc/fstab` its mounts, `/etc/environment`
 * its environment), so pyxis treats our `.sqsh` like one made by `enroot import`:
 * - `/etc/environment`: the config's `Env`, one `NAME=value` per line;
 * - `/etc/fstab`: each `Volumes` path as a bind mount of a directory from the container's own
 *   rootfs (`${ENROOT_ROOTFS}/PATH PATH none x-create=dir,bind,rw,nosuid,nodev`);
 * - `/etc/rc`: `Labels` as comments, then: create and enter `WorkingDir` (default `/`), source
 *   `/etc/rc.local`, and `exec` the `Entrypoint` with the start command's arguments, or with `Cmd`
 *   when there are none (no Entrypoint and no Cmd: `/bin/sh`), like docker combines them;
 * - `/etc/rc.local`: an empty hook (comments only);
 * - `WorkingDir` exists in the image.
 */
import { shellQuote } from "../shell.ts";
import type { ImageConfig } from "./manifest.ts";
import type { SyntheticFile } from "./merge.ts";

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, " ");
}

/** The files and directories enroot adds to an imported image. */
export function enrootConfigFiles(config: ImageConfig): { files: SyntheticFile[]; dirs: string[] } {
  const c = config.config ?? {};
  const env = (c.Env ?? []).map(oneLine);
  const volumes = Object.keys(c.Volumes ?? {});
  const labels = Object.entries(c.Labels ?? {});
  const entrypoint = [...(c.Entrypoint ?? [])];
  let cmd = [...(c.Cmd ?? [])];
  if (entrypoint.length === 0 && cmd.length === 0) cmd = ["/bin/sh"];
  const workdir = c.WorkingDir && c.WorkingDir !== "" ? c.WorkingDir : "/";
  const q = (words: string[]) => words.map(shellQuote).join(" ");
  const ep = entrypoint.length > 0 ? `${q(entrypoint)} ` : "";

  const rc: string[] = [];
  for (const [k, v] of labels) rc.push(`# ${oneLine(k)} ${oneLine(String(v))}`);
  if (labels.length > 0) rc.push("");
  rc.push(
    `mkdir -p ${shellQuote(workdir)} 2> /dev/null`,
    `cd ${shellQuote(workdir)} && unset OLDPWD || exit 1`,
    "",
    "if [ -s /etc/rc.local ]; then",
    "    . /etc/rc.local",
    "fi",
    "",
    "if [ $# -gt 0 ]; then",
    `    exec ${ep}"$@"`,
    "else",
    `    exec ${ep}${q(cmd)}`.trimEnd(),
    "fi",
  );
  const lines = (xs: string[]) => xs.length === 0 ? "" : xs.join("\n") + "\n";
  const files: SyntheticFile[] = [
    { path: "etc/rc", content: lines(rc), mode: 0o644 },
    {
      path: "etc/fstab",
      content: lines(
        volumes.map((v) => `\${ENROOT_ROOTFS}${v} ${v} none x-create=dir,bind,rw,nosuid,nodev`),
      ),
      mode: 0o644,
    },
    { path: "etc/environment", content: lines(env), mode: 0o644 },
    {
      path: "etc/rc.local",
      content: "# Sourced by /etc/rc when the container starts: a hook to adjust the command.\n",
      mode: 0o644,
    },
  ];
  return { files, dirs: workdir === "/" ? [] : [workdir] };
}
