# /// script
# requires-python = ">=3.10"
#
# [tool.runspec]
# schema = "1"
# docs = "Tokenize chat data with the model's chat template, pack it into fixed-size sequences and publish it."
# name = "nano3/data/prep/sft"
# image = "anyscale/ray:2.49.2-py312"
# setup = """
# CPU-only Ray job. Needs network access to the Hugging Face Hub (or a warm HF_HOME cache).
# datasets, transformers and numpy are added at launch by `uv run --with`.
# """
#
# [tool.runspec.run]
# launch = "ray"
# cmd = "uv run --no-project --with datasets --with transformers --with numpy python {script} --config {config}"
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
"""nano3/data/prep/sft: chat datasets -> packed SFT sequences for Megatron-Bridge.

Usage: python data_prep.py --config config.yaml [key=value ...]

Config: `blend_path` (JSON list: name, hf_dataset, config, split, messages_field, max_rows),
`output_dir`, `pack_size`, `valid_fraction`, `tokenizer.model`, `sample`, `force`, `artifact.name`.

Each conversation is rendered with the tokenizer's chat template; the loss mask covers assistant
turns only. Conversations are packed first-fit into bins of `pack_size` tokens (longer ones are
truncated) and saved as `training_<pack>.npy` / `validation_<pack>.npy`: object arrays of
{input_ids, loss_mask, seq_start_id}, the packed layout Megatron-Bridge's packed SFT dataset
reads. Published by reference as `artifact.name` with metadata `pack_size` (read by the SFT config
as `${art:data,pack_size}`).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

RECIPE = "nano3/data/prep/sft"
CONTAINER = "anyscale/ray:2.49.2-py312"
SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))


def require_libraries():
    try:
        import datasets
        import numpy
        import ray
        from transformers import AutoTokenizer
    except ImportError as err:
        sys.stderr.write(
            "error: %s needs Ray, datasets, transformers and numpy, which are not importable here (%s).\n"
            "  hint: run it in the container %s with its runspec command "
            "(`nemotron nano3 data prep sft -c tiny --run <profile>`)\n" % (RECIPE, err, CONTAINER)
        )
        sys.exit(2)
    return ray, datasets, numpy, AutoTokenizer


def find_file(path):
    for candidate in (path, os.path.join(SCRIPT_DIR, path), os.path.join(SCRIPT_DIR, "config", "data_prep", path)):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError("blend file %s not found (looked in ., %s, %s/config/data_prep)" % (path, SCRIPT_DIR, SCRIPT_DIR))


def tokenize_conversation(tok, messages, pack_size):
    """input_ids and an assistant-only loss mask, truncated to pack_size."""
    ids, mask = [], []
    for i in range(len(messages)):
        prefix = tok.apply_chat_template(messages[: i + 1], tokenize=True)
        new = prefix[len(ids):]
        ids += new
        mask += [1 if messages[i]["role"] == "assistant" else 0] * len(new)
    return ids[:pack_size], mask[:pack_size]


def pack(samples, pack_size):
    """First-fit packing of (ids, mask) samples into bins of at most pack_size tokens."""
    bins = []
    for ids, mask in sorted(samples, key=lambda s: -len(s[0])):
        for b in bins:
            if b["used"] + len(ids) <= pack_size:
                break
        else:
            b = {"used": 0, "items": []}
            bins.append(b)
        b["items"].append((ids, mask))
        b["used"] += len(ids)
    out = []
    for b in bins:
        input_ids, loss_mask, starts = [], [], []
        for ids, mask in b["items"]:
            starts.append(len(input_ids))
            input_ids += ids
            loss_mask += mask
        out.append({"input_ids": input_ids, "loss_mask": loss_mask, "seq_start_id": starts})
    return out


def main(argv):
    ray, datasets, np, AutoTokenizer = require_libraries()
    import nemotron_artifacts as na

    cfg, _rest = na.load_config(argv)
    cfg, inputs = na.resolve_config(cfg)
    with open(find_file(cfg["blend_path"]), "r", encoding="utf-8") as f:
        blend = json.load(f)
    out_dir = os.path.abspath(cfg["output_dir"])
    pack_size = int(cfg.get("pack_size", 4096))
    valid_fraction = float(cfg.get("valid_fraction", 0.01))
    model = (cfg.get("tokenizer") or {})["model"]
    done = os.path.isfile(os.path.join(out_dir, "training_%d.npy" % pack_size))
    if done and not cfg.get("force"):
        print("[data] %s already holds packed data; set force=true to redo it" % out_dir)
    else:
        os.makedirs(out_dir, exist_ok=True)
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)
        samples = []
        for entry in blend:
            ds = datasets.load_dataset(entry["hf_dataset"], entry.get("config"), split=entry.get("split", "train"))
            limit = entry.get("max_rows") or cfg.get("sample")
            if limit:
                ds = ds.select(range(min(int(limit), len(ds))))
            field = entry.get("messages_field", "messages")

            def tokenize_batch(batch, field=field):
                tok = AutoTokenizer.from_pretrained(model)
                pairs = [tokenize_conversation(tok, list(m), pack_size) for m in batch[field]]
                return {"ids": [p[0] for p in pairs], "mask": [p[1] for p in pairs]}

            rows = ray.data.from_huggingface(ds).map_batches(tokenize_batch, batch_format="pandas").take_all()
            samples += [(list(r["ids"]), list(r["mask"])) for r in rows]
            print("[data] %s: %d conversations" % (entry["name"], len(rows)), flush=True)
        n_valid = max(1, int(len(samples) * valid_fraction))
        for name, part in (("validation", samples[:n_valid]), ("training", samples[n_valid:])):
            packed = pack(part, pack_size)
            np.save(os.path.join(out_dir, "%s_%d.npy" % (name, pack_size)), np.array(packed, dtype=object))
            print("[data] %s: %d sequences -> %d packs of %d" % (name, len(part), len(packed), pack_size))

    art = cfg.get("artifact") or {}
    if art.get("name"):
        m = na.publish(art["name"], out_dir, type="dataset", inputs=inputs, copy=False,
                       metadata={"pack_size": pack_size, "tokenizer": model})
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
