"""A training epoch with every built-in waveform augmentation on (policy ``all``, each at its
default ``p``) against the model's own forward and backward over the same batches computed
beforehand (the issue's GPU goal: within 1.5x), in one run; then each stage of preparing one
batch timed on its own.

    python benchmarks/epoch.py --data ../shared/datasets/esc50 [--device cuda] [--models crnn kumar]

The augmented epoch is timed as the trainer runs it (on a GPU each batch is prepared one step
ahead on a second stream) and with batches prepared one after another. All timings run the
trainer's own epoch loop (`Trainer.run_epoch`: forward, loss, backward,
Adam, the on-device loss and accuracy sums); for the reference its batches come from a list made
beforehand on the training device instead of from the decoded audio.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from typing import Callable

import torch

from esc50.core.config import TaskConfig
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training import loop
from esc50.core.training.device import autocast
from esc50.core.training.trainer import Trainer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], object], repeats: int = 1) -> float:
    """Seconds per call of ``work`` (after one call to warm up)."""
    work()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    synchronize(device)
    return (time.perf_counter() - started) / repeats


def wave_augmentations() -> list[str]:
    """The ids of the built-in waveform-stage augmentations."""
    return sorted(c.id for c in load_registry().of_kind("augmentation")
                  if c.package == "esc50" and getattr(c.factory, "stage", None) == "wave")


def epoch_seconds(trainer: Trainer, epoch: int) -> float:
    return timed(trainer.device, lambda: trainer.run_epoch(epoch, training=True), repeats=1)


def measure(config: TaskConfig, model: str, augs: list[str], repeats: int, stages: bool,
            profile: bool) -> None:
    trainer = Trainer(config.override(model=f"plugins.{model}", augs=augs), load_registry(),
                      log=lambda _: None)
    data = trainer.data
    clips = len(data.train_set)
    batches = data.batches
    augmented = epoch_seconds(trainer, 1)  # after one call to warm up: the second epoch
    data.batches = functools.partial(batches, ahead=False)
    one_by_one = epoch_seconds(trainer, 2)
    prepared = list(batches(trainer.randomness))  # on the device
    data.batches = lambda generator, epoch=0: iter(prepared)
    reference = epoch_seconds(trainer, 3)
    print(f"| {model} | {clips} | {clips / augmented:.0f} | {clips / one_by_one:.0f} | "
          f"{clips / reference:.0f} | {augmented / reference:.2f}x | "
          f"{one_by_one / reference:.2f}x |", flush=True)
    if stages:
        stage_times(trainer, prepared, repeats)
    if profile:
        profile_batches(trainer)


def stage_times(trainer: Trainer, prepared: list, repeats: int) -> None:
    """Each stage of preparing one batch, on its own, and one training step."""
    device, data = trainer.device, trainer.data
    batch = next(iter(data.train_loader))
    generator = trainer.randomness
    wav, _ = data._waves(batch)
    stages = {"batch to the device": lambda: next(iter(data.train_loader))}
    for spec, aug in trainer.augs.items():
        stages[f"{spec} (p={aug.p})"] = lambda aug=aug: aug(wav, generator)
    featurizer = trainer.classifier.featurizer
    stages["featurizer"] = lambda: featurizer(wav)
    stages["whole batch prepared"] = lambda: data.prepare(batch, True, generator)
    features, frames, targets = prepared[0].tensors()
    stages["training step"] = lambda: step(trainer, features, frames, targets)
    for name, work in stages.items():
        print(f"|  | {name} | {timed(device, work, repeats) * 1000:.1f} ms |", flush=True)


def profile_batches(trainer: Trainer, batches: int = 3) -> None:
    """torch.profiler's operators by their own time over preparing ``batches`` batches."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if trainer.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    loader = iter(trainer.data.train_loader)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(batches):
            trainer.data.prepare(next(loader), True, trainer.randomness)
        synchronize(trainer.device)
    by = "self_cuda_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=by, row_limit=25, max_name_column_width=50))


def step(trainer: Trainer, features: torch.Tensor, frames: torch.Tensor,
         targets: torch.Tensor) -> None:
    loss_fn = loop.training_loss(trainer.state.model, trainer.config.label_smoothing)
    with autocast(trainer.device, trainer.amp):
        loss = loss_fn(trainer.step_model(features, frames).float(), targets)
    trainer.state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.state.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="*", default=["crnn", "kumar"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--val-fold", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stages", action="store_true", help="time each stage of a batch")
    parser.add_argument("--profile", action="store_true", help="profile preparing 3 batches")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override (a quick run: --set sample_rate=8000)")
    args = parser.parse_args()
    augs = wave_augmentations()
    with tempfile.TemporaryDirectory() as work:
        config = TaskConfig().override(data=args.data, split="fold", val_fold=args.val_fold,
                                       device=args.device, progress=False, output_dir=work,
                                       **dict(_parse(s) for s in args.set))
        print(f"device {args.device}"
              f"{' (' + torch.cuda.get_device_name() + ')' if args.device == 'cuda' else ''}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch "
              f"{config.batch_size}; augmentations (policy all): {', '.join(augs)}\n")
        print("| model | clips per epoch | augmented epoch clips/s | the same, one batch after "
              "another | prepared batches clips/s | epoch time ratio | ratio, one after another |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for model in args.models:
            measure(config, model, augs, args.repeats, args.stages, args.profile)


def _parse(setting: str) -> tuple[str, object]:
    key, _, value = setting.partition("=")
    return key, int(value) if value.lstrip("-").isdigit() else value


if __name__ == "__main__":
    main()
