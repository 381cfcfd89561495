"""The int8 file's graph work (commands/export_int8.py): a model's average poolings become
depthwise convolutions of the same value, two graphs become one file that picks one by the
recording's length and stores what both hold once, and the contract that lets a model leave
its masks out of a graph traced for whole clips (``esc50.whole_clips``)."""

import threading

import numpy as np
import pytest
import torch

import esc50
from esc50.commands.export_int8 import by_length, model_layers, pools_as_convolutions
from esc50.core.plugin_api.contracts import tracing_whole_clips
from esc50.plugins.models.layers import fills_every_frame, masked_max, masked_mean, zero_padding

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = [helper.make_opsetid("", 18)]


def in_model(node, layer: str):
    """``node`` with the module scope torch's exporter records for a layer of the first
    classifier's model."""
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes",
                            value=str(["", "scores.classifiers.0.model",
                                       f"scores.classifiers.0.model.{layer}"]))
    return node


def run(content: bytes, **inputs) -> list[np.ndarray]:
    return onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"]).run(
        None, inputs)


def test_whole_clips_is_true_only_while_the_exporter_traces_such_a_graph():
    x = torch.ones(2, 3, 4, 5)
    x[:, :, :, 3:] = 7.0  # what a padded batch may hold past a clip's end
    lengths = torch.tensor([5, 3])
    assert not esc50.whole_clips()
    assert not fills_every_frame(lengths, 5)
    assert zero_padding(x, lengths)[1, :, :, 3:].abs().sum() == 0
    assert masked_max(x, lengths)[1].max() == 1.0
    with pytest.raises(RuntimeError), tracing_whole_clips():
        assert esc50.whole_clips() and fills_every_frame(lengths, 5)
        assert torch.equal(zero_padding(x, lengths), x)  # every step is the clip's
        assert torch.equal(masked_max(x, lengths), x.amax(-1))
        assert torch.allclose(masked_mean(x, lengths), x.mean(-1))
        raise RuntimeError("an export that fails")
    assert not esc50.whole_clips()  # and after a failure, too
    assert masked_mean(x, lengths)[1].max() == 1.0
    seen = []  # another thread scoring padded batches meanwhile still masks them
    with tracing_whole_clips():
        scoring = threading.Thread(target=lambda: seen.append(
            (esc50.whole_clips(), zero_padding(x, lengths)[1, :, :, 3:].abs().sum().item())))
        scoring.start()
        scoring.join()
    assert seen == [(False, 0.0)]


def pooled_model() -> onnx.ModelProto:
    """x [1, 2, 8, 8] -> a 2x2 average pooling before the model's first layer, the first layer
    (a 1x1 convolution), a 2x2 pooling, a padded 2x2 pooling (not tiles) and a convolution."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=(2, 2, 1, 1)).astype(np.float32), name)
               for name in ("w1", "w2")]
    nodes = [
        in_model(helper.make_node("AveragePool", ["x"], ["a"], name="early",
                                  kernel_shape=[2, 2], strides=[2, 2]), "early"),
        in_model(helper.make_node("Conv", ["a", "w1"], ["b"], name="first"), "first"),
        in_model(helper.make_node("AveragePool", ["b"], ["c"], name="pool",
                                  kernel_shape=[2, 2], strides=[2, 2]), "pool"),
        in_model(helper.make_node("AveragePool", ["c"], ["d"], name="padded_pool",
                                  kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 0, 0]),
                 "padded_pool"),
        in_model(helper.make_node("Conv", ["d", "w2"], ["y"], name="second"), "second"),
    ]
    graph = helper.make_graph(
        nodes, "pooled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], weights)
    return helper.make_model(graph, opset_imports=OPSET)


def test_a_models_pooling_after_its_first_layer_becomes_a_depthwise_convolution():
    before = pooled_model().SerializeToString()
    after = pools_as_convolutions(before)
    nodes = {node.name: node for node in onnx.load_from_string(after).graph.node}
    assert nodes["pool"].op_type == "Conv"
    assert {a.name: helper.get_attribute_value(a) for a in nodes["pool"].attribute} == {
        "group": 2, "kernel_shape": [2, 2], "strides": [2, 2]}
    # before the first layer, and a pooling that is not tiles, as they were
    assert nodes["early"].op_type == nodes["padded_pool"].op_type == "AveragePool"
    assert "pool" in model_layers(after) and "first" not in model_layers(after)
    x = np.random.default_rng(1).normal(size=(1, 2, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(after, x=x)[0], run(before, x=x)[0], rtol=1e-6, atol=1e-6)


def summing(shared: float, own: float) -> bytes:
    """wav [samples] -> total [1]: ``sum(wav) * shared + own``, both numbers stored."""
    stored = [numpy_helper.from_array(np.array([shared], np.float32), "scale"),
              numpy_helper.from_array(np.array([own], np.float32), "offset")]
    nodes = [helper.make_node("ReduceSum", ["wav"], ["sum"], keepdims=1),
             helper.make_node("Mul", ["sum", "scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "offset"], ["total"])]
    graph = helper.make_graph(
        nodes, "summing", [helper.make_tensor_value_info("wav", TensorProto.FLOAT, ["samples"])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [1])], stored)
    return helper.make_model(graph, opset_imports=OPSET).SerializeToString()


def test_one_file_runs_the_whole_window_graph_from_one_window_on_and_stores_shared_tensors_once():
    content = by_length(summing(2.0, 10.0), summing(2.0, -10.0), window=4)
    for samples, offset in ((1, -10.0), (3, -10.0), (4, 10.0), (9, 10.0)):
        wav = np.arange(samples, dtype=np.float32)
        assert run(content, wav=wav)[0] == pytest.approx([2 * wav.sum() + offset])
    model = onnx.load_from_string(content)
    (choice,) = [node for node in model.graph.node if node.op_type == "If"]
    assert [numpy_helper.to_array(t).tolist() for t in model.graph.initializer] == [[2.0]]
    assert sorted(numpy_helper.to_array(t).tolist() for a in choice.attribute
                  for t in a.g.initializer) == [[-10.0], [10.0]]
