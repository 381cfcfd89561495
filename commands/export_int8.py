"""int8 for an exported ONNX file (``esc50 export --quantize int8``).

- Calibration: up to ``CALIBRATION_CLIPS`` clips the models trained on, their content checked
  against the sha256 their runs recorded: never a clip the model is scored on.
- Quantization: onnxruntime's static quantization (QDQ format, weights int8 per channel,
  activations uint8, MinMax calibration) of each model's convolutions and matrix products after
  its first layer, and of the Add and Relu nodes between them (:func:`model_layers`). The
  featurizer, the normalization and the layer that reads the features stay float32.
- A model's average poolings after its first layer become depthwise convolutions of the same
  value (:func:`pools_as_convolutions`), so that they run on onnxruntime's int8 convolution
  kernel: its int8 average pooling (``QLinearAveragePool``) took 0.40 ms for two poolings of a
  4.6 ms call, where the float32 file's three took 0.08 (docs/export.md).
- Two graphs in one file (:func:`by_length`): the exporter traces the classifier a second time
  for whole windows only (:func:`esc50.whole_clips`: a model may leave out its masks of padded
  frames), and the file runs that graph for a recording of at least one window and the general
  one for a shorter recording (one window, zero-padded); what both graphs hold (the weights,
  their scales, the DFT's matrices) is stored once. Each mask is a float32 product between a
  dequantize and a quantize in the int8 file, with layout transposes around onnxruntime's int8
  kernels: the whole-window graph runs 1.2x faster (docs/export.md). The float32 file keeps one
  graph: onnxruntime prepares a float32 convolution's weights only where they are stored in the
  convolution's own graph, so two graphs would double its size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from esc50.commands.members import LoadedRun
from esc50.core.data.audio import to_float
from esc50.core.data.audiocache import AudioCache
from esc50.core.data.clips import find_clips
from esc50.core.data.location import resolve_data_dir
from esc50.core.data.split import Split
from esc50.core.errors import Esc50Error
from esc50.core.files.digest import file_sha256
from esc50.core.plugin_api.registry import Registry

CALIBRATION_CLIPS = 128  # training clips onnxruntime's calibration sees
MODEL_SCOPE = re.compile(r"^scores\.classifiers\.(\d+)\.model(\.|$)")  # a classifier's model
WEIGHT_LAYERS = ("Conv", "MatMul", "Gemm")
ELEMENT_WISE = ("Add", "Relu")  # residual sums and activations: int8 between int8 layers
OUTER = "wav"  # the file's input: the one name the two graphs read from the file's own graph


def calibration_names(runs: list[LoadedRun]) -> dict[str, str]:
    """Up to ``CALIBRATION_CLIPS`` clips the models trained on (a seeded draw from their
    recorded training splits: never one they are scored on), with the sha256 recorded for
    each."""
    splits = [Split.from_dict(run.state["split"]) for run in runs]
    digests = {name: split.digests.get(name, "") for split in splits for name in split.train}
    chosen = random.Random(0).sample(sorted(digests), min(CALIBRATION_CLIPS, len(digests)))
    return {name: digests[name] for name in sorted(chosen)}


def calibration_clips(runs: list[LoadedRun], registry: Registry, data: str | None,
                      log: Callable[[str], None] = print) -> np.ndarray:
    """The :func:`calibration_names` clips of ``data`` (the run's by default) whose content is
    the recorded one (a file of the same name holding other audio is not a training clip),
    decoded as the run decodes them: float32 [clips, window]. Fewer than asked is said."""
    config = runs[0].config
    table = find_clips(resolve_data_dir(data or config.data), config, registry)
    rows = dict(zip(table.names(), table.clips))
    wanted = calibration_names(runs)
    present = [name for name in wanted if name in rows]
    chosen = [rows[name] for name in present if file_sha256(rows[name].path) == wanted[name]]
    if not chosen:
        raise Esc50Error(f"none of the models' training clips is in {table.root} "
                         f"({len(present)} of {len(wanted)} names found, none with the recorded "
                         "content): int8 calibration needs them (--data names the dataset "
                         "folder the model trained on)")
    if len(chosen) < len(wanted):
        log(f"note: int8 calibration on {len(chosen)} of the {len(wanted)} training clips "
            f"asked for: {len(wanted) - len(present)} not in {table.root}, "
            f"{len(present) - len(chosen)} with other content than the model trained on")
    return to_float(AudioCache(chosen, config).waves).numpy()


def _member(node: Any) -> str | None:
    """The classifier (its index) whose model a node of the exported file belongs to, by the
    module scopes torch's exporter records on it; None for the featurizer, the normalization
    and the windowing."""
    scopes = [scope for prop in node.metadata_props if prop.key == "pkg.torch.onnx.name_scopes"
              for scope in json.loads(prop.value.replace("'", '"'))]
    return next((m.group(1) for m in map(MODEL_SCOPE.match, scopes) if m), None)


def _model_nodes(graph: Any) -> dict[str, list[Any]]:
    """Each classifier's model's nodes (by the classifier's index), in the graph's topological
    order."""
    found: dict[str, list[Any]] = {}
    for node in graph.node:
        member = _member(node)
        if member is not None:
            found.setdefault(member, []).append(node)
    return found


def _after_first_layer(nodes: list[Any]) -> list[Any]:
    """A model's nodes after its first Conv, MatMul or Gemm (none where it has no such layer)."""
    first = next((i for i, node in enumerate(nodes) if node.op_type in WEIGHT_LAYERS), len(nodes))
    return nodes[first + 1:]


def model_layers(model: bytes) -> list[str]:
    """What int8 quantizes in the exported file: each model's Conv, MatMul and Gemm nodes less
    its first layer (which reads the normalized features), and the model's Add and Relu nodes
    (onnxruntime leaves those on integer tensors as they are) where it has such a layer to
    quantize."""
    import onnx

    chosen = []
    for nodes in _model_nodes(onnx.load_from_string(model).graph).values():
        layers = [node.name for node in _after_first_layer(nodes)
                  if node.op_type in WEIGHT_LAYERS]
        if layers:
            chosen += layers + [node.name for node in nodes if node.op_type in ELEMENT_WISE]
    return chosen


def pools_as_convolutions(model: bytes) -> bytes:
    """``model`` with each model's average poolings after its first layer that cover their
    input in tiles (kernel equal to stride, no padding) as depthwise convolutions of weight
    ``1 / kernel area``: the same values, and a layer int8 quantizes (:func:`model_layers`).
    A pooling whose channels shape inference cannot tell stays as it is."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.shape_inference.infer_shapes(onnx.load_from_string(model))
    graph = proto.graph
    channels = {info.name: info.type.tensor_type.shape.dim[1].dim_value
                for info in graph.value_info if len(info.type.tensor_type.shape.dim) == 4}
    pools = {node.name for nodes in _model_nodes(graph).values()
             for node in _after_first_layer(nodes) if node.op_type == "AveragePool"}
    nodes = []
    for node in graph.node:
        settings = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = list(settings.get("kernel_shape", []))
        tiles = (len(kernel) == 2 and list(settings.get("strides", [])) == kernel
                 and not any(settings.get("pads", [])) and not settings.get("ceil_mode")
                 and settings.get("auto_pad", b"NOTSET") in (b"NOTSET", b"VALID"))
        if node.name not in pools or not tiles or not channels.get(node.input[0]):
            nodes.append(node)
            continue
        count = channels[node.input[0]]
        weight = f"{node.name}.depthwise_weight"
        graph.initializer.append(numpy_helper.from_array(
            np.full((count, 1, *kernel), 1 / np.prod(kernel), dtype=np.float32), weight))
        conv = helper.make_node("Conv", [node.input[0], weight], list(node.output),
                                name=node.name, group=count, kernel_shape=kernel,
                                strides=kernel)
        conv.metadata_props.extend(node.metadata_props)  # the scope: still the model's
        nodes.append(conv)
    graph.ClearField("node")
    graph.node.extend(nodes)
    return proto.SerializeToString()


def quantized(model: bytes, clips: np.ndarray) -> bytes:
    """The ONNX model's layers (:func:`model_layers`, its poolings made convolutions first)
    quantized to int8 by onnxruntime, calibrated on ``clips``."""
    try:
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                              quantize_static)
    except ImportError:
        raise Esc50Error("int8 export needs onnxruntime: pip install onnxruntime") from None
    model = pools_as_convolutions(model)
    layers = model_layers(model)
    if not layers:
        raise Esc50Error("--quantize int8: the model has no convolution or matrix product after "
                         "its first layer (which stays float32), so there is nothing to quantize")

    class Clips(CalibrationDataReader):
        def __init__(self) -> None:
            self.left: Iterator[dict[str, Any]] = iter({OUTER: clip} for clip in clips)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.left, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(model)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, every time
        try:
            quantize_static(str(source), str(target), Clips(), quant_format=QuantFormat.QDQ,
                            nodes_to_quantize=layers, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().setLevel(quiet)
        return target.read_bytes()


def inner_graphs(node: Any) -> list[Any]:
    """The graphs a node runs (an ``If``'s two branches, a ``Loop``'s body)."""
    return [graph for attribute in node.attribute
            for graph in [attribute.g][:attribute.HasField("g")] + list(attribute.graphs)]


def _renamed(graph: Any, name: Callable[[str], str]) -> None:
    """Every value name in ``graph`` and the graphs inside its nodes replaced by ``name(old)``,
    node names included ("" stays: an input left out, a node without a name)."""
    for node in graph.node:
        node.name = name(node.name) if node.name else ""
        node.input[:] = [name(value) if value else value for value in node.input]
        node.output[:] = [name(value) if value else value for value in node.output]
        for inner in inner_graphs(node):
            _renamed(inner, name)
    for values in (graph.input, graph.output, graph.value_info, graph.initializer):
        for value in values:
            value.name = name(value.name)


def _content(tensor: Any) -> str:
    """A stored tensor's type, shape and values, as one key."""
    from onnx import numpy_helper

    values = np.ascontiguousarray(numpy_helper.to_array(tensor))
    return f"{tensor.data_type}:{list(tensor.dims)}:{hashlib.sha256(values.tobytes()).hexdigest()}"


def by_length(whole: bytes, padded: bytes, window: int) -> bytes:
    """One ONNX file of two exported files of the same input (``wav``) and outputs: ``whole``
    runs for a waveform of at least ``window`` samples, ``padded`` for a shorter one (an
    ``If`` on the length). A tensor both store is stored once, in the file's own graph, where
    each graph reads it."""
    import onnx
    from onnx import TensorProto, helper

    models = [onnx.load_from_string(content) for content in (whole, padded)]
    branches = []
    for prefix, model in zip(("whole/", "padded/"), models):
        graph = onnx.GraphProto()
        graph.CopyFrom(model.graph)
        _renamed(graph, lambda value, prefix=prefix: value if value == OUTER else prefix + value)
        graph.ClearField("input")  # wav: read from the file's graph
        graph.name = prefix.rstrip("/")
        branches.append(graph)
    contents = [[_content(tensor) for tensor in graph.initializer] for graph in branches]
    in_both = set(contents[0]) & set(contents[1])
    shared: dict[str, Any] = {}
    for graph, keys in zip(branches, contents):
        moved: dict[str, str] = {}
        kept = []
        for tensor, key in zip(graph.initializer, keys):
            if key not in in_both:
                kept.append(tensor)
                continue
            if key not in shared:
                shared[key] = onnx.TensorProto()
                shared[key].CopyFrom(tensor)
                shared[key].name = f"shared/{len(shared)}"
            moved[tensor.name] = shared[key].name
        graph.ClearField("initializer")
        graph.initializer.extend(kept)
        _renamed(graph, lambda value, moved=moved: moved.get(value, value))
    outputs = [value.name for value in models[1].graph.output]
    nodes = [
        helper.make_node("Shape", [OUTER], ["samples"]),
        helper.make_node("Constant", [], ["window"], value=helper.make_tensor(
            "window", TensorProto.INT64, [1], [window])),
        helper.make_node("GreaterOrEqual", ["samples", "window"], ["at_least_a_window"]),
        helper.make_node("Squeeze", ["at_least_a_window"], ["whole_windows"]),
        helper.make_node("If", ["whole_windows"], outputs, name="by_length",
                         then_branch=branches[0], else_branch=branches[1]),
    ]
    graph = helper.make_graph(nodes, models[1].graph.name, list(models[1].graph.input),
                              list(models[1].graph.output), list(shared.values()))
    opsets: dict[str, int] = {}
    for model in models:
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    combined = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, version)
                                                       for domain, version in opsets.items()],
                                 ir_version=max(model.ir_version for model in models),
                                 producer_name=models[1].producer_name,
                                 producer_version=models[1].producer_version)
    functions = {(f.domain, f.name): f for model in models for f in model.functions}
    combined.functions.extend(functions.values())
    onnx.checker.check_model(combined)
    return combined.SerializeToString()
