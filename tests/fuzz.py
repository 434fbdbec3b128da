"""Fuzz verifier's readers of untrusted files: any exception but a one-line VerifierError is a bug.

Run:  python tests/fuzz.py [fingerprint|onnx|verify|all] [--count N] [--seed S]

- ``fingerprint``: byte flips, insertions and truncations of a valid fingerprint file;
- ``onnx``: the same on a small ONNX model, through ``verifier.onnx_file.read_onnx`` and ``load_model``;
- ``verify``: loadable fingerprints whose JSON values were mutated and re-digested (what a forger
  makes), loaded and used to verify a model;
- ``exporters``: the exporters' readers of untrusted files (Paddle and PyTorch pickles, Keras HDF5
  weights and ``.keras`` zip archives, MATLAB v7.3 HDF5, Flax msgpack), each on a small valid file
  of its format, mutated; formats whose framework is not installed are left out.

Prints the inputs that raised anything else and exits 1 if there were any.  The test suite runs each
target briefly (tests/verifier/test_fuzz.py); the README gives the long run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "verifier"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builders import chain_weights, conv_chain

from verifier import fingerprint_file, load_model
from verifier.errors import VerifierError


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """A few random flips, insertions, deletions or a truncation."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        position = rng.randrange(max(len(buffer), 1))
        if choice < 0.5 and buffer:
            buffer[position] ^= 1 << rng.randrange(8)
        elif choice < 0.7:
            buffer[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice < 0.9 and buffer:
            del buffer[position:position + rng.randint(1, 16)]
        else:
            del buffer[position:]
    return bytes(buffer)


_ODD_VALUES = [None, True, -1, 0, 1, 2**40, -(2**40), 1e308, -1e308, float("nan"), "", "x" * 300, [], {}, [1, 2],
               {"a": 1}, 0.5, "response", "paper"]


def mutate_json(meta: dict, rng: random.Random) -> dict:
    """Replace, drop or add one value somewhere in the metadata (digests are recomputed by the caller)."""
    node: dict | list = meta
    parent: dict | list | None = None
    key = None
    for _ in range(4):
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        parent, key = node, rng.choice(keys)
        child = node[key]
        if isinstance(child, dict | list) and child and rng.random() < 0.6:
            node = child
        else:
            break
    if parent is None:
        return meta
    action = rng.random()
    if action < 0.7 or isinstance(parent, list):
        parent[key] = rng.choice(_ODD_VALUES)
    elif action < 0.85:
        del parent[key]
    else:
        parent[f"extra{rng.randrange(10)}"] = rng.choice(_ODD_VALUES)
    return meta


def redigested(data: bytes, rng: random.Random) -> bytes:
    """A fingerprint whose metadata was mutated and whose digests were then recomputed."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    meta = mutate_json(json.loads(content.pop("fingerprint.json")), rng)
    if isinstance(meta.get("members"), dict):
        meta["members"] = {name: hashlib.sha256(value).hexdigest() for name, value in content.items()}
    meta["content_sha256"] = fingerprint_file._content_digest(meta)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("fingerprint.json", json.dumps(meta))
        for name, value in content.items():
            archive.writestr(name, value)
    return buffer.getvalue()


class Fuzzer:
    """Seed files made once, then `count` mutated inputs per target."""

    def __init__(self, folder: Path) -> None:
        from verifier.api import fingerprint

        self.folder = folder
        self.model_path = folder / "model.onnx"
        self.model_path.write_bytes(conv_chain(chain_weights(0, channels=1, depth=3, width=4)).SerializeToString())
        refs = []
        for seed in (1, 2, 3):
            path = folder / f"ref{seed}.onnx"
            path.write_bytes(conv_chain(chain_weights(seed, channels=1, depth=3, width=4)).SerializeToString())
            refs.append(path)
        self.fingerprint_path = folder / "owner.vfp"
        fingerprint(self.model_path, refs, output=self.fingerprint_path, seeds=1, size=8, threads=1)
        self.model = load_model(self.model_path, threads=1)
        self._readers: list[tuple[str, bytes, Callable[[Path], object]]] | None = None

    def _check(self, data: bytes, suffix: str, use: Callable[[Path], object]) -> str | None:
        path = self.folder / f"input{suffix}"
        path.write_bytes(data)
        try:
            use(path)
        except VerifierError as exc:
            if "\n" in str(exc):
                return f"multi-line error: {exc!r}"
        except Exception:
            return traceback.format_exc(limit=3)
        return None

    def fingerprint(self, rng: random.Random) -> str | None:
        return self._check(mutate_bytes(self.fingerprint_path.read_bytes(), rng), ".vfp", fingerprint_file.load)

    def onnx(self, rng: random.Random) -> str | None:
        return self._check(mutate_bytes(self.model_path.read_bytes(), rng), ".onnx",
                           lambda path: load_model(path, threads=1).run(self.model_probe))

    def verify(self, rng: random.Random) -> str | None:
        from verifier.verification import verify

        return self._check(redigested(self.fingerprint_path.read_bytes(), rng), ".vfp",
                           lambda path: verify(fingerprint_file.load(path), self.model))

    def exporters(self, rng: random.Random) -> str | None:
        if self._readers is None:
            self._readers = _reader_seeds(self.folder)
        if not self._readers:
            return None
        suffix, data, read = self._readers[rng.randrange(len(self._readers))]
        return self._check(mutate_bytes(data, rng), suffix, read)

    @property
    def model_probe(self):
        import numpy as np

        return np.full((1, 1, 8, 8), 0.5, np.float32)


def _reader_seeds(folder: Path) -> list[tuple[str, bytes, Callable[[Path], object]]]:
    """(suffix, a small valid file, the exporter's reader) for every format whose library is installed."""
    import importlib.util
    import pickle

    import numpy as np

    from exporters import paddle_exporter

    weight = np.zeros((4, 1, 3, 3), np.float32)
    seeds: list[tuple[str, bytes, Callable[[Path], object]]] = [
        (".pdparams", pickle.dumps({"conv.weight": weight}, protocol=4),
         lambda path: paddle_exporter.load_weights(path, False))]
    if importlib.util.find_spec("torch"):
        import torch

        from exporters.torch_exporter import load_weights

        buffer = io.BytesIO()
        torch.save({"conv.weight": torch.zeros(4, 1, 3, 3)}, buffer)
        seeds.append((".pth", buffer.getvalue(), lambda path: load_weights(torch, path, False)))
    if importlib.util.find_spec("h5py"):
        import h5py

        from exporters.keras_archive_exporter import _read_archive
        from exporters.keras_exporter import read_h5_weights
        from exporters.matlab_exporter import read_matconvnet

        keras = folder / "seed.h5"
        with h5py.File(keras, "w") as handle:
            handle.attrs["layer_names"] = [b"conv2d"]
            handle.create_group("conv2d").attrs["weight_names"] = [b"conv2d/kernel:0"]
            handle["conv2d/conv2d/kernel:0"] = weight
        seeds.append((".h5", keras.read_bytes(), read_h5_weights))
        matlab = folder / "seed.mat"
        with h5py.File(matlab, "w") as handle:
            layer = handle.create_group("#refs#/a")
            layer["type"] = np.array([[ord(c)] for c in "relu"], np.uint16)
            layer["leak"] = np.zeros((1, 1))
            refs = handle.create_dataset("net/layers", (1, 1), dtype=h5py.ref_dtype)
            refs[0, 0] = layer.ref
        seeds.append((".mat", matlab.read_bytes(), read_matconvnet))
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
            zipped.writestr("model.weights.h5", keras.read_bytes())
        seeds.append((".keras", archive.getvalue(), _read_archive))
    if importlib.util.find_spec("flax"):
        from flax import serialization

        from exporters.flax_exporter import read_msgpack

        seeds.append((".msgpack", serialization.msgpack_serialize({"params": {"kernel": weight}}), read_msgpack))
    return seeds


TARGETS = ("fingerprint", "onnx", "verify", "exporters")


def run(targets: list[str], count: int, seed: int, report: Callable[[str, list[str]], None] | None = None,
        ) -> dict[str, list[str]]:
    """Failures per target; `report(target, failures)` is called as each target finishes."""
    failures: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        fuzzer = Fuzzer(Path(folder))
        for target in targets:
            rng = random.Random(f"{seed}-{target}")
            failures[target] = [found for _ in range(count) if (found := getattr(fuzzer, target)(rng))]
            if report:
                report(target, failures[target])
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", default="all", choices=[*TARGETS, "all"])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    targets = list(TARGETS) if args.target == "all" else [args.target]
    def report(target: str, found: list[str]) -> None:
        print(f"{target}: {args.count} inputs, {len(found)} internal errors", flush=True)
        for failure in found[:5]:
            print(failure, flush=True)

    failures = run(targets, args.count, args.seed, report)
    sys.exit(1 if any(failures.values()) else 0)


if __name__ == "__main__":
    main()
