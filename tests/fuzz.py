"""Fuzz verifier's readers of untrusted files: any exception but a one-line VerifierError is a bug.

Run:  python tests/fuzz.py [fingerprint|onnx|verify|exporters|all] [--count N] [--seed S] [--keep DIR]

- ``fingerprint``: byte flips, insertions and truncations of a valid fingerprint file;
- ``onnx``: the same on a small ONNX model, through ``verifier.graph.onnx_file.read_onnx`` and ``load_model``;
- ``verify``: loadable fingerprints whose JSON values were mutated and re-digested (what a forger
  makes), loaded and used to verify a model;
- ``exporters``: the exporters' readers of untrusted files (Paddle and PyTorch pickles, Keras HDF5
  weights and ``.keras`` zip archives, MATLAB v7.3 HDF5, Flax msgpack), each on a small valid file
  of its format, mutated; formats whose framework is not installed are left out.

Inputs run in a worker process under a watchdog: one that takes over a minute or kills the process
(a hang or crash inside a C library) is reported apart, and kept with ``--keep``.  Input ``i`` of a
target is drawn from its own generator seeded by (seed, target, i), so one input can be replayed.
Prints the inputs that raised anything else and exits 1 if there were any.  The test suite runs each
target briefly (tests/verifier/test_fuzz.py); the README gives the long run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "verifier"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builders import chain_weights, conv_chain

from verifier import load_model
from verifier.errors import VerifierError
from verifier.method import fingerprint_file


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
    """Seed files made once; input `index` of a target is a mutation drawn from its own seeded generator."""

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

    def check(self, target: str, rng: random.Random) -> str | None:
        """None, or what went wrong: any exception but a one-line VerifierError."""
        suffix, data, use = getattr(self, target)(rng)
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

    def fingerprint(self, rng: random.Random) -> tuple[str, bytes, Callable[[Path], object]]:
        return ".vfp", mutate_bytes(self.fingerprint_path.read_bytes(), rng), fingerprint_file.load

    def onnx(self, rng: random.Random) -> tuple[str, bytes, Callable[[Path], object]]:
        return ".onnx", mutate_bytes(self.model_path.read_bytes(), rng), \
            lambda path: load_model(path, threads=1).run(self.model_probe)

    def verify(self, rng: random.Random) -> tuple[str, bytes, Callable[[Path], object]]:
        from verifier.method.verification import verify

        return ".vfp", redigested(self.fingerprint_path.read_bytes(), rng), \
            lambda path: verify(fingerprint_file.load(path), self.model)

    def exporters(self, rng: random.Random) -> tuple[str, bytes, Callable[[Path], object]]:
        if self._readers is None:
            self._readers = _reader_seeds(self.folder)
        suffix, data, read = self._readers[rng.randrange(len(self._readers))]
        return suffix, mutate_bytes(data, rng), read

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

        # The HDF5 readers' inner functions: verifier runs them in a child process (exporters/isolated.py)
        # that turns a hang or crash into a refusal; here a hang is what the watchdog reports.
        from exporters.keras_archive_exporter import _read_archive, _read_vars
        from exporters.keras_exporter import _model_config_text, _read_h5_weights
        from exporters.matlab_exporter import _read_matconvnet

        keras = folder / "seed.h5"
        with h5py.File(keras, "w") as handle:
            handle.attrs["layer_names"] = [b"conv2d"]
            handle.create_group("conv2d").attrs["weight_names"] = [b"conv2d/kernel:0"]
            handle["conv2d/conv2d/kernel:0"] = weight
        seeds.append((".h5", keras.read_bytes(), _read_h5_weights))
        seeds.append((".h5", keras.read_bytes(), _model_config_text))
        matlab = folder / "seed.mat"
        with h5py.File(matlab, "w") as handle:
            layer = handle.create_group("#refs#/a")
            layer["type"] = np.array([[ord(c)] for c in "relu"], np.uint16)
            layer["leak"] = np.zeros((1, 1))
            refs = handle.create_dataset("net/layers", (1, 1), dtype=h5py.ref_dtype)
            refs[0, 0] = layer.ref
        seeds.append((".mat", matlab.read_bytes(), _read_matconvnet))
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
            zipped.writestr("model.weights.h5", keras.read_bytes())
        seeds.append((".keras", archive.getvalue(), _read_archive))
        variables = folder / "vars.h5"
        with h5py.File(variables, "w") as handle:
            handle["layers/conv2d/vars/0"] = weight
            handle["layers/conv2d/vars/1"] = np.zeros(4, np.float32)
        seeds.append((".h5", variables.read_bytes(),
                      lambda path: _read_vars(path.read_bytes(), ["layers/conv2d/vars"])))
    if importlib.util.find_spec("flax"):
        from flax import serialization

        from exporters.flax_exporter import read_msgpack

        seeds.append((".msgpack", serialization.msgpack_serialize({"params": {"kernel": weight}}), read_msgpack))
    return seeds


TARGETS = ("fingerprint", "onnx", "verify", "exporters")


#: Seconds one input may take before the watchdog calls it a hang.
HANG_S = 60.0


@dataclass
class Findings:
    """What one target's run found: tracebacks of internal errors, and the inputs that hung."""

    errors: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)


