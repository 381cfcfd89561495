"""A run exported to ONNX in float32 and in int8: file size, latency per clip and accuracy on
the run's validation clips, against the run in torch and against a float32 file that keeps
ONNX's STFT operator (what esc50 exported before commands/export_stft.py), measured in the same
run. One more float32 file holds only the graph traced for whole windows (no masks of padded
frames), the graph the int8 file runs for a recording of at least one window
(commands/export_int8.py): esc50 does not write it (it would score a shorter recording wrongly),
but its time is what float32 would take with the int8 file's two graphs.

    python benchmarks/export.py RUN [--data DIR] [--repeats 30] [--threads N]

Each file is written by ``esc50 export`` (int8: onnxruntime's static quantization, calibrated
on training clips); latency is the median over ``--repeats`` calls of one clip (one window,
the run's clip length) in onnxruntime on the CPU with its default threads (``--threads N``: N
threads in onnxruntime and in torch, as one worker a core would run), and of the run's
classifier in torch; accuracy scores every validation clip of the run's split, decoded as
esc50 decodes it, as one window. The last two columns split an ONNX file's time in onnxruntime's
profiler (kernel time, mean of ``--repeats`` calls of one clip): its convolutions with what they
bring (the layout reorders of onnxruntime's convolution kernels; in int8 the quantize and
dequantize nodes, the int8 sums and the layout transposes onnxruntime inserts for its int8
kernels) against everything else (featurizer, normalization, masks, pooling).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Iterator
from unittest import mock

import numpy as np
import onnx
import onnxruntime
import torch

import esc50
from esc50.commands import export_stft
from esc50.commands.export_int8 import inner_graphs
from esc50.core.plugin_api.contracts import tracing_whole_clips
from esc50.core.data.audio import to_float
from esc50.core.data.audiocache import AudioCache
from esc50.core.data.clips import find_clips
from esc50.core.data.location import resolve_data_dir
from esc50.core.data.split import Split
from timing import median_seconds  # benchmarks/, the folder this script runs from


# op types that run a convolution or exist for one (quantizing, layouts); see kernel_split
CONVOLUTION_PATH = {"Conv", "FusedConv", "QLinearConv", "QLinearAdd", "QuantizeLinear",
                    "DequantizeLinear", "ReorderInput", "ReorderOutput"}
CONTROL_FLOW = {"If", "Loop", "Scan"}  # nodes that run a graph of their own


def session_options(threads: int | None) -> onnxruntime.SessionOptions:
    """onnxruntime's options with ``threads`` threads in an operator (None: its default)."""
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return options


def node_names(graph: onnx.GraphProto) -> Iterator[str]:
    """The names of a graph's nodes and of the nodes of the graphs inside them (an int8
    file's two graphs: commands/export_int8.py)."""
    for node in graph.node:
        yield node.name
        for inner in inner_graphs(node):
            yield from node_names(inner)


def kernel_split(path: Path, wav: np.ndarray, calls: int, threads: int | None
                 ) -> tuple[float, float]:
    """Milliseconds of kernel time a call of the ONNX file at ``path`` takes in onnxruntime's
    profiler (mean of ``calls`` calls after one), as (the convolution path: the op types of
    :data:`CONVOLUTION_PATH` and the transposes onnxruntime inserts, named by no node of the
    file; everything else)."""
    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(1 + calls):
        session.run(["window_probabilities"], {"wav": wav})
    events = json.loads(Path(session.end_profiling()).read_text())
    first = min((e for e in events if e["name"] == "model_run"), key=lambda e: e["ts"])
    named = set(node_names(onnx.load(str(path)).graph))
    convolution = rest = 0.0
    for event in events:
        if (event.get("cat") != "Node" or not event["name"].endswith("_kernel_time")
                or event["ts"] < first["ts"] + first["dur"]):  # the first call warms up
            continue
        op, node = event["args"]["op_name"], event["name"].removesuffix("_kernel_time")
        if op in CONTROL_FLOW:
            continue  # its time is its graph's nodes', counted one by one
        if op in CONVOLUTION_PATH or (op == "Transpose" and node not in named):
            convolution += event["dur"]
        else:
            rest += event["dur"]
    return convolution / calls / 1000, rest / calls / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--data", help="the dataset folder (default: the run's)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, help="threads in onnxruntime and torch "
                        "(default: each one's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = esc50.load(args.run)
    config = model.config
    table = find_clips(resolve_data_dir(args.data or config.data), config)
    rows = dict(zip(table.names(), table.clips))
    clips = [rows[n] for n in Split.from_dict(model.state["split"]).val if n in rows]
    audio = AudioCache(clips, config)
    waves = to_float(audio.waves).numpy()
    targets = np.array([c.target for c in clips])
    print(f"run {args.run} ({config.model}), {len(clips)} validation clips of "
          f"{config.length_wav / config.sample_rate:g} s; onnxruntime {onnxruntime.__version__}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, onnxruntime with "
          f"{args.threads or 'its default'} threads\n")
    print("| what | file MiB | ms per clip | accuracy | agrees with torch "
          "| convolution path ms | rest ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with torch.no_grad():
        lengths = torch.full((1,), config.length_wav)
        clip = torch.from_numpy(waves[:1])
        seconds = median_seconds(lambda: model.classifier(clip, lengths), args.repeats)
        reference = np.concatenate([
            torch.softmax(model.classifier(torch.from_numpy(waves[i:i + 32]),
                                           torch.full((len(waves[i:i + 32]),),
                                                      config.length_wav)), 1).numpy()
            for i in range(0, len(waves), 32)]).argmax(1)
    print(f"| torch (esc50, float32) | - | {seconds * 1000:.1f} | "
          f"{(reference == targets).mean():.1%} | - | - | - |", flush=True)
    variants = [  # an empty translation table leaves torch.stft to ONNX's STFT operator
        ("float32, ONNX's STFT operator", None, mock.patch.dict(export_stft.TRANSLATIONS,
                                                                clear=True)),
        ("float32", None, nullcontext()),
        ("float32, whole-window graph only", None, tracing_whole_clips()),
        ("int8", "int8", nullcontext())]
    with tempfile.TemporaryDirectory() as work:
        for k, (label, quantize, exporting) in enumerate(variants):
            with exporting:
                path, _ = model.export("onnx", Path(work) / f"m{k}.onnx", quantize, args.data)
            session = onnxruntime.InferenceSession(str(path), session_options(args.threads),
                                                   providers=["CPUExecutionProvider"])
            run = lambda wav: session.run(["window_probabilities"], {"wav": wav})[0]  # noqa: E731
            seconds = median_seconds(lambda: run(waves[0]), args.repeats)
            guesses = np.array([run(wav)[0].argmax() for wav in waves])
            convolution, rest = kernel_split(path, waves[0], args.repeats, args.threads)
            print(f"| onnxruntime, {label} | {path.stat().st_size / 2**20:.2f} | "
                  f"{seconds * 1000:.1f} | {(guesses == targets).mean():.1%} | "
                  f"{(guesses == reference).mean():.1%} | {convolution:.2f} | {rest:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
