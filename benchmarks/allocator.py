"""Training steps on the waveform path with and without freed memory kept for reuse.

    python benchmarks/allocator.py [--steps 6] [--batch 64]

Each setting runs in its own process (the allocator setting is process-wide): a batch of 5 s
clips at 44.1 kHz gets noise, the log-mel featurizer and a CRNN training step, ``--steps`` times
after one warm-up step; printed: seconds per step, user and system CPU seconds, minor page faults.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import torch

from fresh import in_fresh_process  # benchmarks/, the folder this script runs from


def measure(steps: int, batch: int) -> dict:
    from esc50.core.training.memory import keep_freed_memory
    from esc50.core.config import TaskConfig
    from esc50.core.plugin_api.registry import load_registry

    applied = keep_freed_memory()
    config = TaskConfig().override(num_classes=50, sample_rate=44100, length_wav=220500)
    registry = load_registry()
    featurizer = registry.create("featurizer", "plugins.logmel", config)
    model = registry.create("model", "plugins.crnn", config, featurizer.output_shape(220500))
    optimizer = torch.optim.Adam(model.parameters(), 3e-4)
    generator = torch.Generator().manual_seed(0)
    wav = (torch.rand(batch, 220500, generator=generator) - 0.5) * 0.5
    targets = torch.randint(0, 50, (batch,), generator=generator)
    frames = torch.full((batch,), featurizer.output_shape(220500)[-1])

    def step() -> None:
        noisy = wav + 0.01 * torch.randn(wav.shape, generator=generator)
        with torch.no_grad():
            features = featurizer(noisy)
        loss = torch.nn.functional.cross_entropy(model(features, frames), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"kept": applied, "s_per_step": (time.perf_counter() - started) / steps,
            "user_s": after.ru_utime - before.ru_utime,
            "system_s": after.ru_stime - before.ru_stime,
            "minor_faults": after.ru_minflt - before.ru_minflt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.steps, args.batch)))
        return
    print(f"CRNN, batch {args.batch}, 5 s clips, noise + log-mel + a training step, {args.steps} "
          f"steps, torch threads {torch.get_num_threads()}\n")
    print("| freed memory | s / step | user s | system s | minor page faults |")
    print("|---|---:|---:|---:|---:|")
    for switch in ("1", "0"):
        row = in_fresh_process(__file__, "--steps", str(args.steps), "--batch", str(args.batch),
                               env={**os.environ, "ESC50_KEEP_FREED_MEMORY": switch})
        print(f"| {'kept' if row['kept'] else 'returned'} | {row['s_per_step']:.2f} | "
              f"{row['user_s']:.1f} | {row['system_s']:.1f} | {row['minor_faults']:,} |")


if __name__ == "__main__":
    main()
