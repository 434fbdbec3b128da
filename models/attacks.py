"""How a model thief turns an owner's model into a suspect: weight-level and graph-level attacks.

Weight-level attacks act on a torch module (fine-tuning and distillation reuse
:func:`models.training.train`; BN left unfolded is :func:`models.training.export_onnx`
with ``fold=False``); graph-level attacks rewrite an exported ONNX file and keep
(or nearly keep) the function.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from models.training import Task, images, patches


def prune(net: torch.nn.Module, fraction: float) -> torch.nn.Module:
    """Zero the `fraction` smallest-magnitude weights of every conv / linear layer."""
    pruned = copy.deepcopy(net)
    with torch.no_grad():
        for module in pruned.modules():
            if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.Linear):
                weight = module.weight
                count = int(fraction * weight.numel())
                if count:
                    threshold = weight.abs().flatten().kthvalue(count).values
                    weight[weight.abs() <= threshold] = 0
    return pruned


def weight_noise(net: torch.nn.Module, relative: float, seed: int) -> torch.nn.Module:
    """Add Gaussian noise of `relative` times each weight tensor's std (tensors of one element untouched)."""
    noisy = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in noisy.parameters():
            if parameter.numel() > 1:
                parameter.add_(relative * parameter.std() * torch.randn(parameter.shape, generator=generator))
    return noisy


def to_fp16(source: Path, target: Path) -> Path:
    """The whole graph in float16: initializers, inputs and outputs (what fp16 deployment ships)."""
    model = onnx.load(str(source))
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT:
                attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float16)))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    del model.graph.value_info[:]
    onnx.save(model, str(target))
    return target


def range_wrapper(source: Path, target: Path, scale: float = 255.0) -> Path:
    """The same function for images in [0, scale]: divide the input, multiply the output (metadata says so)."""
    model = onnx.load(str(source))
    graph = model.graph
    image, restored = graph.input[0].name, graph.output[0].name
    for node in graph.node:
        node.input[:] = ["wrapped/in" if name == image else name for name in node.input]
        node.output[:] = ["wrapped/out" if name == restored else name for name in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(scale, np.float32), "wrapped/scale"))
    nodes = [helper.make_node("Div", [image, "wrapped/scale"], ["wrapped/in"]), *graph.node,
             helper.make_node("Mul", ["wrapped/out", "wrapped/scale"], [restored])]
    del graph.node[:]
    graph.node.extend(nodes)
    entry = model.metadata_props.add()
    entry.key, entry.value = "verifier.value_range", f"0,{scale:g}"
    onnx.save(model, str(target))
    return target


def ort_optimized(source: Path, target: Path) -> Path:
    """onnxruntime's own graph simplification (constant folding, fusions that stay standard ONNX)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return target


def quantize_int8(source: Path, target: Path, task: Task, seed: int) -> Path:
    """Static int8 quantisation (QDQ) with onnxruntime's tools, calibrated on degraded training patches.

    7-bit weights (reduce_range), as onnxruntime advises for x86 CPUs without VNNI, where its
    fused u8s8 convolutions saturate.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    generator = torch.Generator().manual_seed(seed)
    clean = patches(images("a", task.channels), 16, 48, generator)
    name = onnx.load(str(source), load_external_data=False).graph.input[0].name
    batches = [{name: task.degrade(clean[i:i + 1], generator).numpy()} for i in range(len(clean))]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self):
            return next(self.items, None)

    prepared = target.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        # onnxruntime has no uint8 kernel for cubic Resize (the SR nets' bicubic path): it stays float.
        resizes = [node.name for node in onnx.load(prepared).graph.node if node.op_type == "Resize"]
        quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=True, nodes_to_exclude=resizes)
    finally:
        prepared.unlink(missing_ok=True)
    return target
