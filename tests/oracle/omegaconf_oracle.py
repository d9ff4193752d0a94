"""Differential-test oracle: evaluate a batch of config cases with real OmegaConf.

Reads a JSON array of cases on stdin and writes a JSON array of results on stdout, one process
for the whole batch. A case is {"yaml": str, "merges": [str], "dotlist": [str], "env": {k: v},
"resolve": bool, "hydra": [str]}. The config is OmegaConf.create(yaml), merged with each of `merges` in order,
then merged with OmegaConf.from_dotlist(dotlist) (as nemotron's original loader does), then
converted with OmegaConf.to_container(resolve=...).

Values are encoded with their Python types kept: {"$i": "12"} int, {"$f": repr} float,
{"$d": [[key, value], ...]} dict (order kept), lists as arrays, str/bool/None as JSON.
A failure is {"error": "<ExceptionClass>", "message": "..."}.

`hydra` overrides (`key=v`, `+key=v`, `++key=v`, `~key`, `~key=v`) are applied after the merges
the way Hydra 1.3 applies them to a composed (struct-mode) config: `apply_hydra_overrides` below
follows `ConfigLoaderImpl._apply_overrides_to_config` (hydra/_internal/config_loader_impl.py)
step by step, on real OmegaConf. Hydra itself is not installable here (no Debian package); values
are read as YAML like OmegaConf.from_dotlist (nemotron's value syntax), not with Hydra's grammar.
Run with /usr/bin/python3 (the Debian Python that has python3-omegaconf).
"""
import json
import os
import sys
import warnings

from omegaconf import OmegaConf

warnings.simplefilter("ignore")


def encode(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return {"$i": str(v)}
    if isinstance(v, float):
        return {"$f": repr(v)}
    if isinstance(v, dict):
        return {"$d": [[k if isinstance(k, str) else {"$key": repr(k)}, encode(x)] for k, x in v.items()]}
    if isinstance(v, (list, tuple)):
        return [encode(x) for x in v]
    return {"$other": type(v).__name__, "repr": repr(v)}


class ConfigCompositionException(Exception):
    pass


def apply_hydra_overrides(cfg, overrides):
    from omegaconf import open_dict
    from omegaconf._utils import get_yaml_loader
    import yaml

    OmegaConf.set_struct(cfg, True)
    for line in overrides:
        if line.startswith("++"):
            kind, body = "force", line[2:]
        elif line.startswith("+"):
            kind, body = "add", line[1:]
        elif line.startswith("~"):
            kind, body = "delete", line[1:]
        else:
            kind, body = "set", line
        key, eq, raw = body.partition("=")
        value = yaml.load(raw, Loader=get_yaml_loader()) if eq else None
        if kind == "delete":
            config_val = OmegaConf.select(cfg, key, throw_on_missing=False)
            if config_val is None:
                raise ConfigCompositionException("Could not delete from config. '%s' does not exist." % key)
            if value is not None and value != config_val:
                raise ConfigCompositionException("Could not delete from config. value mismatch")
            last_dot = key.rfind(".")
            with open_dict(cfg):
                if last_dot == -1:
                    del cfg[key]
                else:
                    node = OmegaConf.select(cfg, key[0:last_dot])
                    del node[key[last_dot + 1:]]
        elif kind == "add":
            if OmegaConf.select(cfg, key, throw_on_missing=False) is None or isinstance(value, (dict, list)):
                OmegaConf.update(cfg, key, value, merge=True, force_add=True)
            else:
                raise ConfigCompositionException("Could not append to config. An item is already at '%s'." % key)
        elif kind == "force":
            OmegaConf.update(cfg, key, value, merge=True, force_add=True)
        else:
            try:
                OmegaConf.update(cfg, key, value, merge=True)
            except Exception as ex:  # noqa: BLE001 - Hydra wraps ConfigAttributeError/ConfigKeyError
                raise ConfigCompositionException("Could not override '%s'." % key) from ex
    OmegaConf.set_struct(cfg, False)
    return cfg


def run_case(case):
    saved = dict(os.environ)
    try:
        os.environ.update(case.get("env") or {})
        cfg = OmegaConf.create(case["yaml"])
        for m in case.get("merges") or []:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(m))
        if case.get("dotlist"):
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(case["dotlist"]))
        if case.get("hydra"):
            cfg = apply_hydra_overrides(cfg, case["hydra"])
        out = OmegaConf.to_container(cfg, resolve=bool(case.get("resolve")))
        return {"value": encode(out)}
    except Exception as e:  # noqa: BLE001 - every failure is a result here
        return {"error": type(e).__name__, "message": str(e).split("\n")[0]}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main():
    cases = json.load(sys.stdin)
    json.dump([run_case(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()
