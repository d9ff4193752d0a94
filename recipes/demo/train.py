# /// script
# requires-python = ">=3.8"
# dependencies = []
#
# [tool.runspec]
# schema = "1"
# docs = "Train a tiny byte-level n-gram language model on the demo dataset and publish it."
# name = "demo/train"
#
# [tool.runspec.run]
# launch = "direct"
#
# [tool.runspec.config]
# dir = "./config/train"
# default = "default"
# format = "json"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
"""demo/train: a byte-level interpolated n-gram LM trained online, one batch per step.

Usage: python3 train.py --config CONFIG.json [key.path=value ...]

The dataset comes from `${art:data,path}` (see data.py for its format). Each step takes the next
`batch_tokens` training tokens, scores them with the current model (train_loss: mean negative
log-likelihood in nats per token, measured before the model sees them), adds their counts, then
scores the whole valid split (val_loss). Probabilities are Dirichlet-smoothed and interpolated
across orders: P_k(w|h) = (c(h,w) + smoothing * P_{k-1}(w|h')) / (c(h) + smoothing), with an
add-one unigram at the bottom. The checkpoint (`checkpoint/model.json`) holds the counts.

Long runs (nemotron's auto_resume): the training state (step, data position, random state, counts)
is saved to `$NEMOTRON_CHECKPOINT_DIR` (else `<output_dir>/checkpoints`) every
`train.checkpoint_every` steps and when SIGUSR1 (time limit near) or SIGTERM arrives; the script
then exits with code 75 (EX_TEMPFAIL: "not finished, run me again"). A run that finds a checkpoint
there resumes from the latest one, so an interrupted run prints the same losses as an
uninterrupted one. `train.step_seconds` sleeps in each step, to make the demo slow on purpose.
"""

import glob
import json
import math
import os
import random
import signal
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


def load_split(blend_path, split):
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
    return tokens, vocab


class NGram:
    def __init__(self, order, smoothing, vocab):
        self.order = order
        self.smoothing = float(smoothing)
        self.vocab = vocab
        self.unigram = [0] * vocab
        self.total = 0
        self.tables = [dict() for _ in range(order)]  # tables[k]: context(k tokens) -> {token: count}
        self.context_totals = [dict() for _ in range(order)]

    def prob(self, history, token):
        p = (self.unigram[token] + 1.0) / (self.total + self.vocab)
        for k in range(1, self.order):
            if len(history) < k:
                break
            ctx = tuple(history[-k:])
            total = self.context_totals[k].get(ctx, 0)
            if total:
                count = self.tables[k][ctx].get(token, 0)
                p = (count + self.smoothing * p) / (total + self.smoothing)
        return p

    def add(self, history, token):
        self.unigram[token] += 1
        self.total += 1
        for k in range(1, self.order):
            if len(history) < k:
                break
            ctx = tuple(history[-k:])
            row = self.tables[k].setdefault(ctx, {})
            row[token] = row.get(token, 0) + 1
            self.context_totals[k][ctx] = self.context_totals[k].get(ctx, 0) + 1

    def nll(self, tokens, start, end):
        total = 0.0
        for i in range(start, end):
            history = tokens[max(0, i - self.order + 1): i]
            total -= math.log(self.prob(history, tokens[i]))
        return total / max(1, end - start)

    def to_json(self):
        return {
            "format": "nemotron-demo-ngram/1",
            "order": self.order,
            "smoothing": self.smoothing,
            "vocab_size": self.vocab,
            "unigram": self.unigram,
            "tables": [
                {",".join(map(str, ctx)): row for ctx, row in table.items()} for table in self.tables
            ],
        }

    @classmethod
    def from_json(cls, data):
        model = cls(data["order"], data["smoothing"], data["vocab_size"])
        model.unigram = list(data["unigram"])
        model.total = sum(model.unigram)
        for k, table in enumerate(data["tables"]):
            for key, row in table.items():
                ctx = tuple(int(x) for x in key.split(",")) if key else ()
                model.tables[k][ctx] = {int(t): c for t, c in row.items()}
                model.context_totals[k][ctx] = sum(row.values())
        return model

    def sample(self, length, rng, prompt):
        out = list(prompt)
        for _ in range(length):
            history = out[-(self.order - 1):] if self.order > 1 else []
            r = rng.random()
            acc = 0.0
            choice = self.vocab - 1
            for t in range(self.vocab):
                acc += self.prob(history, t)
                if acc >= r:
                    choice = t
                    break
            if choice == 256:
                break
            out.append(choice)
        return bytes(b for b in out if b < 256).decode("utf-8", errors="replace")