def _work(target: str, seed: int, start: int, count: int, folder: str, position, found) -> None:
    """Worker process: inputs start..count-1 of `target`, announcing each index before trying it."""
    fuzzer = Fuzzer(Path(folder))
    parent = os.getppid()
    for index in range(start, count):
        if os.getppid() != parent:  # the harness was killed: stop rather than fuzz on unwatched for hours
            return
        position.value = index
        failure = fuzzer.check(target, random.Random(f"{seed}-{target}-{index}"))
        if failure:
            found.put(f"input {index}: {failure}")
    position.value = count


def _run_target(target: str, count: int, seed: int, keep: Path | None) -> Findings:
    """Inputs in a worker process; one that takes over HANG_S seconds is a hang: kill, keep it, go on."""
    context = multiprocessing.get_context("spawn")
    findings = Findings()
    start = 0
    with tempfile.TemporaryDirectory() as folder:
        while start < count:
            position, found = context.Value("q", -1), context.Queue()
            worker = context.Process(target=_work, args=(target, seed, start, count, folder, position, found),
                                     daemon=True)
            worker.start()
            last, since = position.value, time.monotonic()
            while worker.is_alive():
                worker.join(1.0)
                if position.value != last:
                    last, since = position.value, time.monotonic()
                elif last >= 0 and time.monotonic() - since > HANG_S:
                    worker.kill()
                    worker.join()
            while not found.empty():
                findings.errors.append(found.get())
            if position.value >= count:
                break
            if worker.exitcode not in (0, None) and position.value < 0:
                raise RuntimeError(f"the {target} fuzz worker failed to start (exit code {worker.exitcode})")
            index = position.value
            inputs = list(Path(folder).glob("input*"))
            findings.hangs.append(f"input {index}: no answer after {HANG_S:.0f} s or the process died "
                                  f"(exit code {worker.exitcode})")
            if keep and inputs:
                keep.mkdir(parents=True, exist_ok=True)
                newest = max(inputs, key=lambda path: path.stat().st_mtime)
                shutil.copy(newest, keep / f"{target}-{seed}-{index}{newest.suffix}")
            start = index + 1
    return findings


def run(targets: list[str], count: int, seed: int, report: Callable[[str, Findings], None] | None = None,
        keep: Path | None = None) -> dict[str, Findings]:
    """Findings per target; `report(target, findings)` is called as each target finishes."""
    results = {}
    for target in targets:
        results[target] = _run_target(target, count, seed, keep)
        if report:
            report(target, results[target])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", default="all", choices=[*TARGETS, "all"])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="copy inputs that hung or crashed the process into this folder")
    args = parser.parse_args()
    targets = list(TARGETS) if args.target == "all" else [args.target]

    def report(target: str, findings: Findings) -> None:
        print(f"{target}: {args.count} inputs, {len(findings.errors)} internal errors, {len(findings.hangs)} hangs "
              "or crashes", flush=True)
        kinds: dict[str, list[str]] = {}
        for failure in findings.errors:
            kinds.setdefault(failure.strip().splitlines()[-1], []).append(failure)
        for last_line, failures in sorted(kinds.items(), key=lambda kind: -len(kind[1])):
            print(f"{len(failures)} x {last_line}; first:\n{failures[0]}", flush=True)
        for failure in findings.hangs:
            print(failure, flush=True)

    results = run(targets, args.count, args.seed, report, args.keep)
    sys.exit(1 if any(found.errors or found.hangs for found in results.values()) else 0)


if __name__ == "__main__":
    main()
