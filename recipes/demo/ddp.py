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
SHA-256 of its parameters after step 1, or after its first step when resumed (equal on all ranks
when the all-reduce works). Rank 0 logs
the loss, saves `checkpoint/model.pt` and publishes the model artifact with the data as its input.

Long runs (nemotron's auto_resume, the contract of demo/train): rank 0 saves the training state
(step, model, optimizer) to `$NEMOTRON_CHECKPOINT_DIR` (else `<output_dir>/checkpoints`) every
`train.checkpoint_every` steps. SIGUSR1 (time limit near) or SIGTERM may reach any rank: before each
step the ranks all-reduce a stop flag, so they all stop after the same step; rank 0 checkpoints,
then every rank exits with code 75 (EX_TEMPFAIL: "not finished, run me again"). At start rank 0
reads the latest checkpoint there and broadcasts it, so every rank resumes from the same step even
where the file system shows the ranks different things. A batch is drawn from a generator seeded by
(seed, rank, step), so the resumed run draws the batches the uninterrupted one would have and
prints the same losses. `train.step_seconds` sleeps before each step, to make the demo slow on
purpose. Each rank prints its pid (`rank R/W on HOST pid P`) so a test can signal it.
"""

import glob
import hashlib
import json
import os
import signal
import socket
import sys
import time
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


def batch_generator(seed, rank, step):
    """The generator of one rank's batch at one step: the same draws whenever that step runs."""
    return torch.Generator().manual_seed(((seed * 1000003 + rank) * 1000000007 + step) % (1 << 63))


EX_TEMPFAIL = 75  # "not finished: run me again" (checkpointed on a signal)
CHECKPOINT_FORMAT = "nemotron-demo-ddp-state/1"
_stop = []


def _on_signal(signum, _frame):
    _stop.append(signum)


def save_checkpoint(ckpt_dir, state):
    """Write step-NNNNNNNN.pt atomically (temp file + rename); keep the two latest."""
    os.makedirs(ckpt_dir, exist_ok=True)
    path = os.path.join(ckpt_dir, "step-%08d.pt" % state["step"])
    tmp = path + ".tmp-%d" % os.getpid()
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in sorted(glob.glob(os.path.join(ckpt_dir, "step-*.pt")))[:-2]:
        os.remove(old)
    return path


def latest_checkpoint(ckpt_dir):
    found = sorted(glob.glob(os.path.join(ckpt_dir, "step-*.pt")))
    return found[-1] if found else None


def main(argv):
    # installed first: a signal that comes while torch starts is not lost
    signal.signal(signal.SIGUSR1, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print("rank %d/%d on %s pid %d" % (RANK, WORLD, HOST, os.getpid()), flush=True)
    cfg, _rest = na.load_config(argv)
    cfg, inputs = na.resolve_config(cfg)
    train_cfg = cfg.get("train") or {}
    model_cfg = cfg.get("model") or {}
    steps = int(train_cfg.get("steps", 10))
    batch = int(train_cfg.get("batch_tokens", 256))
    seed = int(train_cfg.get("seed", 1234))
    fail_host = train_cfg.get("fail_host")  # tests: the ranks on this host fail after step 1
    checkpoint_every = int(train_cfg.get("checkpoint_every", 0))
    step_seconds = float(train_cfg.get("step_seconds", 0))
    dim = int(model_cfg.get("dim", 32))
    if steps < 1 or batch < 1:
        raise na.ArtifactError("train.steps and train.batch_tokens must be >= 1")
    if checkpoint_every < 0 or step_seconds < 0:
        raise na.ArtifactError("train.checkpoint_every and train.step_seconds must be >= 0")

    dist.init_process_group("gloo")
    print("rank %d: node rank %d (SLURM_NODEID %s), local rank %d, world size %d, master %s" % (
        RANK, NODE_RANK, os.environ.get("SLURM_NODEID", "-"), LOCAL_RANK, dist.get_world_size(),
        os.environ.get("MASTER_ADDR", "-")), flush=True)
    tokens, vocab = load_split(cfg["data"]["blend_path"], "train")
    torch.manual_seed(seed)
    module = Bigram(vocab, dim)
    opt = torch.optim.SGD(module.parameters(), lr=float(train_cfg.get("lr", 0.5)))
    out_dir = os.path.abspath(cfg.get("output_dir") or "output/ddp")
    ckpt_dir = os.environ.get("NEMOTRON_CHECKPOINT_DIR") or os.path.join(out_dir, "checkpoints")
    # What a checkpoint must agree on to be resumed (steps may grow; speed settings may change).
    fingerprint = {"vocab_size": vocab, "dim": dim, "batch_tokens": batch, "seed": seed,
                   "world_size": WORLD, "train_tokens": len(tokens)}

    # Resume: rank 0 reads the latest checkpoint and broadcasts it, so every rank starts from the
    # same step with the same state (None: start from step 0).
    found = [None]
    if RANK == 0:
        latest = latest_checkpoint(ckpt_dir)
        if latest:
            with open(latest, "rb") as f:
                found = [{"path": latest, "state": torch.load(f)}]
    dist.broadcast_object_list(found, src=0)
    start = 0
    resume_from = None
    if found[0] is not None:
        resume_from, state = found[0]["path"], found[0]["state"]
        if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != fingerprint:
            raise na.ArtifactError("%s was made with other settings (%s), not %s; remove it or use "
                                   "another checkpoint dir"
                                   % (resume_from, state.get("fingerprint"), fingerprint))
        start = state["step"]
        if start >= steps:
            raise na.ArtifactError("%s is at step %d, not before train.steps = %d; raise train.steps "
                                   "to train on" % (resume_from, start, steps))
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        print("rank %d: resuming from step %d (%s)" % (RANK, start, resume_from), flush=True)
    model = DistributedDataParallel(module)  # broadcasts rank 0's parameters to every rank

    def checkpoint(step, why):
        if RANK != 0:
            return
        if step == start and resume_from:
            path = resume_from  # nothing new since the resume
        else:
            path = save_checkpoint(ckpt_dir, {
                "format": CHECKPOINT_FORMAT, "step": step, "fingerprint": fingerprint,
                "model": module.state_dict(), "optimizer": opt.state_dict(),
            })
        print("[ddp] checkpoint at step %d (%s) -> %s" % (step, why, path), flush=True)

    mean = None
    for step in range(start + 1, steps + 1):
        deadline = time.monotonic() + step_seconds
        while not _stop and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        # Every rank stops after the same step: a signal seen by any rank stops them all.
        stop = torch.tensor([1 if _stop else 0])
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        if stop.item():
            why = "signal %s" % signal.Signals(_stop[0]).name if _stop else "another rank was signalled"
            checkpoint(step - 1, why)
            dist.barrier()  # rank 0 has saved before any rank exits (torchrun then stops the rest)
            print("rank %d: stopping at step %d/%d to be resumed (%s, exit %d)"
                  % (RANK, step - 1, steps, why, EX_TEMPFAIL), flush=True)
            dist.destroy_process_group()
            return EX_TEMPFAIL
        gen = batch_generator(seed, RANK, step)
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
        if step == start + 1:
            print("rank %d step %d params sha256 %s" % (RANK, step, params_sha256(module)), flush=True)
        if fail_host is not None and fail_host == HOST:
            sys.stderr.write("rank %d on %s: failing on purpose (train.fail_host)\n" % (RANK, HOST))
            sys.stderr.flush()
            os._exit(int(train_cfg.get("fail_code", 7)))
        if checkpoint_every and step % checkpoint_every == 0 and step < steps:
            checkpoint(step, "every %d steps" % checkpoint_every)

    if RANK == 0:
        ckpt = os.path.join(out_dir, "checkpoint")
        os.makedirs(ckpt, exist_ok=True)
        torch.save(module.state_dict(), os.path.join(ckpt, "model.pt"))
        with open(os.path.join(ckpt, "meta.json"), "w", encoding="utf-8") as f:
            json.dump({"format": "nemotron-demo-ddp/1", "vocab_size": vocab,
                       "dim": dim, "world_size": WORLD,
                       "steps": steps, "params_sha256": params_sha256(module)}, f)
        print("[ddp] final loss %.4f" % mean.item(), flush=True)
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