EX_TEMPFAIL = 75  # "not finished: run me again" (checkpointed on a signal)
_stop = []


def _on_signal(signum, _frame):
    _stop.append(signum)


def save_checkpoint(ckpt_dir, state):
    """Write step-NNNNNNNN.json atomically (temp file + rename); keep the two latest."""
    os.makedirs(ckpt_dir, exist_ok=True)
    path = os.path.join(ckpt_dir, "step-%08d.json" % state["step"])
    tmp = path + ".tmp-%d" % os.getpid()
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in sorted(glob.glob(os.path.join(ckpt_dir, "step-*.json")))[:-2]:
        os.remove(old)
    return path


def latest_checkpoint(ckpt_dir):
    found = sorted(glob.glob(os.path.join(ckpt_dir, "step-*.json")))
    return found[-1] if found else None


def main(argv):
    cfg, _rest = na.load_config(argv)
    cfg, inputs = na.resolve_config(cfg)
    blend_path = cfg["data"]["blend_path"]
    train_tokens, vocab = load_split(blend_path, "train")
    valid_tokens, _ = load_split(blend_path, "valid")
    model_cfg = cfg.get("model") or {}
    train_cfg = cfg.get("train") or {}
    steps = int(train_cfg.get("steps", 20))
    batch = int(train_cfg.get("batch_tokens", 1024))
    max_valid = int(train_cfg.get("max_valid_tokens", 4096))
    rng = random.Random(int(train_cfg.get("seed", 1234)))
    checkpoint_every = int(train_cfg.get("checkpoint_every", 0))
    step_seconds = float(train_cfg.get("step_seconds", 0))
    if steps < 1 or batch < 1:
        raise na.ArtifactError("train.steps and train.batch_tokens must be >= 1")
    if checkpoint_every < 0 or step_seconds < 0:
        raise na.ArtifactError("train.checkpoint_every and train.step_seconds must be >= 0")
    model = NGram(int(model_cfg.get("order", 3)), model_cfg.get("smoothing", 2.0), vocab)
    valid_end = min(len(valid_tokens), max_valid)
    out_dir = os.path.abspath(cfg.get("output_dir") or "output/train")
    os.makedirs(out_dir, exist_ok=True)
    ckpt_dir = os.environ.get("NEMOTRON_CHECKPOINT_DIR") or os.path.join(out_dir, "checkpoints")
    # What a checkpoint must agree on to be resumed (steps may grow; speed settings may change).
    fingerprint = {"order": model.order, "smoothing": model.smoothing, "batch_tokens": batch,
                   "seed": int(train_cfg.get("seed", 1234)), "train_tokens": len(train_tokens)}
    print("[train] %d train tokens, %d valid tokens, order %d, %d steps of %d tokens"
          % (len(train_tokens), valid_end, model.order, steps, batch))

    pos = rng.randrange(len(train_tokens))
    val_loss = None
    start = 0
    resume_from = latest_checkpoint(ckpt_dir)
    if resume_from:
        with open(resume_from, "r", encoding="utf-8") as f:
            state = json.load(f)
        if state.get("fingerprint") != fingerprint:
            raise na.ArtifactError("%s was made with other settings (%s), not %s"
                                   % (resume_from, state.get("fingerprint"), fingerprint))
        start, pos, val_loss = state["step"], state["pos"], state["val_loss"]
        version, internal, gauss = state["rng"]
        rng.setstate((version, tuple(internal), gauss))
        model = NGram.from_json(state["model"])
        print("[train] resuming from step %d (%s)" % (start, resume_from), flush=True)

    def checkpoint(step, why):
        if step == start and resume_from:
            path = resume_from  # nothing new since the resume
        else:
            version, internal, gauss = rng.getstate()
            path = save_checkpoint(ckpt_dir, {
                "format": "nemotron-demo-train-state/1", "step": step, "pos": pos,
                "val_loss": val_loss, "rng": [version, list(internal), gauss],
                "fingerprint": fingerprint, "model": model.to_json(),
            })
        print("[train] checkpoint at step %d (%s) -> %s" % (step, why, path), flush=True)

    signal.signal(signal.SIGUSR1, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    metrics_path = os.path.join(out_dir, "metrics.jsonl")
    kept = []
    if start and os.path.exists(metrics_path):
        with open(metrics_path, "r", encoding="utf-8") as f:
            kept = [line for line in f if line.strip() and json.loads(line)["step"] <= start]
    with open(metrics_path, "w", encoding="utf-8") as log:
        log.writelines(kept)
        for step in range(start + 1, steps + 1):
            deadline = time.monotonic() + step_seconds
            while not _stop and time.monotonic() < deadline:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            if _stop:
                log.flush()
                checkpoint(step - 1, "signal %s" % signal.Signals(_stop[0]).name)
                print("[train] stopping at step %d/%d to be resumed (exit %d)"
                      % (step - 1, steps, EX_TEMPFAIL), flush=True)
                return EX_TEMPFAIL
            idx = [(pos + j) % len(train_tokens) for j in range(batch)]
            seq = [train_tokens[i] for i in idx]
            prefix = [train_tokens[(pos - j) % len(train_tokens)] for j in range(model.order - 1, 0, -1)]
            window = prefix + seq
            off = len(prefix)
            train_loss = model.nll(window, off, len(window))
            for i in range(off, len(window)):
                model.add(window[max(0, i - model.order + 1): i], window[i])
            pos = (pos + batch) % len(train_tokens)
            val_loss = model.nll(valid_tokens, 0, valid_end)
            print("step %d/%d loss %.4f val_loss %.4f" % (step, steps, train_loss, val_loss), flush=True)
            log.write(json.dumps({"step": step, "loss": train_loss, "val_loss": val_loss}) + "\n")
            if checkpoint_every and step % checkpoint_every == 0 and step < steps:
                log.flush()
                checkpoint(step, "every %d steps" % checkpoint_every)

    ckpt = os.path.join(out_dir, "checkpoint")
    os.makedirs(ckpt, exist_ok=True)
    with open(os.path.join(ckpt, "model.json"), "w", encoding="utf-8") as f:
        json.dump(model.to_json(), f)
    sample = model.sample(int(train_cfg.get("sample_bytes", 160)), rng, list(b"The "))
    with open(os.path.join(ckpt, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(sample + "\n")
    print("[train] checkpoint -> %s" % ckpt)
    print("[train] sample: %s" % sample.replace("\n", " "))

    art = cfg.get("artifact") or {}
    name = art.get("name")
    if name and na.is_main_process():
        m = na.publish(
            name,
            ckpt,
            type="model",
            metadata={"iteration": steps, "order": model.order, "val_loss": round(val_loss, 6)},
            inputs=inputs,
            copy=bool(art.get("copy", True)),
        )
        print("[artifact] published %s:v%d -> %s (inputs: %s)"
              % (m["name"], m["version"], m["path"], ", ".join(m["used_artifacts"]) or "none"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except na.ArtifactError as err:
        sys.stderr.write("error: %s\n" % err)
        sys.exit(2)
