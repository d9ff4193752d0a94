# /// script
# requires-python = ">=3.10"
#
# [tool.runspec]
# schema = "1"
# docs = "Turn question/answer datasets into NeMo-RL prompt files plus manifest.json and publish them."
# name = "nano3/data/prep/rl"
# image = "anyscale/ray:2.49.2-py312"
# setup = """
# CPU-only Ray job. Needs network access to the Hugging Face Hub (or a warm HF_HOME cache).
# datasets is added at launch by `uv run --with`.
# """
#
# [tool.runspec.run]
# launch = "ray"
# cmd = "uv run --no-project --with datasets python {script} --config {config}"
#
# [tool.runspec.config]
# dir = "./config/data_prep"
# default = "default"
# format = "omegaconf"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
"""nano3/data/prep/rl: question/answer datasets -> NeMo-RL prompt JSONL + manifest.json.

Usage: python data_prep.py --config config.yaml [key=value ...]

Config: `blend_path` (JSON list: name, hf_dataset, config, split, prompt_field, answer_field,
max_rows), `output_dir`, `valid_fraction`, `system_prompt`, `sample`, `force`, `artifact.name`.

Output: `train.jsonl` / `val.jsonl` with {"messages": [{"role": "user", "content": …}],
"answer": …, "source": name} per line, and `manifest.json` {"train", "val", "counts"}. Published by
reference as `artifact.name`.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

RECIPE = "nano3/data/prep/rl"
CONTAINER = "anyscale/ray:2.49.2-py312"
SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))


def require_libraries():
    try:
        import datasets
        import ray
    except ImportError as err:
        sys.stderr.write(
            "error: %s needs Ray and datasets, which are not importable here (%s).\n"
            "  hint: run it in the container %s with its runspec command "
            "(`nemotron nano3 data prep rl -c tiny --run <profile>`)\n" % (RECIPE, err, CONTAINER)
        )
        sys.exit(2)
    return ray, datasets


def find_file(path):
    for candidate in (path, os.path.join(SCRIPT_DIR, path), os.path.join(SCRIPT_DIR, "config", "data_prep", path)):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError("blend file %s not found (looked in ., %s, %s/config/data_prep)" % (path, SCRIPT_DIR, SCRIPT_DIR))


def main(argv):
    ray, datasets = require_libraries()
    import nemotron_artifacts as na

    cfg, _rest = na.load_config(argv)
    cfg, inputs = na.resolve_config(cfg)
    with open(find_file(cfg["blend_path"]), "r", encoding="utf-8") as f:
        blend = json.load(f)
    out_dir = os.path.abspath(cfg["output_dir"])
    manifest_path = os.path.join(out_dir, "manifest.json")
    if os.path.isfile(manifest_path) and not cfg.get("force"):
        print("[data] %s already has manifest.json; set force=true to redo it" % out_dir)
    else:
        os.makedirs(out_dir, exist_ok=True)
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)
        system_prompt = cfg.get("system_prompt")
        records = []
        for entry in blend:
            ds = datasets.load_dataset(entry["hf_dataset"], entry.get("config"), split=entry.get("split", "train"))
            limit = entry.get("max_rows") or cfg.get("sample")
            if limit:
                ds = ds.select(range(min(int(limit), len(ds))))
            pf, af, name = entry.get("prompt_field", "question"), entry.get("answer_field", "answer"), entry["name"]

            def to_record(row, pf=pf, af=af, name=name):
                messages = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
                messages.append({"role": "user", "content": row[pf]})
                return {"record": json.dumps({"messages": messages, "answer": row[af], "source": name})}

            rows = ray.data.from_huggingface(ds).map(to_record).take_all()
            records += [r["record"] for r in rows]
            print("[data] %s: %d prompts" % (name, len(rows)), flush=True)
        n_val = max(1, int(len(records) * float(cfg.get("valid_fraction", 0.05))))
        for fname, part in (("val.jsonl", records[:n_val]), ("train.jsonl", records[n_val:])):
            with open(os.path.join(out_dir, fname), "w", encoding="utf-8") as f:
                f.write("\n".join(part) + "\n")
        with open(manifest_path, "w", encoding="utf-8") as f:
            json.dump({"train": os.path.join(out_dir, "train.jsonl"), "val": os.path.join(out_dir, "val.jsonl"),
                       "counts": {"train": len(records) - n_val, "val": n_val}}, f, indent=2)

    art = cfg.get("artifact") or {}
    if art.get("name"):
        counts = json.load(open(manifest_path)).get("counts", {})
        m = na.publish(art["name"], out_dir, type="dataset", inputs=inputs, copy=False, metadata=counts)
        print("[artifact] published %s:v%d -> %s" % (m["name"], m["version"], m["path"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as err:  # noqa: BLE001
        if type(err).__name__ in ("ArtifactError", "FileNotFoundError"):
            sys.stderr.write("error: %s\n" % err)
            sys.exit(2)
        raise
