# /// script
# requires-python = ">=3.8"
# dependencies = []
#
# [tool.runspec]
# schema = "1"
# docs = "Tokenize the bundled demo corpus into byte-level tokens and publish it as an artifact."
# name = "demo/data"
#
# [tool.runspec.run]
# launch = "direct"
#
# [tool.runspec.config]
# dir = "./config/data"
# default = "default"
# format = "json"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
"""demo/data: corpus -> byte-level tokenized dataset + blend.json, published as an artifact.

Usage: python3 data.py --config CONFIG.json [key.path=value ...]

Input: a UTF-8 text file whose documents are separated by lines consisting of `---`.

Output (config `output_dir`, then published to the registry as `artifact.name`):
    blend.json       {"train": [1.0, "train"], "valid": [1.0, "valid"]}: weight/prefix pairs per
                     split, prefixes relative to the directory holding blend.json
    <prefix>.bin     the split's tokens, uint16 little-endian; a token is one UTF-8 byte (0..255)
                     and every document ends with the end-of-document token 256 (vocab size 257)
    <prefix>.idx.json  {"format": "nemotron-demo-bytes/1", "dtype": "uint16-le", "vocab_size": 257,
                     "eod_token": 256, "tokens": N, "documents": [[first_token, length], ...]}
Every `valid_every`-th document goes to `valid`; the rest to `train`.
"""

import json
import os
import sys
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import nemotron_artifacts as na
except ImportError:
    sys.stderr.write("error: nemotron_artifacts.py must sit next to this script (nemotron ships it)\n")
    sys.exit(2)

FORMAT = "nemotron-demo-bytes/1"
EOD = 256
VOCAB = 257


def read_documents(path):
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    docs, current = [], []
    for line in text.splitlines():
        if line.strip() == "---":
            docs.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    docs.append("\n".join(current).strip())
    return [d for d in docs if d]


def write_split(out_dir, prefix, docs):
    tokens = array("H")
    spans = []
    for doc in docs:
        start = len(tokens)
        tokens.extend(doc.encode("utf-8"))
        tokens.append(EOD)
        spans.append([start, len(tokens) - start])
    if sys.byteorder != "little":
        tokens.byteswap()
    with open(os.path.join(out_dir, prefix + ".bin"), "wb") as f:
        tokens.tofile(f)
    index = {
        "format": FORMAT,
        "dtype": "uint16-le",
        "vocab_size": VOCAB,
        "eod_token": EOD,
        "tokens": len(tokens),
        "documents": spans,
    }
    with open(os.path.join(out_dir, prefix + ".idx.json"), "w", encoding="utf-8") as f:
        json.dump(index, f)
    return len(tokens)


def main(argv):
    cfg, _rest = na.load_config(argv)
    cfg, inputs = na.resolve_config(cfg)
    script_dir = os.path.dirname(os.path.abspath(__file__))
    corpus = cfg.get("corpus", "corpus.txt")
    if not os.path.isabs(corpus):
        corpus = os.path.join(script_dir, corpus)
    if not os.path.isfile(corpus):
        raise na.ArtifactError("corpus %s not found" % corpus)
    docs = read_documents(corpus)
    limit = cfg.get("max_documents")
    if limit is not None:
        docs = docs[: int(limit)]
    every = int(cfg.get("valid_every", 6))
    if len(docs) < 2 or every < 2:
        raise na.ArtifactError("need at least 2 documents and valid_every >= 2 (got %d, %d)" % (len(docs), every))
    valid_ids = {i for i in range(len(docs)) if i % every == every - 1} or {len(docs) - 1}
    valid = [d for i, d in enumerate(docs) if i in valid_ids]
    train = [d for i, d in enumerate(docs) if i not in valid_ids]

    out_dir = os.path.abspath(cfg.get("output_dir") or "output/data")
    os.makedirs(out_dir, exist_ok=True)
    n_train = write_split(out_dir, "train", train)
    n_valid = write_split(out_dir, "valid", valid)
    with open(os.path.join(out_dir, "blend.json"), "w", encoding="utf-8") as f:
        json.dump({"train": [1.0, "train"], "valid": [1.0, "valid"]}, f, indent=2)
    print("[data] %d documents: train %d (%d tokens), valid %d (%d tokens) -> %s"
          % (len(docs), len(train), n_train, len(valid), n_valid, out_dir))

    art = cfg.get("artifact") or {}
    name = art.get("name")
    if name and na.is_main_process():
        m = na.publish(
            name,
            out_dir,
            type="dataset",
            metadata={
                "format": FORMAT,
                "vocab_size": VOCAB,
                "documents": len(docs),
                "train_tokens": n_train,
                "valid_tokens": n_valid,
            },
            inputs=inputs,
            copy=bool(art.get("copy", True)),
        )
        print("[artifact] published %s:v%d -> %s" % (m["name"], m["version"], m["path"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except na.ArtifactError as err:
        sys.stderr.write("error: %s\n" % err)
        sys.exit(2)
