/**
 * The file-backed artifact registry. One directory per artifact, one sub-directory per version:
 *
 * ```
 * <root>/<name>/v<N>/manifest.json   what the version is (written last: its presence = complete)
 * <root>/<name>/v<N>/metadata.json   the version's metadata map (what `${art:NAME,FIELD}` reads)
 * <root>/<name>/v<N>/data/           the files, when published by copy
 * <root>/<name>/latest               text `vN`: the highest complete version
 * <root>/<name>/aliases/<alias>      text `vN`: one file per alias
 * ```
 *
 * Concurrency: a version number is claimed by creating `v<N>` with a non-recursive mkdir, which
 * exactly one process wins; every other file is written to a temp file and renamed. `latest` is a
 * convenience pointer (re-checked after each write so it converges on the highest version); the
 * registry itself always resolves `latest` by scanning for complete versions. A publisher that dies
 * leaves a `v<N>` without manifest.json: it is skipped and its number is not reused.
 *
 * recipes/nemotron_artifacts.py reads and writes the same layout.
 */
import { basename, join, resolve as resolvePath } from "../path.ts";
import { didYouMean, RuntimeFailure, UsageError } from "../errors.ts";
import { copyTree, listDir, readTextIfExists } from "./fsutil.ts";
import { writeFileAtomic } from "../atomic.ts";
import { isSecretName } from "../secrets.ts";
import { ensureNemotronHome, nemotronHome } from "../home.ts";
import {
  type ArtifactRef,
  checkAliasName,
  checkArtifactName,
  formatArtifactRef,
  parseArtifactRef,
  parseSelector,
  type VersionSelector,
} from "./ref.ts";

/** Who made a version: the recipe, its job dir and the command line (secrets redacted). */
export interface Producer {
  readonly recipe: string | null;
  readonly job_dir: string | null;
  readonly command: string | null;
  readonly host: string | null;
}

/** One input of a version: a concrete artifact version it was made from. */
export interface ArtifactInput {
  readonly name: string;
  readonly version: number;
  readonly path: string;
}

/** The content of `manifest.json`. */
export interface Manifest {
  readonly schema: 1;
  readonly name: string;
  readonly version: number;
  readonly type: string;
  /** Absolute path of the artifact's files (the `data` dir for copies, the source for references). */
  readonly path: string;
  readonly storage: "copy" | "reference";
  /** ISO-8601 in UTC with offset, seconds resolution: `2025-01-01T00:00:00+00:00`. */
  readonly created_at: string;
  readonly producer: Producer;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly inputs: readonly ArtifactInput[];
  /** `name:vN` of each input (the Python original's field). */
  readonly used_artifacts: readonly string[];
}

/** Everything known about one artifact name. */
export interface ArtifactEntry {
  readonly name: string;
  /** Complete versions, ascending. */
  readonly versions: readonly Manifest[];
  /** alias → version number. */
  readonly aliases: Readonly<Record<string, number>>;
}

/** Options of `publish`. */
export interface PublishOptions {
  /** Free-form kind: `dataset`, `model`, … (default `artifact`). */
  readonly type?: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
  /** References (`name[:selector]`) of the artifacts this one was made from. */
  readonly inputs?: readonly string[];
  /** Copy the files into the registry (default) or record a reference to `source`. */
  readonly copy?: boolean;
  readonly producer?: Producer;
}

/** One node of a lineage tree: a version and the trees of its inputs. */
export interface LineageNode {
  readonly name: string;
  readonly version: number;
  readonly manifest?: Manifest;
  /** Set when the input's version no longer exists (or repeats an ancestor: `cycle`). */
  readonly problem?: "missing" | "cycle";
  readonly inputs: readonly LineageNode[];
}

const VERSION_DIR = /^v(\d+)$/;
/**
 * Whether a metadata key names a secret: the one rule of lib/secrets.ts (`hf_token`, `api_key`,
 * `access-key`, `db_pass`; not `tokens`), except that the bare word `key` stays usable as a
 * metadata field name.
 */
export function isSecretMetadataKey(key: string): boolean {
  return key.toUpperCase() !== "KEY" && isSecretName(key);
}

/** `2025-01-01T00:00:00+00:00` for now (the format the Python helper writes too). */
export function timestampNow(date = new Date()): string {
  return date.toISOString().slice(0, 19) + "+00:00";
}

/** The producer described by the environment a recipe runs in (NEMOTRON_RECIPE, …_JOB_DIR, …_COMMAND). */
export function producerFromEnv(
  env: { get(key: string): string | undefined } = Deno.env,
): Producer {
  return {
    recipe: env.get("NEMOTRON_RECIPE") ?? null,
    job_dir: env.get("NEMOTRON_JOB_DIR") ?? null,
    command: env.get("NEMOTRON_COMMAND") ?? null,
    host: safeHostname(),
  };
}

function safeHostname(): string | null {
  try {
    return Deno.hostname();
  } catch {
    return null;
  }
}

