"""`esc50 export`: a trained model as one ONNX or TorchScript file."""

from __future__ import annotations

import functools

import click

from esc50.cli.errors import user_errors
from esc50.cli.options import CHECKPOINT_CHOICE


@click.command()
@click.argument("checkpoint", metavar="MODEL")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True,
              help="onnx (runs in onnxruntime) or torchscript (runs in torch alone).")
@click.option("--out", type=click.Path(dir_okay=False), help="file to write (default: "
              "model.onnx, model.int8.onnx or model.pt in the run folder); a .json side file "
              "goes beside it.")
@click.option("--quantize", type=click.Choice(["int8"]), help="int8 weights and activations "
              "(ONNX; onnxruntime's static quantization, calibrated on training clips).")
@click.option("--data", help="dataset folder for the int8 calibration clips (default: the one "
              "the run was trained on).")
@click.option("--hop", type=float, help="seconds between windows (default: half a window).")
@CHECKPOINT_CHOICE
@user_errors
def export(checkpoint: str, fmt: str, out: str | None, quantize: str | None, data: str | None,
           hop: float | None, which: str) -> None:
    """A trained run (or a cross-validation's fold models, as one ensemble) as one file that
    takes a mono waveform of any length (a short one padded as predict pads) at its rate and
    returns each window's class probabilities and their mean (featurizer and normalization
    included)."""
    from esc50.commands import api

    warn = functools.partial(click.echo, err=True)
    model = api.load(checkpoint, which, warn=warn)
    path, side = model.export(fmt, out, quantize, data, hop, warn)
    click.echo(f"wrote {path} ({model.description}; {path.stat().st_size / 2**20:.1f} MiB) and "
               f"{side} (class names, sample rate, window and hop)")
