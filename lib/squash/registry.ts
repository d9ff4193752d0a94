/**
 * A Registry HTTP API v2 client on `fetch`: anonymous, Bearer-token (Www-Authenticate challenge)
 * and Basic auth; manifests and blobs; retries with backoff for transient failures.
 *
 * - HTTPS always, except plain HTTP for loopback registries (127.0.0.0/8, ::1, localhost) or when
 *   the caller allows it (`--allow-http`).
 * - Proxies: Deno's `fetch` honours HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment.
 * - Redirects (blob storage on a CDN) are followed by hand so the registry's Authorization header
 *   is never sent to another origin, and an auth challenge (401) is answered only when it comes
 *   from the registry's own origin: a redirect target asking for credentials gets none.
 * - Redirects and Bearer token realms must be https (http only where plain HTTP is allowed, see
 *   above); `file:` and every other scheme are refused.
 * - Bodies read into memory (manifests, tokens, error texts) are capped: a server that sends an
 *   endless body gets a clear error, not an exhausted login node.
 */
import { RuntimeFailure } from "../errors.ts";
import type { Credentials } from "./credentials.ts";
import { splitRegistry } from "./reference.ts";

/** Largest manifest, index or image config accepted (real ones are a few KiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Largest token-server response accepted. */
export const MAX_TOKEN_BYTES = 1024 * 1024;
/** How much of an error response is read for its message. */
const MAX_ERROR_BYTES = 64 * 1024;

/**
 * The body of `res`, refusing more than `limit` bytes (by Content-Length, or while reading). A
 * transport error while reading is a TransientError (retried); too much is a RuntimeFailure.
 */
export async function readBodyCapped(
  res: Response,
  limit: number,
  what: string,
): Promise<Uint8Array> {
  const tooBig = () =>
    new RuntimeFailure(`${what} is larger than ${limit} bytes: refused`, {
      hint: "the server sent far more than such a document ever is; check the registry URL",
    });
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > limit) {
    await res.body?.cancel();
    throw tooBig();
  }
  if (!res.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        throw new TransientError(`${what}: body cut short: ${(e as Error).message}`);
      }
      if (r.done) break;
      total += r.value.length;
      if (total > limit) throw tooBig();
      parts.push(r.value);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

async function errorText(res: Response): Promise<string> {
  try {
    return new TextDecoder().decode(await readBodyCapped(res, MAX_ERROR_BYTES, "error response"));
  } catch {
    return "";
  }
}

/** Every manifest type we understand; the registry README shows why all of them must be listed. */
export const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

export interface RetryPolicy {
  /** Attempts in total (≥ 1). */
  readonly attempts: number;
  /** First backoff delay in ms; doubled each time, with ±25 % jitter. */
  readonly baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500 };

/** A failure worth retrying (network error, 5xx, 429, a body cut short). */
export class TransientError extends Error {}

export function isLoopbackHost(registry: string): boolean {
  const host = registry.startsWith("[")
    ? registry.slice(1, registry.indexOf("]"))
    : registry.replace(/:\d+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Refuse a URL nemotron was told to go to (a redirect, a token realm) unless it is https, or
 * plain http to a loopback host or with `allowHttp`. `file:`, `data:` and any other scheme are
 * always refused.
 */
export function checkRemoteUrl(url: URL, what: string, allowHttp: boolean): void {
  if (url.protocol === "https:") return;
  if (url.protocol === "http:") {
    if (allowHttp || isLoopbackHost(url.host)) return;
    throw new RuntimeFailure(`${what} uses plain HTTP (${url.origin})`, {
      hint: "pass --allow-http if that is intended",
    });
  }
  throw new RuntimeFailure(`${what} has the URL scheme '${url.protocol}': refused`, {
    hint: "registries and token servers are reached only over https (or http where allowed)",
  });
}

/** Run `fn` with retries on TransientError, backing off exponentially. */
export async function withRetry<T>(
  what: string,
  policy: RetryPolicy,
  fn: (attempt: number) => Promise<T>,
  onRetry?: (message: string) => void,
): Promise<T> {
  let last: unknown;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!(e instanceof TransientError)) throw e;
      last = e;
      if (attempt === policy.attempts) break;
      const delay = policy.baseDelayMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);
      onRetry?.(
        `${what}: ${(e as Error).message}; retrying in ${(delay / 1000).toFixed(1)} s (${attempt}/${
          policy.attempts - 1
        })`,
      );
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  throw new RuntimeFailure(
    `${what} failed after ${policy.attempts} attempts: ${(last as Error).message}`,
    {
      hint: "check that the registry is reachable (and HTTPS_PROXY / NO_PROXY if you need a proxy)",
    },
  );
}

