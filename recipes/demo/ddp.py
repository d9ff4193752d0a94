# /// script
# requires-python = ">=3.8"
# dependencies = ["torch"]
#
# [tool.runspec]
# schema = "1"
# docs = "Train a tiny byte-level model with DistributedDataParallel (gloo, CPU) on the demo dataset and publish it."
# name = "demo/ddp"
# setup = """
# Needs PyTorch for the interpreter that runs it (Debian: apt-get install python3-torch).
# Choose the interpreter with NEMOTRON_PYTHON (local) or `python = "/usr/bin/python3"` in the profile.
# """
#
# [tool.runspec.run]
# launch = "torchrun"
#
# [tool.runspec.config]
# dir = "./config/ddp"
# default = "default"
# format = "json"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
"""demo/ddp: a byte-level bigram model (embedding + linear) trained with DistributedDataParallel.

Usage (under torchrun): torchrun --nproc-per-node=N ddp.py --config CONFIG.json [key.path=value ...]

Every rank reads the demo dataset (`${art:data,path}`, see data.py) and takes its own random batch
each step (seeded by rank and step), so local gradients differ; DDP all-reduces them over gloo, so
the parameters stay identical on every rank. Each rank prints `rank R/W on HOST` at start and the
SHA-256 of its parameters after step 1 (equal on all ranks when the all-reduce works). Rank 0 logs
the loss, saves `checkpoint/model.pt` and publishes the model artifact with the data as its input.
"""

import hashlib
import json
import os
import socket
import sys
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import nemotron_artifacts as na
except ImportError:
    sys.stderr.write("error: nemotron_artifacts.py must sit next to this script (nemotron ships it)\n")
    sys.exit(2)

FORMAT = "nemotron-demo-bytes/1"
RANK = int(os.environ.get("RANK", "0"))
WORLD = int(os.environ.get("WORLD_SIZE", "1"))
LOCAL_RANK = int(os.environ.get("LOCAL_RANK", "0"))
NODE_RANK = int(os.environ.get("GROUP_RANK", "0"))
HOST = socket.gethostname()

try:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
except ImportError as err:
    sys.stderr.write(
        "error: demo/ddp needs PyTorch, but %s cannot import it (%s).\n"
        "  hint: install the Debian package python3-torch, and run with an interpreter that has it:\n"
        "        NEMOTRON_PYTHON=/usr/bin/python3 (local) or python = \"/usr/bin/python3\" in the profile\n"
        % (sys.executable, err)
    )
    sys.exit(2)


def load_split(blend_path, split):
    """The tokens of one split of a demo dataset (uint16 little-endian shards, see data.py)."""
    with open(blend_path, "r", encoding="utf-8") as f:
        blend = json.load(f)
    if split not in blend:
        raise na.ArtifactError("%s has no %r split (has: %s)" % (blend_path, split, ", ".join(blend)))
    entries = blend[split]
    base = os.path.dirname(blend_path)
    tokens = array("H")
    vocab = None
    for i in range(0, len(entries), 2):
        prefix = os.path.join(base, entries[i + 1])
        with open(prefix + ".idx.json", "r", encoding="utf-8") as f:
            index = json.load(f)
        if index.get("format") != FORMAT:
            raise na.ArtifactError("%s.idx.json: unsupported format %r" % (prefix, index.get("format")))
        vocab = index["vocab_size"]
        part = array("H")
        with open(prefix + ".bin", "rb") as f:
            part.frombytes(f.read())
        if sys.byteorder != "little":
            part.byteswap()
        tokens.extend(part)
    return torch.tensor(list(tokens), dtype=torch.long), vocab


class Bigram(torch.nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.out = torch.nn.Linear(dim, vocab)

    def forward(self, x):
        return self.out(torch.tanh(self.embed(x)))


def params_sha256(model):
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv):
    print("rank %d/%d on %s" % (RANK, WORLD, HOST), flush=True)
    cfg, _rest = na.load_config(argv)
    cfg, inputs = na.resolve_config(cfg)
    train_cfg = cfg.get("train") or {}
    model_cfg = cfg.get("model") or {}
    steps = int(train_cfg.get("steps", 10))
    batch = int(train_cfg.get("batch_tokens", 256))
    seed = int(train_cfg.get("seed", 1234))
    fail_host = train_cfg.get("fail_host")  # tests: the ranks on this host fail after step 1
    if steps < 1 or batch < 1:
        raise na.ArtifactError("train.steps and train.batch_tokens must be >= 1")

    dist.init_process_group("gloo")
    print("rank %d: node rank %d (SLURM_NODEID %s), local rank %d, world size %d, master %s" % (
        RANK, NODE_RANK, os.environ.get("SLURM_NODEID", "-"), LOCAL_RANK, dist.get_world_size(),
        os.environ.get("MASTER_ADDR", "-")), flush=True)
    tokens, vocab = load_split(cfg["data"]["blend_path"], "train")
    torch.manual_seed(seed)
    model = DistributedDataParallel(Bigram(vocab, int(model_cfg.get("dim", 32))))
    opt = torch.optim.SGD(model.parameters(), lr=float(train_cfg.get("lr", 0.5)))
    gen = torch.Generator().manual_seed(seed * 1000 + RANK)
    out_dir = os.path.abspath(cfg.get("output_dir") or "output/ddp")
    loss = None
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(tokens) - 1, (batch,), generator=gen)
        x, y = tokens[idx], tokens[idx + 1]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()  # DDP all-reduces the gradients here
        opt.step()
        # the mean loss over all ranks, for the log
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        mean /= WORLD
        print("rank %d step %d/%d loss %.4f mean_loss %.4f" % (RANK, step, steps, loss.item(), mean.item()),
              flush=True)
        if step == 1:
            print("rank %d step 1 params sha256 %s" % (RANK, params_sha256(model.module)), flush=True)
        if fail_host is not None and fail_host == HOST:
            sys.stderr.write("rank %d on %s: failing on purpose (train.fail_host)\n" % (RANK, HOST))
            sys.stderr.flush()
            os._exit(int(train_cfg.get("fail_code", 7)))

    if RANK == 0:
        ckpt = os.path.join(out_dir, "checkpoint")
        os.makedirs(ckpt, exist_ok=True)
        torch.save(model.module.state_dict(), os.path.join(ckpt, "model.pt"))
        with open(os.path.join(ckpt, "meta.json"), "w", encoding="utf-8") as f:
            json.dump({"format": "nemotron-demo-ddp/1", "vocab_size": vocab,
                       "dim": int(model_cfg.get("dim", 32)), "world_size": WORLD,
                       "steps": steps, "params_sha256": params_sha256(model.module)}, f)
        print("[ddp] checkpoint -> %s" % ckpt, flush=True)
        art = cfg.get("artifact") or {}
        name = art.get("name")
        if name and na.is_main_process():
            m = na.publish(
                name,
                ckpt,
                type="model",
                metadata={"iteration": steps, "world_size": WORLD, "loss": round(mean.item(), 6)},
                inputs=inputs,
                copy=bool(art.get("copy", True)),
            )
            print("[artifact] published %s:v%d -> %s (inputs: %s)"
                  % (m["name"], m["version"], m["path"], ", ".join(m["used_artifacts"]) or "none"),
                  flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except na.ArtifactError as err:
        sys.stderr.write("error: %s\n" % err)
        sys.exit(2)