/** A file-backed registry rooted at one directory. All methods are synchronous. */
export class ArtifactRegistry {
  readonly root: string;

  constructor(root: string) {
    this.root = resolvePath(root);
  }

  /** A root inside `$NEMOTRON_HOME` (the default): create that home privately (0700) first. */
  private privateHomeFirst(): void {
    let home: string;
    try {
      home = nemotronHome();
    } catch {
      return; // no HOME: the root was given explicitly
    }
    if (this.root === home || this.root.startsWith(home + "/")) ensureNemotronHome();
  }

  /** Names of artifacts with at least one complete version, sorted. */
  names(): string[] {
    return listDir(this.root)
      .filter((e) => e.isDirectory && !e.name.startsWith("."))
      .map((e) => e.name)
      .filter((n) => this.versionNumbers(n).length > 0)
      .sort();
  }

  /** Complete version numbers of `name`, ascending ([] when unknown). */
  versionNumbers(name: string): number[] {
    const dir = join(this.root, name);
    const out: number[] = [];
    for (const e of listDir(dir)) {
      const m = VERSION_DIR.exec(e.name);
      if (
        m && e.isDirectory && readTextIfExists(join(dir, e.name, "manifest.json")) !== undefined
      ) {
        out.push(Number(m[1]));
      }
    }
    return out.sort((a, b) => a - b);
  }

  /** alias → version for `name`. */
  aliases(name: string): Record<string, number> {
    const out: Record<string, number> = {};
    const dir = join(this.root, name, "aliases");
    for (const e of listDir(dir).sort((a, b) => a.name.localeCompare(b.name))) {
      if (!e.isFile || e.name.startsWith(".")) continue;
      const text = readTextIfExists(join(dir, e.name));
      const m = text === undefined ? null : VERSION_DIR.exec(text.trim());
      if (m) out[e.name] = Number(m[1]);
    }
    return out;
  }

  /** The manifest of `name` version `version` (which must be complete). */
  manifest(name: string, version: number): Manifest {
    const file = join(this.root, name, `v${version}`, "manifest.json");
    const text = readTextIfExists(file);
    if (text === undefined) {
      throw new RuntimeFailure(`artifact ${name}:v${version} has no manifest at ${file}`);
    }
    try {
      return JSON.parse(text) as Manifest;
    } catch (err) {
      throw new RuntimeFailure(`corrupt artifact manifest ${file}: ${(err as Error).message}`);
    }
  }

