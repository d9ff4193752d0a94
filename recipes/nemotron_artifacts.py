"""nemotron_artifacts: resolve and publish artifacts from inside a recipe script.

Standard library only (Python 3.8+). nemotron ships this file next to the recipe script when the
script runs; the script imports it with ``import nemotron_artifacts``. It reads and writes the same
registry layout as the nemotron CLI (lib/artifacts/registry.ts):

    <root>/<name>/v<N>/manifest.json   written last: its presence marks a complete version
    <root>/<name>/v<N>/metadata.json   the metadata map (what ${art:NAME,FIELD} reads)
    <root>/<name>/v<N>/data/           the files, when published by copy
    <root>/<name>/latest               text "vN": the highest complete version
    <root>/<name>/aliases/<alias>      text "vN"

Environment (set by nemotron when it launches a recipe):
    NEMOTRON_ARTIFACTS_ROOT   registry root (else $NEMOTRON_HOME/artifacts, else ~/.nemotron/artifacts)
    NEMOTRON_JOB_DIR          job directory, recorded as the producer of published versions
    NEMOTRON_RECIPE           recipe name (e.g. demo/train), recorded as the producer
    NEMOTRON_COMMAND          the nemotron command line (secrets redacted), recorded as the producer

References: NAME, NAME:latest, NAME:vN, NAME:N, NAME:ALIAS. URIs: art://NAME[:VERSION][/FILE].
"""

import datetime
import json
import os
import re
import shutil
import socket
import sys
import uuid

