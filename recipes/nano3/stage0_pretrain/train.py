# /// script
# requires-python = ">=3.10"
#
# [tool.runspec]
# schema = "1"
# docs = "Pretrain Nemotron 3 Nano with Megatron-Bridge on the blends made by `nano3 data prep pretrain`."
# name = "nano3/pretrain"
# image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
#
# [tool.runspec.run]
# launch = "torchrun"
#
# [tool.runspec.config]
# dir = "./config"
# default = "default"
# format = "omegaconf"
#
# [tool.runspec.resources]
# nodes = 2
# gpus_per_node = 8
# ///
"""nano3/pretrain (stage 0): Megatron-Bridge pretraining.

Usage (inside the container, one process per GPU):
    python -m torch.distributed.run --nproc_per_node=8 train.py --config train.yaml [key=value ...] [--mock]

Config: `recipe._target_` names a Megatron-Bridge recipe function returning a ConfigContainer; the
other keys under `recipe` are its keyword arguments. Every other top-level section (train,
scheduler, logger, checkpoint, …) overrides the container's fields. `${art:data,path}` resolves the
data artifact named by `run.data`; on completion rank 0 publishes `checkpoint.save` (by reference)
as artifact `artifact.name`, with the data artifact as its input.
"""

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

RECIPE = "nano3/pretrain"
CONTAINER = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
PASSTHROUGH_FLAGS = {"--mock"}


def require_libraries():
    """Import the training stack, or exit 2 naming the container that has it."""
    try:
        from megatron.bridge.training.gpt_step import forward_step
        from megatron.bridge.training.pretrain import pretrain
        from megatron.bridge.training.utils.omegaconf_utils import apply_overrides, create_omegaconf_dict_config
        from omegaconf import OmegaConf
    except ImportError as err:
        sys.stderr.write(
            "error: %s needs Megatron-Bridge, which is not importable here (%s).\n"
            "  hint: run it inside the container %s, e.g. `nemotron nano3 pretrain -c tiny --run <profile>`\n"
            % (RECIPE, err, CONTAINER)
        )
        sys.exit(2)
    return forward_step, pretrain, apply_overrides, create_omegaconf_dict_config, OmegaConf


def drop_unresolved_run_refs(value):
    """`${run.wandb.*}` left verbatim (no [wandb] in env.toml) means: not set."""
    if isinstance(value, dict):
        return {k: drop_unresolved_run_refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [drop_unresolved_run_refs(v) for v in value]
    if isinstance(value, str) and "${run." in value:
        return None
    return value


def main(argv):
    forward_step, pretrain, apply_overrides, create_omegaconf_dict_config, OmegaConf = require_libraries()
    import nemotron_artifacts as na

    cfg_raw, rest = na.load_config(argv)
    unknown = [a for a in rest if a not in PASSTHROUGH_FLAGS]
    if unknown:
        raise na.ArtifactError("unknown arguments: %s (known flags: %s)" % (" ".join(unknown), ", ".join(PASSTHROUGH_FLAGS)))
    cfg_raw, inputs = na.resolve_config(cfg_raw)
    cfg_raw = drop_unresolved_run_refs(cfg_raw)
    cfg_raw.pop("run", None)
    artifact = cfg_raw.pop("artifact", None) or {}
    cfg_raw.pop("artifacts", None)
    cfg = OmegaConf.to_container(OmegaConf.create(cfg_raw), resolve=True)

    recipe = dict(cfg.pop("recipe"))
    target = recipe.pop("_target_")
    module_name, _, func_name = target.rpartition(".")
    recipe_fn = getattr(importlib.import_module(module_name), func_name)
    if "--mock" in rest:
        recipe["mock"] = True
        recipe.pop("per_split_data_args_path", None)
    container = recipe_fn(**recipe)

    base, excluded = create_omegaconf_dict_config(container)
    merged = OmegaConf.merge(base, OmegaConf.create(cfg))
    apply_overrides(container, OmegaConf.to_container(merged, resolve=True), excluded)

    pretrain(container, forward_step)

    save_dir = cfg.get("checkpoint", {}).get("save")
    if artifact.get("name") and save_dir and na.is_main_process() and os.path.isdir(save_dir):
        iters = cfg.get("train", {}).get("train_iters")
        m = na.publish(artifact["name"], save_dir, type="model", metadata={"iteration": iters},
                       inputs=inputs, copy=False)
        print("[artifact] published %s:v%d -> %s" % (m["name"], m["version"], m["path"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as err:  # noqa: BLE001 - artifact/config errors are usage errors
        if type(err).__name__ == "ArtifactError":
            sys.stderr.write("error: %s\n" % err)
            sys.exit(2)
        raise
