"""Read the weights of a whole pickled torch module without running its code or importing its classes.

`torch.save(model)` pickles the module object: unpickling it normally imports the classes it
names (often `__main__.Net`, so it fails anywhere but in the author's script) and calls whatever
the pickle says, which is how a malicious file runs code.  Here the pickle is read by an unpickler
that resolves only the functions torch, collections and numpy use to rebuild tensors and
containers; every other class becomes an inert placeholder that records the state the pickle
gives it and can do nothing else.  The placeholders' `_parameters` / `_buffers` / `_modules`
trees (nn.Module's own bookkeeping) then give the state_dict, with the usual dotted names.
Both torch file formats (zip and the legacy one) go through `torch.load` with this unpickler.
"""

from __future__ import annotations

import collections
import importlib
import pickle
import warnings
from pathlib import Path
from types import SimpleNamespace

from exporters.base import ExportError
from verifier.errors import first_line

#: The only callables a pickle may reach: tensor, parameter, container and array reconstruction.
_RECONSTRUCTORS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "Size"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class Inert:
    """Stands for a class the pickle names: accepts any arguments and state, runs nothing."""

    def __init__(self, *args, **kwargs):
        self.__dict__["_inert_args"] = (args, kwargs)

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict | None):
            state = {**(state[0] or {}), **(state[1] or {})}  # (instance dict, slots)
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_inert_state"] = state


def _inert_class(module: str, name: str) -> type:
    """A fresh placeholder class named after the pickled one (for messages), deriving only from Inert."""
    return type(name, (Inert,), {"__module__": f"inert:{module}"})


def _resolve(module: str, name: str):
    """The real object for an allowed reconstructor or a torch storage type, else a placeholder class."""
    if (module, name) in _RECONSTRUCTORS or (module == "torch" and name.endswith("Storage")):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # e.g. numpy.core renamed numpy._core: stays inert
            pass
    return _inert_class(module, name)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        return _resolve(module, name)


def _load(file, **kwargs):
    return _Unpickler(file, **kwargs).load()


#: What torch.load(pickle_module=...) needs: an Unpickler class and a load function.
INERT_PICKLE = SimpleNamespace(Unpickler=_Unpickler, load=_load, __name__="inert_pickle")


def _collect(module: Inert, prefix: str, tensor_type: type, out: dict, seen: set[int]) -> None:
    """nn.Module.state_dict's walk, on the placeholder's recorded `_parameters`, `_buffers`, `_modules`.

    Only real tensors are kept, and each module is visited once: a crafted pickle can put anything
    in those dicts, including the module itself.
    """
    seen.add(id(module))
    for group in ("_parameters", "_buffers"):
        entries = getattr(module, group, None)
        for name, tensor in (entries.items() if isinstance(entries, dict) else ()):
            if isinstance(tensor, tensor_type):
                out[f"{prefix}{name}"] = tensor
    for name, child in module.__dict__["_modules"].items():
        if _is_module(child) and id(child) not in seen:
            _collect(child, f"{prefix}{name}.", tensor_type, out, seen)


def _is_module(obj) -> bool:
    """Whether a placeholder carries nn.Module's bookkeeping (then it stood for a module)."""
    return isinstance(obj, Inert) and isinstance(obj.__dict__.get("_modules"), dict)


def inert_state_dict(torch, path: Path) -> dict:
    """The state_dict of the module pickled in `path` (alone, or as a value of a checkpoint dict)."""
    try:
        with warnings.catch_warnings():  # torch warns that the placeholders' source code cannot be checked
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=False, pickle_module=INERT_PICKLE,
                                encoding="latin1")  # latin1: Python 2 pickles (VDSR's) hold byte strings
    except Exception as exc:  # any parse failure of a damaged pickle: one line
        raise ExportError(f"cannot read {path} as a pickled torch module: {first_line(exc)}") from exc
    if isinstance(loaded, dict | collections.OrderedDict):
        modules = [value for value in loaded.values() if _is_module(value)]
        if len(modules) == 1:
            loaded = modules[0]
    if not _is_module(loaded):
        raise ExportError(f"{path} holds no torch module (found {type(loaded).__name__})")
    weights: dict = {}
    _collect(loaded, "", torch.Tensor, weights, set())
    if not weights:
        raise ExportError(f"{path} holds a module without parameters")
    return weights
