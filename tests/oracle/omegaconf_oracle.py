"""Differential-test oracle: evaluate a batch of config cases with real OmegaConf.

Reads a JSON array of cases on stdin and writes a JSON array of results on stdout, one process
for the whole batch. A case is {"yaml": str, "merges": [str], "dotlist": [str], "env": {k: v},
"resolve": bool}. The config is OmegaConf.create(yaml), merged with each of `merges` in order,
then merged with OmegaConf.from_dotlist(dotlist) (as nemotron's original loader does), then
converted with OmegaConf.to_container(resolve=...).

Values are encoded with their Python types kept: {"$i": "12"} int, {"$f": repr} float,
{"$d": [[key, value], ...]} dict (order kept), lists as arrays, str/bool/None as JSON.
A failure is {"error": "<ExceptionClass>", "message": "..."}.
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


def run_case(case):
    saved = dict(os.environ)
    try:
        os.environ.update(case.get("env") or {})
        cfg = OmegaConf.create(case["yaml"])
        for m in case.get("merges") or []:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(m))
        if case.get("dotlist"):
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(case["dotlist"]))
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
