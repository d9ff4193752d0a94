/**
 * Registry credentials, looked up the way enroot and docker users keep them:
 * 1. enroot's credentials file `$ENROOT_CONFIG_PATH/.credentials` (default
 *    `${XDG_CONFIG_HOME:-~/.config}/enroot/.credentials`), netrc format
 *    (`machine HOST login USER password PASS`). A password written as `$VAR` or `${VAR}` is read
 *    from the environment, as enroot evaluates it.
 * 2. `~/.docker/config.json` (`$DOCKER_CONFIG/config.json`), `auths` entries with `auth`
 *    (base64 `user:pass`) or `username`/`password`. Credential helpers are not run.
 * Machines match on the host without its port, like enroot; docker `auths` keys match on
 * `host[:port]`, with `https://index.docker.io/v1/` standing for Docker Hub.
 */
import { UsageError } from "../errors.ts";
import { DOCKER_HUB, splitRegistry } from "./reference.ts";

export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** Where they came from (a file path), for messages. Never the secret itself. */
  readonly origin: string;
}

export interface NetrcEntry {
  readonly machine: string;
  readonly login?: string;
  readonly password?: string;
  readonly line: number;
}

/** Parse netrc text (tokens separated by any whitespace; `default` entries are ignored). */
export function parseNetrc(text: string): NetrcEntry[] {
  const tokens: { word: string; line: number }[] = [];
  text.split("\n").forEach((l, i) => {
    const noComment = l.trimStart().startsWith("#") ? "" : l;
    for (const w of noComment.split(/\s+/)) if (w) tokens.push({ word: w, line: i + 1 });
  });
  const out: NetrcEntry[] = [];
  let cur: { machine: string; login?: string; password?: string; line: number } | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i].word;
    if (t === "machine" || t === "default") {
      if (cur) out.push(cur);
      cur = t === "machine"
        ? { machine: tokens[++i]?.word ?? "", line: tokens[i - 1].line }
        : undefined;
    } else if (cur && (t === "login" || t === "password")) {
      cur[t] = tokens[++i]?.word ?? "";
    } else if (cur && t === "account") {
      i++;
    }
  }
  if (cur) out.push(cur);
  return out;
}

function expandPassword(
  value: string,
  file: string,
  line: number,
  env: (k: string) => string | undefined,
): string {
  if (!value.startsWith("$")) return value;
  const m = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$/.exec(value);
  if (!m) {
    throw new UsageError(`unsupported password expression in ${file}`, {
      location: { file, line },
      hint: "write the password literally, or as $VAR / ${VAR} naming an environment variable",
    });
  }
  const name = m[1] ?? m[2];
  const v = env(name);
  if (v === undefined) {
    throw new UsageError(`environment variable ${name} (password in ${file}) is not set`, {
      location: { file, line },
      hint: `export ${name}=… before running, or write the password in the file`,
    });
  }
  return v;
}

/** Where enroot keeps its credentials file. */
export function enrootCredentialsPath(env: (k: string) => string | undefined): string | undefined {
  const configPath = env("ENROOT_CONFIG_PATH");
  if (configPath) return `${configPath}/.credentials`;
  const xdg = env("XDG_CONFIG_HOME");
  const home = env("HOME");
  if (xdg) return `${xdg}/enroot/.credentials`;
  return home ? `${home}/.config/enroot/.credentials` : undefined;
}

function readIfExists(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** The host part of a strictly parsed `host[:port]`; anything else is refused, never guessed. */
function hostOnly(registry: string): string {
  const parts = splitRegistry(registry);
  if (!parts) {
    throw new UsageError(`'${registry}' is not a registry host (HOST[:PORT])`, {
      hint: "credentials are looked up only for a well-formed registry host",
    });
  }
  return parts.host;
}

/**
 * Credentials for `registry` (and the login `user` from `docker://USER@…`, if given), or undefined
 * for anonymous access. A `user` with no entry anywhere is a UsageError.
 */
export function lookupCredentials(
  registry: string,
  user: string | undefined,
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
): Credentials | undefined {
  // Exactly the host the requests go to: `host` for netrc machines (enroot's rule), `host[:port]`
  // for docker's auths keys.
  const hosts = registry === DOCKER_HUB
    ? [DOCKER_HUB, "docker.io", "index.docker.io"]
    : [hostOnly(registry), registry.toLowerCase()];
  const netrcPath = enrootCredentialsPath(env);
  const netrcText = netrcPath ? readIfExists(netrcPath) : undefined;
  if (netrcPath && netrcText !== undefined) {
    for (const e of parseNetrc(netrcText)) {
      if (!hosts.includes(e.machine.toLowerCase())) continue;
      if (user !== undefined && e.login !== user) continue;
      if (e.login === undefined || e.password === undefined) continue;
      return {
        username: e.login,
        password: expandPassword(e.password, netrcPath, e.line, env),
        origin: netrcPath,
      };
    }
  }
  const dockerDir = env("DOCKER_CONFIG") ?? (env("HOME") ? `${env("HOME")}/.docker` : undefined);
  const dockerPath = dockerDir ? `${dockerDir}/config.json` : undefined;
  const dockerText = dockerPath ? readIfExists(dockerPath) : undefined;
  if (dockerPath && dockerText !== undefined) {
    let auths: Record<string, { auth?: string; username?: string; password?: string }> = {};
    try {
      auths = JSON.parse(dockerText).auths ?? {};
    } catch (e) {
      throw new UsageError(`${dockerPath} is not valid JSON: ${(e as Error).message}`, {
        location: { file: dockerPath },
      });
    }
    for (const [key, v] of Object.entries(auths)) {
      const keyHost = key.replace(/^https?:\/\//, "").replace(/\/.*$/, "").toLowerCase();
      if (!hosts.includes(keyHost)) continue;
      let username = v.username;
      let password = v.password;
      if (v.auth) {
        const dec = new TextDecoder().decode(Uint8Array.from(atob(v.auth), (c) => c.charCodeAt(0)));
        const i = dec.indexOf(":");
        if (i > 0) {
          username = dec.slice(0, i);
          password = dec.slice(i + 1);
        }
      }
      if (!username || password === undefined) continue;
      if (user !== undefined && username !== user) continue;
      return { username, password, origin: dockerPath };
    }
  }
  if (user !== undefined) {
    throw new UsageError(`no credentials for user '${user}' at ${registry}`, {
      hint: `add 'machine ${hostOnly(registry)} login ${user} password …' to ${
        netrcPath ?? "~/.config/enroot/.credentials"
      } or log in with docker so ~/.docker/config.json has it`,
    });
  }
  return undefined;
}
