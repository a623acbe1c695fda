"""Saving and loading the pieces of shared artefacts: JSON, tensors, module weights, poisoned datasets.

An artefact's ``save`` and ``load`` (see :class:`sparring.assess.context.Artefact`) write
its folder under ``DIR/.work/artefacts`` with these helpers: safetensors for tensors and
weights (never pickle), JSON for the rest, each file written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from sparring.data import PoisonedDataset, Trigger


def save_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (a reader sees the old file or the whole new one)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    tmp.replace(path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):  # tensors and numpy arrays or scalars
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def save_tensors(path: Path, tensors: Mapping[str, Tensor]) -> None:
    """Tensors to a safetensors file, atomically."""
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(path)


def load_tensors(path: Path) -> dict[str, Tensor]:
    """Tensors from a safetensors file."""
    return load_file(str(path))


def save_module(path: Path, module: nn.Module) -> None:
    """A module's weights (state dict) to a safetensors file."""
    save_tensors(path, module.state_dict())


def load_module(path: Path, module: nn.Module) -> nn.Module:
    """Load weights saved by :func:`save_module` into ``module``; returns it in eval mode."""
    module.load_state_dict(load_tensors(path))
    return module.eval()


def save_poisoned(folder: Path, data: PoisonedDataset, stem: str = "data") -> None:
    """A poisoned dataset (tensors, trigger, target and names) to ``folder``."""
    tensors = {"x": data.x, "y": data.y, "poison_mask": data.poison_mask, "original_y": data.original_y}
    if data.trigger is not None:
        tensors.update(trigger_pattern=data.trigger.pattern, trigger_alpha=data.trigger.alpha)
    save_tensors(folder / f"{stem}.safetensors", tensors)
    meta = {"classes": list(data.classes), "name": data.name, "target": data.target, "all_to_all": data.all_to_all}
    save_json(folder / f"{stem}.json", meta)


def load_poisoned(folder: Path, stem: str = "data") -> PoisonedDataset:
    """A poisoned dataset saved by :func:`save_poisoned`."""
    t = load_tensors(folder / f"{stem}.safetensors")
    meta = json.loads((folder / f"{stem}.json").read_text())
    trigger = Trigger(t["trigger_pattern"], t["trigger_alpha"]) if "trigger_pattern" in t else None
    return PoisonedDataset(
        t["x"],
        t["y"],
        list(meta["classes"]),
        str(meta["name"]),
        poison_mask=t["poison_mask"],
        original_y=t["original_y"],
        trigger=trigger,
        target=meta["target"],
        all_to_all=bool(meta["all_to_all"]),
    )
