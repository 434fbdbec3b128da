"""Catalogue: a vendor's ONNX file must not read files outside its own folder.

ONNX lets a tensor name "external data" (a file, offset and length) from many places: dense and
sparse initializers, `Constant` attributes (`value`, `sparse_value`), subgraphs of If/Loop/Scan,
local functions.  onnxruntime reads whatever is named, and the model then puts the bytes in its
output, so one unconfined place is a file-read hole.  Each row below hides a carrier tensor in
one place; each location style points it somewhere it must not go.  Every combination must give
one line and exit code 2 from `inspect` and `export` (and leave no file behind), and the same
carrier inside the folder must load, with its bytes inlined so nothing downstream reads a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from builders import conv_model
from click.testing import CliRunner
from onnx import TensorProto, helper

from verifier.cli import main
from verifier.graph.onnx_file import _all_tensors, read_onnx

SECRET = np.array([1234.5], dtype=np.float32)  # the bytes of the file an attacker wants to read


def _external(name: str, location: str, dtype: int = TensorProto.FLOAT, offset: str = "0") -> onnx.TensorProto:
    """A one-element tensor whose data lies in `location`."""
    tensor = helper.make_tensor(name, dtype, [1], [0])
    tensor.ClearField("float_data")
    tensor.ClearField("int64_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", "4" if dtype == TensorProto.FLOAT
                                                                           else "8")):
        tensor.external_data.add(key=key, value=value)
    return tensor


def _sparse(values: onnx.TensorProto, indices: onnx.TensorProto) -> onnx.SparseTensorProto:
    sparse = onnx.SparseTensorProto()
    sparse.values.CopyFrom(values)
    sparse.indices.CopyFrom(indices)
    sparse.dims.append(1)
    return sparse


def _inline_indices(name: str) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.INT64, [1], [0])


def _inline_values(name: str) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, [1], [0.0])


def _with_carrier(location: str, place: str, offset: str = "0") -> onnx.ModelProto:
    """conv_model whose output is shifted by a carrier tensor `c` hidden in `place`."""
    model = conv_model(channels=1)
    graph = model.graph
    graph.node[-1].output[0] = "conv_out"
    extra_nodes: list[onnx.NodeProto] = []
    if place == "initializer":
        graph.initializer.append(_external("c", location, offset=offset))
    elif place == "sparse_initializer.values":
        graph.sparse_initializer.append(_sparse(_external("c", location, offset=offset), _inline_indices("c_idx")))
    elif place == "sparse_initializer.indices":
        graph.sparse_initializer.append(
            _sparse(_inline_values("c"), _external("c_idx", location, TensorProto.INT64, offset)))
    elif place == "Constant.value":
        node = helper.make_node("Constant", [], ["c"])
        node.attribute.append(helper.make_attribute("value", _external("c_t", location, offset=offset)))
        extra_nodes.append(node)
    elif place == "Constant.sparse_value":
        node = helper.make_node("Constant", [], ["c"])
        node.attribute.append(helper.make_attribute(
            "sparse_value", _sparse(_external("c_v", location, offset=offset), _inline_indices("c_i"))))
        extra_nodes.append(node)
    elif place in ("If.subgraph", "If.nested_subgraph"):
        extra_nodes.append(helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("t", TensorProto.BOOL,
                                                                                                 [], [True])))
        extra_nodes.append(_if_node("c", location, offset, nested=place == "If.nested_subgraph"))
    elif place == "function":
        inner = helper.make_node("Constant", [], ["fc"])
        inner.attribute.append(helper.make_attribute("value", _external("f_t", location, offset=offset)))
        model.functions.append(helper.make_function("evil.fn", "Carrier", [], ["fc"], [inner],
                                                    [helper.make_opsetid("", 17)]))
        model.opset_import.append(helper.make_opsetid("evil.fn", 1))
        extra_nodes.append(helper.make_node("Carrier", [], ["c"], domain="evil.fn"))
    else:
        raise AssertionError(place)
    extra_nodes.append(helper.make_node("Add", ["conv_out", "c"], ["out"]))
    graph.node.extend(extra_nodes)
    return model


def _if_node(output: str, location: str, offset: str, nested: bool, cond: str = "cond") -> onnx.NodeProto:
    def branch(name: str) -> onnx.GraphProto:
        if nested:
            node = _if_node(f"{name}_out", location, offset, nested=False, cond=f"{name}_cond")
            cond = helper.make_node("Constant", [], [f"{name}_cond"],
                                    value=helper.make_tensor("t", TensorProto.BOOL, [], [True]))
            nodes = [cond, node]
        else:
            node = helper.make_node("Constant", [], [f"{name}_out"])
            node.attribute.append(helper.make_attribute("value", _external(f"{name}_t", location, offset=offset)))
            nodes = [node]
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT,
                                                                                 [1])])

    return helper.make_node("If", [cond], [output], then_branch=branch(f"then{int(nested)}"),
                            else_branch=branch(f"else{int(nested)}"))


PLACES = ["initializer", "sparse_initializer.values", "sparse_initializer.indices", "Constant.value",
          "Constant.sparse_value", "If.subgraph", "If.nested_subgraph", "function"]


def _absolute(folder: Path, secret: Path) -> str:
    return str(secret)


def _parent(folder: Path, secret: Path) -> str:
    return os.path.relpath(secret, folder)


def _symlink(folder: Path, secret: Path) -> str:
    (folder / "weights.bin").symlink_to(secret)
    return "weights.bin"


def _nul(folder: Path, secret: Path) -> str:
    return "weights.bin\0../../secret.bin"


def _etc_passwd(folder: Path, secret: Path) -> str:
    return "/etc/passwd"


LOCATIONS: dict[str, tuple[Callable[[Path, Path], str], str]] = {
    "absolute": (_absolute, "outside the model's folder"),
    "dot-dot": (_parent, "outside the model's folder"),
    "symlink out of the folder": (_symlink, "outside the model's folder"),
    "NUL in location": (_nul, "outside the model's folder"),
    "/etc/passwd": (_etc_passwd, "outside the model's folder"),
}


def _hostile_file(tmp_path: Path, place: str, location_kind: str) -> Path:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET.tobytes() * 4)
    folder = tmp_path / "vendor"
    folder.mkdir()
    make_location, _ = LOCATIONS[location_kind]
    path = folder / "model.onnx"
    path.write_bytes(_with_carrier(make_location(folder, secret), place).SerializeToString())
    return path


@pytest.mark.parametrize("location_kind", list(LOCATIONS))
@pytest.mark.parametrize("place", PLACES)
def test_inspect_and_export_refuse_data_outside_the_folder(tmp_path: Path, place: str, location_kind: str):
    path = _hostile_file(tmp_path, place, location_kind)
    out = tmp_path / "out"
    out.mkdir()
    runner = CliRunner()
    for args in (["inspect", str(path)], ["export", str(path), "-o", str(out / "exported.onnx")]):
        result = runner.invoke(main, args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, (args, result.output)
        assert len(lines) == 1 and lines[0].startswith("verifier: error:"), result.stderr
        assert LOCATIONS[location_kind][1] in lines[0]
        assert "internal error" not in result.output and "1234.5" not in result.output
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("offset", "message"), [("abc", "non-numeric"), ("-4", "negative"), ("64", "truncated")])
def test_bad_offsets_are_one_line(tmp_path: Path, offset: str, message: str):
    folder = tmp_path / "vendor"
    folder.mkdir()
    (folder / "data.bin").write_bytes(SECRET.tobytes() * 4)
    path = folder / "model.onnx"
    path.write_bytes(_with_carrier("data.bin", "sparse_initializer.values", offset=offset).SerializeToString())
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 2 and message in result.stderr and "internal error" not in result.output


@pytest.mark.parametrize("place", [p for p in PLACES if p != "sparse_initializer.indices"])
def test_data_inside_the_folder_is_inlined(tmp_path: Path, place: str):
    """The legitimate case: the carrier's bytes are read (from inside the folder) and inlined."""
    folder = tmp_path / "vendor"
    folder.mkdir()
    (folder / "data.bin").write_bytes(SECRET.tobytes())
    path = folder / "model.onnx"
    path.write_bytes(_with_carrier("data.bin", place).SerializeToString())
    model, _ = read_onnx(path)
    assert not any(t.data_location == TensorProto.EXTERNAL or t.external_data for t in _all_tensors(model))
    from verifier.graph.runtime import make_session

    session = make_session(model.SerializeToString())
    image = np.zeros((1, 1, 4, 4), np.float32)
    (output,) = session.run(None, {"img": image})
    np.testing.assert_allclose(output, SECRET[0], rtol=1e-6)  # the conv of zeros is zero: only c is left
