"""One checkpoint format: save atomically, load safely, rebuild the model it describes.

A checkpoint is a dict with `model` (state_dict), `model_config` (UNet keyword arguments),
`train_config`, `optimizer`, `scheduler`, `epoch`, `step`, `best_val_psnr`, `history` and
`format_version`. Bare state_dicts, such as the original project's, load too.
"""

from __future__ import annotations

from pathlib import Path

import torch

import constants as C
from model.files import atomic_write
from model.unet import UNet

FORMAT_VERSION = 1
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # added by DistributedDataParallel / torch.compile


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message names the file and the problem."""


def save_checkpoint(path: str | Path, **state) -> Path:
    """Save `state` plus the format version to `path` through a temporary file."""
    with atomic_write(path) as file:
        torch.save({**state, "format_version": FORMAT_VERSION}, file)
    return Path(path)


def repo_relative(value: object) -> object:
    """A path inside the repository as a relative one, anything else unchanged: a published
    checkpoint's settings name no folder of the machine it was trained on."""
    if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(C.ROOT_DIR):
        return str(Path(value).relative_to(C.ROOT_DIR))
    return value


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict (a bare state_dict is wrapped as {"model": ...})."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many kinds; the user needs one line
        raise CheckpointError(f"{path}: not a PyTorch checkpoint, or one that would run code when loaded") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: holds a {type(data).__name__}, not a checkpoint dict")
    if "model" not in data:  # a bare state_dict
        data = {"model": data}
    if not all(isinstance(v, torch.Tensor) for v in data["model"].values()):
        raise CheckpointError(f"{path}: 'model' is not a state_dict of tensors")
    data["model"] = strip_wrapper_prefixes(data["model"])
    return data


def strip_wrapper_prefixes(state_dict: dict) -> dict:
    for prefix in WRAPPER_PREFIXES:
        state_dict = {k.removeprefix(prefix): v for k, v in state_dict.items()}
    return state_dict


def match_state_dict(model: torch.nn.Module, state_dict: dict, path: Path) -> dict:
    """Return `state_dict` under the model's own key names, or explain why it does not fit.

    Keys equal to the model's load as they are. A checkpoint of the original project whose
    sub-module names differ (but whose tensors are the same, in the same order) is mapped by
    position, and only if every shape agrees.
    """
    expected = model.state_dict()
    if state_dict.keys() == expected.keys():
        mismatched = [k for k, v in state_dict.items() if v.shape != expected[k].shape]
        if not mismatched:
            return state_dict
        key = mismatched[0]
        raise CheckpointError(
            f"{path}: wrong architecture for this UNet ({len(mismatched)} tensors differ in shape, e.g. "
            f"{key}: {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)})"
        )
    shapes_match = len(state_dict) == len(expected) and all(
        a.shape == b.shape for a, b in zip(state_dict.values(), expected.values(), strict=False)
    )
    if shapes_match:
        return dict(zip(expected.keys(), state_dict.values(), strict=False))
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    raise CheckpointError(
        f"{path}: wrong architecture for this UNet ({len(missing)} missing keys, e.g. {missing[:2]}; "
        f"{len(unexpected)} unexpected, e.g. {unexpected[:2]})"
    )


def load_model(
    path: str | Path, device: str | torch.device = "cpu", model_config: dict | None = None
) -> tuple[UNet, dict]:
    """Rebuild the UNet a checkpoint describes and load its weights, in eval mode.

    `model_config` is needed only for bare state_dicts of a non-default UNet.
    Returns (model, checkpoint dict).
    """
    checkpoint = load_checkpoint(path, device)
    config = checkpoint.get("model_config") or model_config
    model = UNet(**(config or {}))
    try:
        state_dict = match_state_dict(model, checkpoint["model"], Path(path))
    except CheckpointError as error:
        if config is not None:
            raise
        raise CheckpointError(
            f"{error}: the file names no model_config, so the original UNet() was assumed; "
            "pass load_model(path, model_config={...}) with the UNet arguments it was trained with"
        ) from None
    model.load_state_dict(state_dict)
    return model.to(device).eval(), checkpoint
