# /// script
# requires-python = ">=3.10"
#
# [tool.runspec]
# schema = "1"
# docs = "Tokenize the pretraining blend into Megatron bin/idx shards with Ray and publish the blend."
# name = "nano3/data/prep/pretrain"
# image = "anyscale/ray:2.49.2-py312"
# setup = """
# CPU-only Ray job. Needs network access to the Hugging Face Hub (or a warm HF_HOME cache).
# datasets and transformers are added at launch by `uv run --with`.
# """
#
# [tool.runspec.run]
# launch = "ray"
# cmd = "uv run --no-project --with datasets --with transformers python {script} --config {config}"
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
"""nano3/data/prep/pretrain: raw text datasets -> Megatron indexed shards + blend.json.

Usage (on a Ray cluster, or locally with Ray installed):
    python data_prep.py --config config.yaml [key=value ...]

Config: `blend_path` (a JSON list of datasets: name, hf_dataset, config, split, text_field,
weight, optional max_rows; relative paths are looked up next to this script and in
config/data_prep/), `output_dir`, `num_shards`, `tokenizer` {model, add_bos, add_eos}, `sample`
(rows per dataset, null = all), `force` (redo existing output), `artifact.name`.

Output: `<output_dir>/<dataset>/shard_NNNN.{bin,idx}` in Megatron-Core's indexed-dataset format
(MMIDIDX header, version 1; uint16 tokens when the vocabulary fits, else int32; one sequence per
document) and `<output_dir>/blend.json` = {"train"|"valid"|"test": [weight, prefix, …]}, the
per-split blend Megatron-Bridge reads (`per_split_data_args_path`). The last shard of each dataset
is held out for valid/test. The directory is published by reference as `artifact.name`.
"""

import json
import os
import struct
import sys
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

RECIPE = "nano3/data/prep/pretrain"
CONTAINER = "anyscale/ray:2.49.2-py312"
SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))


def require_libraries():
    """Import Ray, datasets and transformers, or exit 2 naming the container to use."""
    try:
        import datasets
        import ray
        from transformers import AutoTokenizer
    except ImportError as err:
        sys.stderr.write(
            "error: %s needs Ray, datasets and transformers, which are not importable here (%s).\n"
            "  hint: run it in the container %s with its runspec command "
            "(`nemotron nano3 data prep pretrain -c tiny --run <profile>`)\n" % (RECIPE, err, CONTAINER)
        )
        sys.exit(2)
    return ray, datasets, AutoTokenizer


def find_file(path):
    """A relative path: as given, else next to this script, else in config/data_prep/."""
    for candidate in (path, os.path.join(SCRIPT_DIR, path), os.path.join(SCRIPT_DIR, "config", "data_prep", path)):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError("blend file %s not found (looked in ., %s, %s/config/data_prep)" % (path, SCRIPT_DIR, SCRIPT_DIR))


def write_indexed_dataset(prefix, documents, vocab_size):
    """Write Megatron-Core `<prefix>.bin` + `<prefix>.idx` (one sequence per document)."""
    code, typecode, size = (8, "H", 2) if vocab_size < 65500 else (4, "i", 4)
    lengths, pointers, doc_index = array("i"), array("q"), array("q", [0])
    offset = 0
    with open(prefix + ".bin", "wb") as out:
        for tokens in documents:
            a = array(typecode, tokens)
            if sys.byteorder != "little":
                a.byteswap()
            a.tofile(out)
            lengths.append(len(a))
            pointers.append(offset)
            offset += len(a) * size
            doc_index.append(len(lengths))
    with open(prefix + ".idx", "wb") as out:
        out.write(b"MMIDIDX\x00\x00")
        out.write(struct.pack("<Q", 1))
        out.write(struct.pack("<B", code))
        out.write(struct.pack("<Q", len(lengths)))
        out.write(struct.pack("<Q", len(doc_index)))
        for arr in (lengths, pointers, doc_index):
            if sys.byteorder != "little":
                arr.byteswap()
            arr.tofile(out)
    return sum(lengths), len(lengths)


def main(argv):
    ray, datasets, AutoTokenizer = require_libraries()
    import nemotron_artifacts as na

    cfg, _rest = na.load_config(argv)
    cfg, inputs = na.resolve_config(cfg)
    with open(find_file(cfg["blend_path"]), "r", encoding="utf-8") as f:
        blend = json.load(f)
    out_dir = os.path.abspath(cfg["output_dir"])
    num_shards = int(cfg.get("num_shards", 8))
    tok_cfg = cfg.get("tokenizer") or {}
    sample = cfg.get("sample")
    if os.path.isfile(os.path.join(out_dir, "blend.json")) and not cfg.get("force"):
        print("[data] %s already has blend.json; set force=true to redo it" % out_dir)
    else:
        os.makedirs(out_dir, exist_ok=True)
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)

        @ray.remote
        def tokenize_shard(entry, index, prefix):
            ds = datasets.load_dataset(entry["hf_dataset"], entry.get("config"), split=entry.get("split", "train"))
            limit = entry.get("max_rows") or sample
            if limit:
                ds = ds.select(range(min(int(limit), len(ds))))
            ds = ds.shard(num_shards, index, contiguous=True)
            tok = AutoTokenizer.from_pretrained(tok_cfg["model"])
            field = entry.get("text_field", "text")

            def docs():
                for row in ds:
                    ids = tok(row[field], add_special_tokens=False)["input_ids"]
                    if tok_cfg.get("add_bos") and tok.bos_token_id is not None:
                        ids = [tok.bos_token_id] + ids
                    if tok_cfg.get("add_eos", True) and tok.eos_token_id is not None:
                        ids = ids + [tok.eos_token_id]
                    yield ids

            return write_indexed_dataset(prefix, docs(), len(tok))

        splits = {"train": [], "valid": [], "test": []}
        totals = {"tokens": 0, "documents": 0}
        for entry in blend:
            # download once on the driver so the workers read the shared HF cache
            datasets.load_dataset(entry["hf_dataset"], entry.get("config"), split=entry.get("split", "train"))
            ddir = os.path.join(out_dir, entry["name"])
            os.makedirs(ddir, exist_ok=True)
            prefixes = [os.path.join(ddir, "shard_%04d" % i) for i in range(num_shards)]
            results = ray.get([tokenize_shard.remote(entry, i, p) for i, p in enumerate(prefixes)])
            for tokens, docs in results:
                totals["tokens"] += tokens
                totals["documents"] += docs
            weight = float(entry.get("weight", 1.0))
            train = prefixes[:-1] or prefixes
            for p in train:
                splits["train"] += [weight / len(train), p]
            for split in ("valid", "test"):
                splits[split] += [weight, prefixes[-1]]
            print("[data] %s: %d shards -> %s" % (entry["name"], num_shards, ddir), flush=True)
        with open(os.path.join(out_dir, "blend.json"), "w", encoding="utf-8") as f:
            json.dump(splits, f, indent=2)
        with open(os.path.join(out_dir, "stats.json"), "w", encoding="utf-8") as f:
            json.dump(totals, f, indent=2)

    art = cfg.get("artifact") or {}
    if art.get("name"):
        stats_path = os.path.join(out_dir, "stats.json")
        stats = json.load(open(stats_path)) if os.path.isfile(stats_path) else {}
        m = na.publish(art["name"], out_dir, type="dataset", inputs=inputs, copy=False,
                       metadata={"tokenizer": tok_cfg.get("model"), "num_shards": num_shards, **stats})
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
