"""Time one training step (forward, backward, Adam) per model on random features of the default
config's shape, in the contiguous layout, in channels-last (the default), and channels-last under
torch.compile; print ms per clip and the ratios against the contiguous layout.

    python benchmarks/layout.py --models crnn kumar advanced --batch-size 32 [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from esc50.core.training.classifier import build_classifier
from esc50.core.config import TaskConfig
from esc50.core.plugin_api.registry import load_registry

VARIANTS = {"contiguous": dict(channels_last=False), "channels-last": dict(channels_last=True),
            "channels-last + compile": dict(channels_last=True, compile=True)}


def step_ms(config: TaskConfig, registry, batch_size: int, steps: int,
            device: torch.device) -> float:
    """Milliseconds per clip of a training step, after warm-up steps (compilation included)."""
    torch.manual_seed(0)
    classifier = build_classifier(config, registry).to(device)
    model = torch.compile(classifier.model) if config.compile else classifier.model
    optimizer = torch.optim.Adam(classifier.model.parameters(), lr=config.learning_rate)
    features = classifier.model_input(torch.randn(
        batch_size, *classifier.featurizer.output_shape(config.length_wav), device=device))
    frames = torch.full((batch_size,), features.shape[-1], device=device)
    labels = torch.randint(config.num_classes, (batch_size,), device=device)
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(features, frames).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps / batch_size * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=["crnn", "kumar", "advanced"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    registry, device = load_registry(), torch.device(args.device)
    print(f"ms per clip of a training step, batch {args.batch_size}, {device}, "
          f"{torch.get_num_threads()} threads\n")
    print("| model | " + " | ".join(VARIANTS) + " | " +
          " | ".join(f"{name} vs contiguous" for name in list(VARIANTS)[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(VARIANTS) - 1))
    for name in args.models:
        times = []
        for variant in VARIANTS.values():
            config = TaskConfig().override(model=f"plugins.{name}", num_classes=50, sample_rate=44_100, length_wav=220_500, **variant)
            times.append(step_ms(config, registry, args.batch_size, args.steps, device))
        ratios = [f"{times[0] / t:.2f}x" for t in times[1:]]
        print(f"| plugins.{name} | " + " | ".join(f"{t:.1f}" for t in times) + " | " +
              " | ".join(ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