  /** The metadata map of a version (`metadata.json`, falling back to the manifest's copy). */
  metadata(manifest: Manifest): Record<string, unknown> {
    const file = join(this.root, manifest.name, `v${manifest.version}`, "metadata.json");
    const text = readTextIfExists(file);
    if (text === undefined) return { ...manifest.metadata };
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new RuntimeFailure(`corrupt artifact metadata ${file}: ${(err as Error).message}`);
    }
  }

  /** Everything known about `name`, or undefined when it has no complete version. */
  entry(name: string): ArtifactEntry | undefined {
    const numbers = this.versionNumbers(name);
    if (numbers.length === 0) return undefined;
    return {
      name,
      versions: numbers.map((n) => this.manifest(name, n)),
      aliases: this.aliases(name),
    };
  }

  /** All artifacts, sorted by name. */
  list(): ArtifactEntry[] {
    return this.names().map((n) => this.entry(n)!);
  }

  /**
   * The version a reference (`name`, `name:latest`, `name:vN`, `name:N`, `name:alias`) means.
   * Unknown name → UsageError listing the known names; unknown version or alias → UsageError
   * listing the versions and aliases that exist.
   */
  resolve(ref: string | ArtifactRef): Manifest {
    const parsed = typeof ref === "string" ? parseArtifactRef(ref) : ref;
    const { name, selector } = parsed;
    const numbers = this.versionNumbers(name);
    if (numbers.length === 0) {
      const known = this.names();
      throw new UsageError(
        `artifact '${name}' not found in ${this.root}.${didYouMean(name, known)}`,
        {
          hint: known.length > 0
            ? `known artifacts: ${known.join(", ")}`
            : "the registry is empty; publish with `nemotron artifacts publish NAME PATH` or run a data recipe",
        },
      );
    }
    const version = this.pickVersion(name, selector, numbers);
    return this.manifest(name, version);
  }

  private pickVersion(name: string, sel: VersionSelector, numbers: number[]): number {
    if (sel.kind === "latest") return numbers[numbers.length - 1];
    const aliases = this.aliases(name);
    const wanted = sel.kind === "number" ? sel.version : aliases[sel.alias];
    if (wanted !== undefined && numbers.includes(wanted)) return wanted;
    const aliasText = Object.entries(aliases).map(([a, v]) => `${a} → v${v}`).join(", ");
    const what = sel.kind === "number"
      ? `version v${sel.version}`
      : wanted === undefined
      ? `alias '${sel.alias}'`
      : `alias '${sel.alias}' (→ v${wanted}, which no longer exists)`;
    throw new UsageError(`artifact '${name}' has no ${what}`, {
      hint: `versions: ${numbers.map((n) => `v${n}`).join(", ")}` +
        (aliasText ? `; aliases: ${aliasText}` : "") + "; or use 'latest'",
    });
  }

  /**
   * Publish `source` (a file or directory) as the next version of `name`. Copies the files into
   * `v<N>/data/` (a single file keeps its name inside `data/`) or records `source` by reference.
   * Inputs are resolved to concrete versions first, so nothing is written for a bad reference.
   */
  publish(name: string, source: string, options: PublishOptions = {}): Manifest {
    checkArtifactName(name);
    const copy = options.copy ?? true;
    const src = resolvePath(source);
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(src);
    } catch {
      throw new UsageError(`cannot publish '${source}': no such file or directory`);
    }
    const metadata = { ...(options.metadata ?? {}) };
    for (const key of Object.keys(metadata)) {
      if (isSecretMetadataKey(key)) {
        throw new UsageError(`metadata key '${key}' looks like a secret; it is not stored`, {
          hint:
            "metadata is readable by everyone who can read the registry; pass secrets as env vars",
        });
      }
    }
    const inputs: ArtifactInput[] = (options.inputs ?? []).map((r) => {
      const m = this.resolve(r);
      return { name: m.name, version: m.version, path: m.path };
    });

    const nameDir = join(this.root, name);
    this.privateHomeFirst();
    Deno.mkdirSync(nameDir, { recursive: true });
    const version = this.claimVersion(nameDir);
    const versionDir = join(nameDir, `v${version}`);
    let path = src;
    if (copy) {
      const dataDir = join(versionDir, "data");
      if (info.isDirectory) {
        copyTree(src, dataDir);
      } else {
        Deno.mkdirSync(dataDir);
        copyTree(src, join(dataDir, basename(src)));
      }
      path = dataDir;
    }
    const manifest: Manifest = {
      schema: 1,
      name,
      version,
      type: options.type ?? "artifact",
      path,
      storage: copy ? "copy" : "reference",
      created_at: timestampNow(),
      producer: options.producer ?? producerFromEnv(),
      metadata,
      inputs,
      used_artifacts: inputs.map((i) => `${i.name}:v${i.version}`),
    };
    writeFileAtomic(join(versionDir, "metadata.json"), JSON.stringify(metadata, null, 2) + "\n");
    writeFileAtomic(join(versionDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    this.updateLatest(name);
    return manifest;
  }

  /** Claim the next free version number with an atomic mkdir of `v<N>`. */
  private claimVersion(nameDir: string): number {
    let next = 1;
    for (const e of listDir(nameDir)) {
      const m = VERSION_DIR.exec(e.name);
      if (m) next = Math.max(next, Number(m[1]) + 1);
    }
    for (;; next++) {
      try {
        Deno.mkdirSync(join(nameDir, `v${next}`));
        return next;
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
    }
  }

  /** Point `latest` at the highest complete version; re-check after writing so racing writers converge. */
  private updateLatest(name: string): void {
    const file = join(this.root, name, "latest");
    for (let i = 0; i < 100; i++) {
      const numbers = this.versionNumbers(name);
      if (numbers.length === 0) return;
      const want = `v${numbers[numbers.length - 1]}`;
      if (readTextIfExists(file)?.trim() === want) return;
      writeFileAtomic(file, want + "\n");
    }
  }

  /** Point alias `alias` of `name` at the version `selector` (a `vN`, `N`, `latest` or alias). */
  alias(name: string, alias: string, selector: string): Manifest {
    checkArtifactName(name);
    checkAliasName(alias);
    const target = this.resolve({ name, selector: parseSelector(selector) });
    const dir = join(this.root, name, "aliases");
    Deno.mkdirSync(dir, { recursive: true });
    writeFileAtomic(join(dir, alias), `v${target.version}\n`);
    return target;
  }

  /** The tree of inputs of a version, following manifests recursively. */
  lineage(ref: string | ArtifactRef): LineageNode {
    const root = this.resolve(ref);
    const walk = (m: Manifest, seen: ReadonlySet<string>): LineageNode => {
      const key = `${m.name}:v${m.version}`;
      const next = new Set(seen).add(key);
      return {
        name: m.name,
        version: m.version,
        manifest: m,
        inputs: (m.inputs ?? []).map((input) => {
          const ikey = `${input.name}:v${input.version}`;
          if (next.has(ikey)) {
            return { name: input.name, version: input.version, problem: "cycle", inputs: [] };
          }
          if (!this.versionNumbers(input.name).includes(input.version)) {
            return { name: input.name, version: input.version, problem: "missing", inputs: [] };
          }
          return walk(this.manifest(input.name, input.version), next);
        }),
      };
    };
    return walk(root, new Set());
  }
}

/** `name:vN` of a manifest. */
export function qualifiedName(m: Pick<Manifest, "name" | "version">): string {
  return formatArtifactRef({ name: m.name, selector: { kind: "number", version: m.version } });
}