/** Parse a `Www-Authenticate` header: scheme + parameters. */
export function parseWwwAuthenticate(
  header: string,
): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\S+)\s*(.*)$/.exec(header);
  const scheme = m ? m[1] : "";
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m?.[2] ?? "")) !== null) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3];
  }
  return { scheme, params };
}

function registryErrorText(body: string): string {
  try {
    const j = JSON.parse(body);
    if (Array.isArray(j.errors) && j.errors.length > 0) {
      return j.errors.map((e: { code?: string; message?: string }) =>
        `${e.code ?? "?"}: ${e.message ?? ""}`
      )
        .join("; ");
    }
  } catch { /* not JSON */ }
  return body.slice(0, 200).trim();
}

function basic(c: Credentials): string {
  const bytes = new TextEncoder().encode(`${c.username}:${c.password}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

export interface RegistryClientOptions {
  readonly credentials?: Credentials;
  readonly allowHttp?: boolean;
  readonly retry?: RetryPolicy;
  readonly onRetry?: (message: string) => void;
}

/** Docker Hub's registry and its token service: the one cross-host pair credentials may cross. */
const DOCKER_HUB_TOKEN_HOSTS: Readonly<Record<string, string>> = {
  "registry-1.docker.io": "auth.docker.io",
};

/**
 * Whether the credentials stored for `registry` may go to the token `realm` its challenge names:
 * only when the realm is on the same host, or is Docker Hub's own token service.
 */
export function realmMayGetCredentials(registry: string, realm: URL): boolean {
  const host = splitRegistry(registry)?.host;
  if (!host) return false;
  return realm.hostname === host || DOCKER_HUB_TOKEN_HOSTS[host] === realm.hostname;
}

/** One registry + repository, with its auth state. */
export class RegistryClient {
  readonly registry: string;
  readonly repository: string;
  readonly baseUrl: string;
  readonly retry: RetryPolicy;
  #creds?: Credentials;
  #auth?: string;
  #allowHttp: boolean;
  /** Told about each retry (for warnings). */
  readonly onRetry?: (message: string) => void;

  constructor(registry: string, repository: string, options: RegistryClientOptions = {}) {
    this.registry = registry;
    this.repository = repository;
    this.#allowHttp = options.allowHttp ?? false;
    const parts = splitRegistry(registry);
    const http = isLoopbackHost(registry) || this.#allowHttp;
    this.baseUrl = `${http ? "http" : "https"}://${registry}`;
    // The host the requests go to is the host credentials were looked up for, exactly.
    if (!parts || new URL(this.baseUrl).hostname !== parts.host) {
      throw new RuntimeFailure(`'${registry}' is not a registry host (HOST[:PORT])`);
    }
    this.#creds = options.credentials;
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.onRetry = options.onRetry;
  }

  /** GET (or HEAD) `path` under /v2/<repo>/, authenticating on a 401. Returns a 2xx/206 response. */
  async get(path: string, headers: Record<string, string> = {}, method = "GET"): Promise<Response> {
    const url = `${this.baseUrl}/v2/${this.repository}/${path}`;
    let { res, from } = await this.#send(url, headers, method);
    if (res.status === 401) {
      const challenge = res.headers.get("www-authenticate");
      await res.body?.cancel();
      if (from.origin !== new URL(this.baseUrl).origin) {
        throw new RuntimeFailure(
          `${from.origin} (where ${this.registry} redirected ${method} ${path}) asks for ` +
            "authentication: refused",
          {
            hint: `credentials are only ever sent to ${this.registry} and the token server its ` +
              "own challenge names; the registry's storage must serve redirected blobs without them",
          },
        );
      }
      if (!challenge) throw new RuntimeFailure(`${url}: 401 without a Www-Authenticate challenge`);
      await this.#authenticate(challenge, url);
      ({ res, from } = await this.#send(url, headers, method));
      if (res.status === 401) {
        const body = await errorText(res);
        throw new RuntimeFailure(
          `not authorized to pull ${this.registry}/${this.repository}: ${registryErrorText(body)}`,
          { hint: this.#credsHint() },
        );
      }
    }
    if (res.status >= 200 && res.status < 300) return res;
    const body = await errorText(res);
    const text = `${method} ${url}: HTTP ${res.status} ${registryErrorText(body)}`;
    if (res.status >= 500 || res.status === 429 || res.status === 408) {
      throw new TransientError(text);
    }
    if (res.status === 404) {
      throw new RuntimeFailure(text, { hint: "check the image name and tag (or digest)" });
    }
    throw new RuntimeFailure(text);
  }

  #credsHint(): string {
    return this.#creds
      ? `the credentials from ${this.#creds.origin} were rejected`
      : `add credentials for ${this.registry} to ~/.config/enroot/.credentials ` +
        "(machine HOST login USER password PASS) or ~/.docker/config.json";
  }

  /** Send, following redirects by hand; `from` is the URL that gave the final response. */
  async #send(
    url: string,
    headers: Record<string, string>,
    method: string,
  ): Promise<{ res: Response; from: URL }> {
    let current = url;
    for (let hop = 0; hop < 6; hop++) {
      const sameOrigin = new URL(current).origin === new URL(this.baseUrl).origin;
      const h: Record<string, string> = { "User-Agent": "nemotron-squash", ...headers };
      if (sameOrigin && this.#auth) h.Authorization = this.#auth;
      let res: Response;
      try {
        res = await fetch(current, { method, headers: h, redirect: "manual" });
      } catch (e) {
        throw new TransientError(`${method} ${current}: ${(e as Error).message}`);
      }
      if (res.status >= 300 && res.status < 400 && res.headers.get("location")) {
        await res.body?.cancel();
        let next: URL;
        try {
          next = new URL(res.headers.get("location")!, current);
        } catch {
          throw new RuntimeFailure(`${current} redirects to an invalid URL`);
        }
        checkRemoteUrl(next, `the redirect from ${current}`, this.#allowHttp);
        current = next.href;
        continue;
      }
      return { res, from: new URL(current) };
    }
    throw new RuntimeFailure(`${url}: too many redirects`);
  }

  async #authenticate(challenge: string, url: string): Promise<void> {
    const { scheme, params } = parseWwwAuthenticate(challenge);
    if (scheme.toLowerCase() === "basic") {
      if (!this.#creds) {
        throw new RuntimeFailure(`${this.registry} requires credentials (Basic auth)`, {
          hint: this.#credsHint(),
        });
      }
      this.#auth = basic(this.#creds);
      return;
    }
    if (scheme.toLowerCase() !== "bearer") {
      throw new RuntimeFailure(`${url}: unsupported authentication scheme '${scheme}'`);
    }
    const realm = params.realm;
    if (!realm) throw new RuntimeFailure(`${url}: Bearer challenge without a realm`);
    let tokenUrl: URL;
    try {
      tokenUrl = new URL(realm);
    } catch {
      throw new RuntimeFailure(`${url}: Bearer realm '${realm}' is not a URL`);
    }
    checkRemoteUrl(tokenUrl, `the token realm of ${this.registry}`, this.#allowHttp);
    if (params.service) tokenUrl.searchParams.set("service", params.service);
    tokenUrl.searchParams.set("scope", params.scope ?? `repository:${this.repository}:pull`);
    // Credentials go only to the host they were stored for: a realm on that same host, or Docker
    // Hub's own token service. A realm elsewhere is asked for an anonymous token (public images).
    const creds = this.#creds && realmMayGetCredentials(this.registry, tokenUrl)
      ? this.#creds
      : undefined;
    if (creds) tokenUrl.searchParams.set("account", creds.username);
    const headers: Record<string, string> = { "User-Agent": "nemotron-squash" };
    if (creds) headers.Authorization = basic(creds);
    const res = await withRetry(`token request to ${tokenUrl.origin}`, this.retry, async () => {
      let r: Response;
      try {
        // No redirects: the credentials go to the realm the registry named, nowhere else.
        r = await fetch(tokenUrl, { headers, redirect: "manual" });
      } catch (e) {
        throw new TransientError((e as Error).message);
      }
      if (r.status >= 300 && r.status < 400) {
        await r.body?.cancel();
        throw new RuntimeFailure(
          `token server ${tokenUrl.origin} redirects (HTTP ${r.status}): refused`,
          { hint: "credentials are sent only to the realm the registry names" },
        );
      }
      if (r.status >= 500) {
        await r.body?.cancel();
        throw new TransientError(`HTTP ${r.status}`);
      }
      return r;
    }, this.onRetry);
    const body = new TextDecoder().decode(
      await readBodyCapped(res, MAX_TOKEN_BYTES, `token response from ${tokenUrl.origin}`),
    );
    if (!res.ok) {
      throw new RuntimeFailure(
        `token server ${tokenUrl.origin} refused: HTTP ${res.status} ${registryErrorText(body)}`,
        {
          hint: this.#creds && !creds
            ? `the token server is not on ${this.registry}, so your credentials for ` +
              `${this.registry} were not sent to it (they only ever go to the host they are ` +
              "stored for)"
            : this.#credsHint(),
        },
      );
    }
    let token: string | undefined;
    try {
      const j = JSON.parse(body);
      token = j.token ?? j.access_token;
    } catch { /* handled below */ }
    if (!token) throw new RuntimeFailure(`token server ${tokenUrl.origin} returned no token`);
    this.#auth = `Bearer ${token}`;
  }
}

/** A digest string `sha256:<64 hex>` checked; other algorithms are refused. */
export function checkDigest(digest: string, where: string): string {
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) {
    throw new RuntimeFailure(`${where}: unsupported or malformed digest '${digest}' (sha256 only)`);
  }
  return digest.slice(7);
}
