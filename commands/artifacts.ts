/**
 * `nemotron artifacts list|show|lineage|publish|alias`: the file-backed artifact registry.
 *
 * The registry root is NEMOTRON_ARTIFACTS_ROOT, else env.toml `[artifacts] root`, else
 * `$NEMOTRON_HOME/artifacts` (`~/.nemotron/artifacts`). Layout: lib/artifacts/registry.ts.
 */
import { Command } from "../lib/cli/command.ts";
import type { CliContext } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import { redactArgv } from "../lib/secrets.ts";
import { shellJoin } from "../lib/shell.ts";
import { registryFromEnvironment } from "../lib/artifacts/root.ts";
import {
  type ArtifactRegistry,
  type LineageNode,
  type Manifest,
  type Producer,
  producerFromEnv,
  qualifiedName,
} from "../lib/artifacts/registry.ts";

/** `k=v` → [k, typed v]: integers, floats, true/false/null are typed; everything else is a string. */
export function parseMetadataItem(item: string): [string, unknown] {
  const eq = item.indexOf("=");
  if (eq <= 0) {
    throw new UsageError(`bad --metadata '${item}': expected KEY=VALUE`, {
      hint: "e.g. --metadata tokens=1000 --metadata source=web",
    });
  }
  const key = item.slice(0, eq);
  const raw = item.slice(eq + 1);
  if (/^-?\d+$/.test(raw) && Number.isSafeInteger(Number(raw))) return [key, Number(raw)];
  if (/^-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/.test(raw)) return [key, Number(raw)];
  if (raw === "true" || raw === "false") return [key, raw === "true"];
  if (raw === "null") return [key, null];
  return [key, raw];
}

/**
 * The nemotron command line for a manifest, with secret values hidden by the one rule of
 * lib/secrets.ts (`run.env.env_vars.HF_TOKEN=…`, `api_key=…`, `--password X`; not `tokens=…`).
 */
function redactedCommand(argv: readonly string[]): string {
  return "nemotron " + shellJoin(redactArgv(argv));
}

function producerLine(p: Producer): string {
  const parts = [p.recipe ?? "(manual)"];
  if (p.job_dir) parts.push(`job ${p.job_dir}`);
  if (p.host) parts.push(`on ${p.host}`);
  return parts.join("  ");
}

function aliasesOf(reg: ArtifactRegistry, m: Manifest): string[] {
  return Object.entries(reg.aliases(m.name)).filter(([, v]) => v === m.version).map(([a]) => a);
}

function printManifest(reg: ArtifactRegistry, m: Manifest): void {
  const metadata = reg.metadata(m);
  const versions = reg.versionNumbers(m.name);
  const rows: [string, string][] = [
    ["path", m.path],
    ["storage", m.storage],
    ["created_at", m.created_at],
    ["producer", producerLine(m.producer)],
    ["command", m.producer.command ?? "-"],
    ["inputs", m.used_artifacts.join(", ") || "-"],
    [
      "metadata",
      Object.entries(metadata).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") || "-",
    ],
    ["aliases", aliasesOf(reg, m).join(", ") || "-"],
    ["latest", `v${versions[versions.length - 1]}`],
  ];
  console.log(`${qualifiedName(m)}  (${m.type})`);
  for (const [k, v] of rows) console.log(`  ${(k + ":").padEnd(12)}${v}`);
}

function lineageLines(node: LineageNode, prefix = "", last = true, top = true): string[] {
  const label = node.problem === "missing"
    ? `${node.name}:v${node.version}  (missing from the registry)`
    : node.problem === "cycle"
    ? `${node.name}:v${node.version}  (cycle)`
    : `${node.name}:v${node.version}  ${node.manifest!.type}  ${
      node.manifest!.producer.recipe ?? "(manual)"
    }  ${node.manifest!.created_at}`;
  const lines = [top ? label : `${prefix}${last ? "└── " : "├── "}${label}`];
  const childPrefix = top ? "" : prefix + (last ? "    " : "│   ");
  node.inputs.forEach((child, i) => {
    lines.push(...lineageLines(child, childPrefix, i === node.inputs.length - 1, false));
  });
  return lines;
}

function lineageJson(node: LineageNode): Record<string, unknown> {
  return {
    name: node.name,
    version: node.version,
    ...(node.problem ? { problem: node.problem } : {
      type: node.manifest!.type,
      path: node.manifest!.path,
      created_at: node.manifest!.created_at,
      producer: node.manifest!.producer,
    }),
    inputs: node.inputs.map(lineageJson),
  };
}

/**
 * Run `fn` with the registry the command reads: this machine's (`registryFromEnvironment`), or
 * with `--on PROFILE` a read-only copy of the one on that tunnel profile's cluster
 * (lib/artifacts/remote.ts), removed afterwards. `where` is what `list` prints as the registry.
 */
async function withRegistry(
  on: string | undefined,
  fn: (reg: ArtifactRegistry, where: string) => void,
): Promise<void> {
  if (on === undefined) {
    const reg = registryFromEnvironment();
    return fn(reg, reg.root);
  }
  const { openRemoteRegistry } = await import("../lib/artifacts/remote.ts");
  const remote = await openRemoteRegistry(on);
  try {
    fn(remote.registry, remote.where);
  } finally {
    remote.close();
  }
}

const ON_HELP =
  'read the registry on the cluster of a tunnel = "ssh" profile (through ssh, read-only)';

