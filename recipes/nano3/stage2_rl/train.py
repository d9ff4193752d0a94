# /// script
# requires-python = ">=3.10"
#
# [tool.runspec]
# schema = "1"
# docs = "GRPO reinforcement learning of the fine-tuned Nemotron 3 Nano with NeMo-RL on a Ray cluster."
# name = "nano3/rl"
# image = "nvcr.io/nvidia/nemo-rl:v0.4.0.nemotron_3_nano"
#
# [tool.runspec.run]
# launch = "ray"
# cmd = "uv run python {script} --config {config}"
# workdir = "/opt/nemo-rl"
#
# [tool.runspec.config]
# dir = "./config"
# default = "tiny"
# format = "omegaconf"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 8
# ///
"""nano3/rl (stage 2): GRPO with NeMo-RL.

Usage (inside the NeMo-RL container, from /opt/nemo-rl, on the Ray head):
    uv run python train.py --config config.yaml [key=value ...]

The config is NeMo-RL's GRPO master config (policy, grpo, loss_fn, data, env, logger,
checkpointing, cluster), laid over the NeMo-RL config file `nemo_rl_defaults` (a path inside the
container), plus `run.model` (the SFT checkpoint artifact, `${art:model,path}`) and
`run.data` (the RL prompt data, `${art:data,path}`). Artifacts are resolved here; the resolved
config is handed to NeMo-RL's GRPO entry point (`entry`, default the container's
examples/run_grpo_math.py). On success the checkpoint directory is published (by reference) as
artifact `artifact.name`.
"""

import os
import runpy
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

RECIPE = "nano3/rl"
CONTAINER = "nvcr.io/nvidia/nemo-rl:v0.4.0.nemotron_3_nano"
DEFAULT_ENTRY = "/opt/nemo-rl/examples/run_grpo_math.py"


def require_libraries():
    """Import NeMo-RL and Ray, or exit 2 naming the container that has them."""
    try:
        import nemo_rl  # noqa: F401
        import ray  # noqa: F401
        from omegaconf import OmegaConf
    except ImportError as err:
        sys.stderr.write(
            "error: %s needs NeMo-RL and Ray, which are not importable here (%s).\n"
            "  hint: run it inside the container %s, e.g. `nemotron nano3 rl -c tiny --run <profile>`\n"
            % (RECIPE, err, CONTAINER)
        )
        sys.exit(2)
    return OmegaConf


def drop_unresolved_run_refs(value):
    if isinstance(value, dict):
        return {k: drop_unresolved_run_refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [drop_unresolved_run_refs(v) for v in value]
    if isinstance(value, str) and "${run." in value:
        return None
    return value


def main(argv):
    OmegaConf = require_libraries()
    import nemotron_artifacts as na

    cfg_raw, rest = na.load_config(argv)
    cfg_raw, inputs = na.resolve_config(cfg_raw)
    cfg_raw = drop_unresolved_run_refs(cfg_raw)
    cfg_raw.pop("run", None)
    cfg_raw.pop("artifacts", None)
    artifact = cfg_raw.pop("artifact", None) or {}
    entry = cfg_raw.pop("entry", None) or DEFAULT_ENTRY
    base_path = cfg_raw.pop("nemo_rl_defaults", None)
    if not os.path.isfile(entry):
        raise na.ArtifactError("NeMo-RL entry point %s not found (is this the %s container?)" % (entry, CONTAINER))

    merged = OmegaConf.create(cfg_raw)
    if base_path:
        if not os.path.isfile(base_path):
            raise na.ArtifactError("nemo_rl_defaults %s not found (is this the %s container?)" % (base_path, CONTAINER))
        merged = OmegaConf.merge(OmegaConf.load(base_path), merged)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="nano3-rl-", delete=False) as f:
        f.write(OmegaConf.to_yaml(merged))
        resolved_path = f.name
    print("[nano3/rl] resolved config -> %s; running %s" % (resolved_path, entry), flush=True)
    sys.argv = [entry, "--config", resolved_path, *rest]
    runpy.run_path(entry, run_name="__main__")

    ckpt = (cfg_raw.get("checkpointing") or {}).get("checkpoint_dir")
    if artifact.get("name") and ckpt and os.path.isdir(ckpt):
        steps = (cfg_raw.get("grpo") or {}).get("max_num_steps")
        m = na.publish(artifact["name"], ckpt, type="model", metadata={"iteration": steps},
                       inputs=inputs, copy=False)
        print("[artifact] published %s:v%d -> %s" % (m["name"], m["version"], m["path"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as err:  # noqa: BLE001
        if type(err).__name__ == "ArtifactError":
            sys.stderr.write("error: %s\n" % err)
            sys.exit(2)
        raise
