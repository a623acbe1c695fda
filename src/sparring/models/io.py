"""Loading a user's model: a Python factory plus safetensors weights, or a skops file."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from sparring.errors import InputError


def import_module_from(module_name: str, search: str | Path | None = None) -> Any:
    """Import ``module_name``, looking in the folder ``search`` first (e.g. the config's folder)."""
    if search is None:
        return importlib.import_module(module_name)
    folder = str(Path(search).resolve())
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(folder)


def import_factory(spec: str, search: str | Path | None = None) -> Any:
    """Resolve ``"package.module:function"`` to the callable it names (``search``: a folder tried first)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"factory must look like 'package.module:function', got {spec!r}")
    try:
        module = import_module_from(module_name, search)
    except ImportError as e:
        where = f" (looked in {search} and on the Python path)" if search is not None else ""
        raise InputError(f"cannot import module {module_name!r} for factory {spec!r}{where}: {e}") from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InputError(f"module {module_name!r} has no callable {attr!r}")
    return fn


def load_torch_model(
    factory: str, weights: str | Path | None = None, search: str | Path | None = None
) -> nn.Module:
    """Build ``factory()`` and, if given, load its weights from a ``.safetensors`` file."""
    from safetensors.torch import load_file

    model = import_factory(factory, search)()
    if not isinstance(model, nn.Module):
        raise InputError(f"factory {factory!r} returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise InputError(f"weights file not found: {p}")
        refuse_pickle(p)
        try:
            state = load_file(str(p))
        except Exception as e:  # safetensors raises several types for a bad file
            raise InputError(f"cannot read {p} as safetensors: {e}") from e
        gist = state_mismatch(model.state_dict(), state)
        if gist:
            raise InputError(f"weights in {p} do not fit the model from {factory!r}: {gist}")
        model.load_state_dict(state)
    return model.eval()


def state_mismatch(own: dict[str, Any], state: dict[str, Any], show: int = 3) -> str:
    """The gist of why ``state`` does not load into a module whose state dict is ``own`` ('' if it does)."""

    def first(keys: list[str]) -> str:
        more = f", ... ({len(keys)} in all)" if len(keys) > show else ""
        return ", ".join(keys[:show]) + more

    parts = []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    sizes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing:
        parts.append(f"missing {first(missing)}")
    if unexpected:
        parts.append(f"unexpected {first(unexpected)}")
    if sizes:
        k = sizes[0]
        parts.append(f"size mismatch at {k}: file {list(state[k].shape)}, model {list(own[k].shape)}")
    return "; ".join(parts)


#: How pickle streams (protocol 2-5) and zip archives (``torch.save`` since 1.6) begin.
_PICKLE = tuple(bytes([0x80, proto]) for proto in range(2, 6))
_ZIP = b"PK\x03\x04"


def _head(p: Path) -> bytes:
    with p.open("rb") as fh:
        return fh.read(4)


def refuse_pickle_stream(p: Path) -> None:
    """Raise :class:`InputError` if ``p`` is a pickle stream (joblib, pickle.dump); it is never unpickled."""
    if _head(p).startswith(_PICKLE):
        raise InputError(
            f"{p} is a pickle file, which sparring never loads because unpickling runs code; where you trust it, "
            "save the estimator with skops.io.dump instead"
        )


def refuse_pickle(p: Path) -> None:
    """Raise :class:`InputError` if ``p`` is a pickle or ``torch.save`` file; it is never unpickled."""
    head = _head(p)
    if head.startswith(_PICKLE) or head == _ZIP:
        raise InputError(
            f"{p} is a pickle (torch.save) file, which sparring never loads because unpickling runs code; "
            "where you trust it, convert it: safetensors.torch.save_file(torch.load(PATH, weights_only=True), "
            "'model.safetensors')"
        )


def save_torch_weights(model: nn.Module, path: str | Path) -> None:
    """Save a module's state dict as safetensors."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def load_skops(path: str | Path, trusted: Sequence[str] | None = None) -> Any:
    """Load a fitted scikit-learn estimator saved with ``skops.io.dump``.

    skops refuses types it does not know; scikit-learn's own types (``sklearn.*``, e.g. a
    tree's ``sklearn.tree._tree.Tree``) are trusted by default, anything else must be listed
    in ``trusted``. A pickle file is refused without being opened as one.
    """
    import skops.io as sio

    p = Path(path)
    if not p.is_file():
        raise InputError(f"model file not found: {p}")
    refuse_pickle_stream(p)
    try:
        untrusted = sio.get_untrusted_types(file=str(p))
        allowed = list(trusted or [])
        blocked = [t for t in untrusted if t not in allowed and not t.startswith("sklearn.")]
        if blocked:
            raise InputError(f"{p} contains types not trusted: {', '.join(blocked)} (list them in trusted_types)")
        return sio.load(str(p), trusted=untrusted)
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot read {p} as a skops file: {e}") from e