export function artifactsCommand(cli: CliContext): Command {
  const group = new Command("artifacts").description(
    "List, inspect, publish and alias versioned artifacts (datasets, checkpoints)",
  )
    .examples([
      ["nemotron artifacts list", "Every artifact, its versions and aliases"],
      ["nemotron artifacts show demo-data-tiny", "The latest version: path, producer, inputs"],
      ["nemotron artifacts lineage demo-model-tiny:v2", "What a version was made from"],
      [
        "nemotron artifacts publish ds ./data -t dataset",
        "Copy ./data in as the next version of ds",
      ],
    ]);

  group.command("list")
    .description("list artifacts with their versions and aliases")
    .examples([
      ["nemotron artifacts list --json", "Machine-readable"],
      ["nemotron artifacts list --on cluster", "The registry on a cluster you reach over ssh"],
    ])
    .option(
      "--json",
      "print JSON: [{name, versions:[{version, path, created_at, producer}], aliases}]",
    )
    .option("--on <profile>", ON_HELP)
    .action((opts: { json?: boolean; on?: string }) =>
      withRegistry(opts.on, (reg, where) => {
        const entries = reg.list();
        if (opts.json) {
          console.log(JSON.stringify(
            entries.map((e) => ({
              name: e.name,
              versions: e.versions.map((m) => ({
                version: m.version,
                path: m.path,
                created_at: m.created_at,
                producer: m.producer,
              })),
              aliases: e.aliases,
            })),
            null,
            2,
          ));
          return;
        }
        console.log(`registry: ${where}`);
        if (entries.length === 0) {
          console.log(
            "  (empty: publish with `nemotron artifacts publish NAME PATH` or run a recipe)",
          );
          return;
        }
        const width = Math.max(...entries.map((e) => e.name.length));
        for (const e of entries) {
          const latest = e.versions[e.versions.length - 1];
          const aliases = Object.entries(e.aliases).map(([a, v]) => `${a}→v${v}`).join(" ");
          console.log(
            `  ${e.name.padEnd(width)}  v${latest.version}  ${
              latest.type.padEnd(8)
            } ${e.versions.length} version${
              e.versions.length === 1 ? " " : "s"
            }  ${latest.created_at}${aliases ? `  ${aliases}` : ""}`,
          );
        }
      })
    );

  group.command("show")
    .description("show one version: path, producer, inputs, metadata (default: latest)")
    .examples([
      ["nemotron artifacts show ds:v3", "Version 3"],
      ["nemotron artifacts show ds:best --json", "The version alias best points at"],
    ])
    .argument("<ref>", "NAME, NAME:latest, NAME:vN, NAME:N or NAME:ALIAS")
    .option("--json", "print the manifest as JSON (with metadata.json and aliases)")
    .option("--on <profile>", ON_HELP)
    .action((ref: string, opts: { json?: boolean; on?: string }) =>
      withRegistry(opts.on, (reg) => {
        const m = reg.resolve(ref);
        if (opts.json) {
          console.log(JSON.stringify(
            { ...m, metadata: reg.metadata(m), aliases: aliasesOf(reg, m) },
            null,
            2,
          ));
        } else printManifest(reg, m);
      })
    );

  group.command("lineage")
    .description("show the tree of artifacts a version was made from")
    .examples([
      ["nemotron artifacts lineage demo-model-tiny", "The latest version's inputs, recursively"],
    ])
    .argument("<ref>", "NAME[:VERSION]")
    .option("--json", "print the tree as JSON")
    .option("--on <profile>", ON_HELP)
    .action((ref: string, opts: { json?: boolean; on?: string }) =>
      withRegistry(opts.on, (reg) => {
        const tree = reg.lineage(ref);
        if (opts.json) console.log(JSON.stringify(lineageJson(tree), null, 2));
        else console.log(lineageLines(tree).join("\n"));
      })
    );

  group.command("publish")
    .description("publish a file or directory as the next version of NAME")
    .examples([
      ["nemotron artifacts publish ds ./data -m rows=1000", "With metadata"],
      ["nemotron artifacts publish ckpt /lustre/ckpt --reference", "Record the path, copy nothing"],
    ])
    .argument("<name>", "artifact name (letters, digits, '_', '.', '-')")
    .argument("<path>", "file or directory to publish")
    .option(
      "-m, --metadata <key=value>",
      "metadata entry (repeatable; numbers, true/false, null are typed)",
      (v: string, prev: string[]) => [...prev, v],
      [],
    )
    .option("-t, --type <type>", "kind of artifact: dataset, model, …", "artifact")
    .option(
      "-i, --input <ref>",
      "an artifact this one was made from (repeatable; recorded as lineage)",
      (v: string, prev: string[]) => [...prev, v],
      [],
    )
    .option("--reference", "record PATH where it is instead of copying it into the registry")
    .action((
      name: string,
      path: string,
      opts: { metadata: string[]; type: string; input: string[]; reference?: boolean },
    ) => {
      const metadata = Object.fromEntries(opts.metadata.map(parseMetadataItem));
      const reg = registryFromEnvironment();
      const m = reg.publish(name, path, {
        type: opts.type,
        metadata,
        inputs: opts.input,
        copy: !opts.reference,
        producer: { ...producerFromEnv(), command: redactedCommand(cli.argv) },
      });
      console.log(`published ${qualifiedName(m)} -> ${m.path}`);
    });

  group.command("alias")
    .description("point ALIAS of NAME at a version (e.g. `alias demo-model best v3`)")
    .examples([
      ["nemotron artifacts alias demo-model best v3", "best \u2192 v3"],
    ])
    .argument("<name>", "artifact name")
    .argument("<alias>", "alias (not 'latest', 'vN' or a number)")
    .argument("<version>", "vN, N, latest or another alias")
    .action((name: string, alias: string, version: string) => {
      const m = registryFromEnvironment().alias(name, alias, version);
      console.log(`${name}:${alias} -> v${m.version}`);
    });

  return group;
}