__all__ = [
    "ArtifactError",
    "registry_root",
    "parse_ref",
    "parse_uri",
    "is_artifact_reference",
    "versions",
    "aliases",
    "resolve",
    "field",
    "publish",
    "alias",
    "resolve_config",
    "load_config",
    "apply_overrides",
    "is_main_process",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSION_WORD = re.compile(r"^v?(\d+)$")
_VERSION_DIR = re.compile(r"^v(\d+)$")
_SECRET_WORDS = {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS", "APIKEY"}


class ArtifactError(Exception):
    """A reference that does not resolve, a bad name, or a bad publish request."""


# ----------------------------------------------------------------------------- names and references


def registry_root(config=None):
    """The registry root: NEMOTRON_ARTIFACTS_ROOT, else config['artifacts']['root'], else the default."""
    env_root = os.environ.get("NEMOTRON_ARTIFACTS_ROOT")
    if env_root:
        return os.path.abspath(os.path.expanduser(env_root))
    section = config.get("artifacts") if isinstance(config, dict) else None
    if isinstance(section, dict):
        root = section.get("root")
        manifest = section.get("manifest")
        if not root and isinstance(manifest, dict):
            root = manifest.get("root")
        if isinstance(root, str) and root:
            return os.path.abspath(os.path.expanduser(root))
    home = os.environ.get("NEMOTRON_HOME") or os.path.join(os.path.expanduser("~"), ".nemotron")
    return os.path.abspath(os.path.join(os.path.expanduser(home), "artifacts"))


def _check_name(name):
    if not _NAME.match(name):
        raise ArtifactError(
            "invalid artifact name %r: use letters, digits, '_', '.', '-' (letter or digit first)" % name
        )
    return name


def _check_alias(word):
    if not _NAME.match(word) or word == "latest" or _VERSION_WORD.match(word):
        raise ArtifactError("invalid alias %r: not 'latest', 'vN' or a number" % word)
    return word


def _parse_selector(word):
    """('latest', None) | ('number', N) | ('alias', word)."""
    if word in ("", "latest"):
        return ("latest", None)
    m = _VERSION_WORD.match(word)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise ArtifactError("invalid version %r: versions count from 1" % word)
        return ("number", n)
    return ("alias", _check_alias(word))


def parse_ref(ref):
    """'name[:selector]' -> (name, selector) where selector is as in _parse_selector."""
    name, sep, word = ref.rpartition(":")
    if not sep:
        name, word = ref, ""
    elif word == "":
        raise ArtifactError("artifact reference %r has an empty version" % ref)
    return (_check_name(name), _parse_selector(word))


def parse_uri(uri):
    """'art://name[:selector][/file]' -> (name, selector, file). The 'art://' prefix is optional."""
    body = uri[len("art://"):] if uri.startswith("art://") else uri
    if not body:
        raise ArtifactError("empty artifact URI %r" % uri)
    segments = body.split("/")
    at = next((i for i, s in enumerate(segments) if ":" in s), None)
    if at is None:
        return ("/".join(segments), ("latest", None), "")
    name_part, _, word = segments[at].partition(":")
    name_segments = segments[:at] + [name_part]
    if any(s == "" for s in name_segments):
        raise ArtifactError("artifact URI %r has an empty name" % uri)
    if ":" in word:
        raise ArtifactError("artifact URI %r has more than one ':' in %r" % (uri, segments[at]))
    return ("/".join(name_segments), _parse_selector(word), "/".join(segments[at + 1:]))


def is_artifact_reference(value):
    """Whether a value under `run` looks like NAME:VERSION (same rule as the CLI)."""
    if not isinstance(value, str):
        return False
    lower = value.lower()
    if "/" in value or "nvcr" in lower or "docker" in lower:
        return False
    if "Artifact" in value:
        return True
    name, sep, word = value.rpartition(":")
    if not sep:
        return False
    version_like = word == "latest" or word.startswith("v") or word.isdigit()
    return version_like and name != "" and "." not in name


# ----------------------------------------------------------------------------- reading


def _read_text(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _listdir(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def versions(name, root=None):
    """Complete version numbers of `name`, ascending."""
    base = os.path.join(root or registry_root(), name)
    out = []
    for entry in _listdir(base):
        m = _VERSION_DIR.match(entry)
        if m and os.path.isfile(os.path.join(base, entry, "manifest.json")):
            out.append(int(m.group(1)))
    return sorted(out)


def aliases(name, root=None):
    """alias -> version number."""
    base = os.path.join(root or registry_root(), name, "aliases")
    out = {}
    for entry in sorted(_listdir(base)):
        if entry.startswith("."):
            continue
        text = _read_text(os.path.join(base, entry))
        m = _VERSION_DIR.match(text.strip()) if text is not None else None
        if m:
            out[entry] = int(m.group(1))
    return out


def _names(root):
    return sorted(e for e in _listdir(root) if not e.startswith(".") and versions(e, root))


def _manifest(name, version, root):
    path = os.path.join(root, name, "v%d" % version, "manifest.json")
    text = _read_text(path)
    if text is None:
        raise ArtifactError("artifact %s:v%d has no manifest at %s" % (name, version, path))
    return json.loads(text)


def resolve(ref, root=None):
    """The manifest (a dict) of the version `ref` means. Errors list what exists."""
    root = root or registry_root()
    name, (kind, value) = parse_ref(ref)
    numbers = versions(name, root)
    if not numbers:
        known = _names(root)
        raise ArtifactError(
            "artifact %r not found in %s; %s"
            % (name, root, "known artifacts: " + ", ".join(known) if known else "the registry is empty")
        )
    table = aliases(name, root)
    if kind == "latest":
        wanted = numbers[-1]
    elif kind == "number":
        wanted = value
    else:
        wanted = table.get(value)
    if wanted not in numbers:
        what = "version v%d" % value if kind == "number" else "alias %r" % value
        alias_text = ", ".join("%s -> v%d" % (a, v) for a, v in table.items())
        raise ArtifactError(
            "artifact %r has no %s; versions: %s%s"
            % (name, what, ", ".join("v%d" % n for n in numbers), "; aliases: " + alias_text if alias_text else "")
        )
    return _manifest(name, wanted, root)


def _metadata(manifest, root):
    path = os.path.join(root, manifest["name"], "v%d" % manifest["version"], "metadata.json")
    text = _read_text(path)
    return json.loads(text) if text is not None else dict(manifest.get("metadata") or {})


def field(ref_or_manifest, name="path", root=None):
    """The value of field `name` (default 'path') of an artifact version, as for ${art:KEY,FIELD}."""
    root = root or registry_root()
    m = resolve(ref_or_manifest, root) if isinstance(ref_or_manifest, str) else ref_or_manifest
    metadata = _metadata(m, root)
    nested = metadata.get("metadata") if isinstance(metadata.get("metadata"), dict) else {}
    info = {
        "path": m["path"],
        "version": "v%d" % m["version"],  # "v5" like the original (W&B's artifact.version)
        "name": m["name"],
        "type": m.get("type"),
        "qualified_name": "%s:v%d" % (m["name"], m["version"]),
        "created_at": m.get("created_at"),
        "storage": m.get("storage"),
    }
    if "iteration" in metadata:
        info["iteration"] = metadata["iteration"]
    name = name or "path"
    if name.startswith("metadata."):
        key = name[len("metadata."):]
        if key in metadata:
            return metadata[key]
        raise ArtifactError(
            "artifact %s has no metadata field %r; metadata fields: %s"
            % (info["qualified_name"], key, ", ".join(metadata) or "(none)")
        )
    for table in (info, metadata, nested):
        if name in table:
            return table[name]
    available = list(dict.fromkeys(list(info) + list(metadata) + list(nested)))
    raise ArtifactError(
        "unknown field %r for artifact %s; available fields: %s"
        % (name, info["qualified_name"], ", ".join(available))
    )


# ----------------------------------------------------------------------------- writing


def _write_atomic(path, text):
    tmp = os.path.join(
        os.path.dirname(path), ".%s.tmp-%d-%s" % (os.path.basename(path), os.getpid(), uuid.uuid4().hex[:8])
    )
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _claim_version(name_dir):
    nxt = 1
    for entry in _listdir(name_dir):
        m = _VERSION_DIR.match(entry)
        if m:
            nxt = max(nxt, int(m.group(1)) + 1)
    while True:
        try:
            os.mkdir(os.path.join(name_dir, "v%d" % nxt))
            return nxt
        except FileExistsError:
            nxt += 1


def _update_latest(name, root):
    path = os.path.join(root, name, "latest")
    for _ in range(100):
        numbers = versions(name, root)
        if not numbers:
            return
        want = "v%d" % numbers[-1]
        current = _read_text(path)
        if current is not None and current.strip() == want:
            return
        _write_atomic(path, want + "\n")


def _is_secret_key(key):
    """Same rule as the CLI: a word TOKEN/SECRET/PASSWORD/…, or KEY next to another word (api_key)."""
    words = [w for w in re.split(r"[^A-Z0-9]+", key.upper()) if w]
    return any(w in _SECRET_WORDS for w in words) or (len(words) > 1 and "KEY" in words)


def _producer():
    try:
        host = socket.gethostname()
    except OSError:
        host = None
    return {
        "recipe": os.environ.get("NEMOTRON_RECIPE"),
        "job_dir": os.environ.get("NEMOTRON_JOB_DIR"),
        "command": os.environ.get("NEMOTRON_COMMAND"),
        "host": host,
    }


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def publish(name, path, type="artifact", metadata=None, inputs=(), copy=True, root=None):
    """Publish a file or directory as the next version of `name`; returns the manifest dict.

    inputs: artifact references or manifests this version was made from (recorded as lineage).
    copy:   copy the files into <root>/<name>/v<N>/data/ (True) or record `path` by reference.
    """
    root = root or registry_root()
    _check_name(name)
    src = os.path.abspath(path)
    if not os.path.exists(src):
        raise ArtifactError("cannot publish %r: no such file or directory" % path)
    metadata = dict(metadata or {})
    for key in metadata:
        if _is_secret_key(key):
            raise ArtifactError("metadata key %r looks like a secret; it is not stored" % key)
    resolved_inputs = []
    for item in inputs:
        m = resolve(item, root) if isinstance(item, str) else item
        resolved_inputs.append({"name": m["name"], "version": m["version"], "path": m["path"]})

    name_dir = os.path.join(root, name)
    os.makedirs(name_dir, exist_ok=True)
    version = _claim_version(name_dir)
    version_dir = os.path.join(name_dir, "v%d" % version)
    stored = src
    if copy:
        stored = os.path.join(version_dir, "data")
        if os.path.isdir(src):
            shutil.copytree(src, stored, symlinks=True)
        else:
            os.mkdir(stored)
            shutil.copy2(src, os.path.join(stored, os.path.basename(src)))
    manifest = {
        "schema": 1,
        "name": name,
        "version": version,
        "type": type,
        "path": stored,
        "storage": "copy" if copy else "reference",
        "created_at": _now(),
        "producer": _producer(),
        "metadata": metadata,
        "inputs": resolved_inputs,
        "used_artifacts": ["%s:v%d" % (i["name"], i["version"]) for i in resolved_inputs],
    }
    _write_atomic(os.path.join(version_dir, "metadata.json"), json.dumps(metadata, indent=2) + "\n")
    _write_atomic(os.path.join(version_dir, "manifest.json"), json.dumps(manifest, indent=2) + "\n")
    _update_latest(name, root)
    return manifest


def alias(name, alias_name, selector, root=None):
    """Point alias `alias_name` of `name` at the version `selector` means; returns that manifest."""
    root = root or registry_root()
    _check_alias(alias_name)
    target = resolve("%s:%s" % (_check_name(name), selector), root)
    directory = os.path.join(root, name, "aliases")
    os.makedirs(directory, exist_ok=True)
    _write_atomic(os.path.join(directory, alias_name), "v%d\n" % target["version"])
    return target


# ----------------------------------------------------------------------------- configs

_INTERP = re.compile(r"\$\{(art|oc\.env):([^{}]*)\}")


def resolve_config(cfg, root=None):
    """Resolve ${art:KEY[,FIELD]} and ${oc.env:VAR[,DEFAULT]} in a config dict.

    KEY names an artifact reference under cfg['run'] (run.data: demo-data:latest). Every artifact
    reference under `run` is resolved once, so one config sees one version per reference.
    Returns (resolved config, list of input manifests) — pass the list to publish(inputs=...).
    Other ${...} interpolations are left untouched.
    """
    root = root or registry_root(cfg)
    run = cfg.get("run") if isinstance(cfg.get("run"), dict) else {}
    refs = {k: v for k, v in run.items() if is_artifact_reference(v)}
    manifests = {k: resolve(v, root) for k, v in refs.items()}

    def lookup(kind, arg):
        if kind == "oc.env":
            var, sep, default = arg.partition(",")
            value = os.environ.get(var.strip())
            if value is not None:
                return value
            if sep:
                d = default.strip()
                return None if d == "null" else d.strip("'\"")
            raise ArtifactError("environment variable %s is not set (in ${oc.env:%s})" % (var, arg))
        key, _, fld = arg.partition(",")
        key = key.strip()
        if key not in manifests:
            raise ArtifactError(
                "${art:%s} names no artifact: run.%s is not a NAME:VERSION reference; references: %s"
                % (arg, key, ", ".join("run." + k for k in refs) or "(none)")
            )
        return field(manifests[key], fld.strip() or "path", root)

    def walk(value):
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            whole = _INTERP.fullmatch(value)
            if whole:
                return lookup(whole.group(1), whole.group(2))
            return _INTERP.sub(lambda m: str(lookup(m.group(1), m.group(2))), value)
        return value

    return walk(cfg), [manifests[k] for k in refs]


def _parse_scalar(text):
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text in ("null", "None", "~"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(cfg, overrides):
    """Apply `a.b.c=value` overrides (value typed: JSON, true/false/null, else string) in place."""
    for item in overrides:
        key, _, raw = item.partition("=")
        parts = key.split(".")
        if not key or any(p == "" for p in parts):
            raise ArtifactError("malformed override %r: expected key.path=value" % item)
        node = cfg
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = _parse_scalar(raw)
    return cfg


def load_config(argv=None):
    """Parse `--config PATH [key=value ...] [other args]`; returns (config dict, other args).

    JSON configs need nothing; YAML configs need PyYAML or OmegaConf (present in NeMo containers).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    path = None
    overrides, rest = [], []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("--config", "-c"):
            if i + 1 >= len(argv):
                raise ArtifactError("--config needs a path")
            path = argv[i + 1]
            i += 2
            continue
        if tok.startswith("--config="):
            path = tok[len("--config="):]
        elif "=" in tok and not tok.startswith("-"):
            overrides.append(tok)
        else:
            rest.append(tok)
        i += 1
    if path is None:
        raise ArtifactError("missing --config PATH")
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        cfg = json.loads(text)
    else:
        cfg = _load_yaml(text, path)
    if not isinstance(cfg, dict):
        raise ArtifactError("config %s is not a mapping" % path)
    return apply_overrides(cfg, overrides), rest


def _load_yaml(text, path):
    try:
        import yaml  # type: ignore

        return yaml.safe_load(text)
    except ImportError:
        pass
    try:
        from omegaconf import OmegaConf  # type: ignore

        return OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except ImportError:
        raise ArtifactError("%s is YAML but neither PyYAML nor OmegaConf is installed" % path)


def is_main_process():
    """True on global rank 0 (or when not distributed): only it should publish."""
    return os.environ.get("RANK", "0") == "0"


# ----------------------------------------------------------------------------- small CLI (for tests)


def _main(argv):
    if len(argv) >= 2 and argv[0] == "resolve":
        m = resolve(argv[1])
        print(json.dumps(field(m, argv[2]) if len(argv) > 2 else m))
        return 0
    if len(argv) >= 3 and argv[0] == "publish":
        inputs = [a[len("--input="):] for a in argv[3:] if a.startswith("--input=")]
        meta = dict(a[len("--meta="):].split("=", 1) for a in argv[3:] if a.startswith("--meta="))
        meta = {k: _parse_scalar(v) for k, v in meta.items()}
        copy = "--reference" not in argv[3:]
        print(json.dumps(publish(argv[1], argv[2], metadata=meta, inputs=inputs, copy=copy)))
        return 0
    if len(argv) == 4 and argv[0] == "alias":
        print(json.dumps(alias(argv[1], argv[2], argv[3])))
        return 0
    sys.stderr.write(
        "usage: nemotron_artifacts.py resolve REF [FIELD] | publish NAME PATH [--input=REF] "
        "[--meta=K=V] [--reference] | alias NAME ALIAS VERSION\n"
    )
    return 2


if __name__ == "__main__":
    try:
        sys.exit(_main(sys.argv[1:]))
    except ArtifactError as err:
        sys.stderr.write("error: %s\n" % err)
        sys.exit(2)
