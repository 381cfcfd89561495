"""Training clips per second of the report's pipeline against esc50's, on the same real clips,
for the same models, with augmentation off and with the report's augmentations on; one process
per measurement, so each peak memory figure is its own.

    python benchmarks/pipeline.py --data ../shared/datasets/esc50 [--device cuda]

The report's pipeline, as it wrote it: a Dataset that decodes each WAV clip every epoch and
applies one augmentation drawn per clip (identity or one of five, librosa/torch one clip at a
time, in two DataLoader workers), then a batch mel spectrogram and log in the training loop.
esc50's: `Trainer` as `esc50 train` runs it, with the same model, batch size, sampler and
optimizer; its one-time set-up (decoding, featurizing) is timed apart from the epochs.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from augs import OURS, report_ops
from esc50.core.data.audio import load_clip
from esc50.core.data.collate import collate
from esc50.core.config import TaskConfig
from esc50.core.data.clips import find_clips
from esc50.core.data.split import make_split
from esc50.core.plugin_api.registry import load_registry
from esc50.core.data.sampler import ClassBalancedSampler
from esc50.core.training.trainer import Trainer
from fresh import in_fresh_process  # benchmarks/, the folder this script runs from

MODELS = ["crnn", "kumar"]
AUGS = {  # setting: esc50's augmentation specs (applied one per clip, as the report did)
    "off": [],
    "report's five (waveform)": list(OURS.values()),
    "report's five (power spectrogram)": [f"spec_{spec}" for spec in OURS.values()],
    "noise (the README's --aug noise)": ["noise"],
}


class ReportDataset(Dataset):
    """The report's ESC_50 dataset: read the WAV file, mix to mono, augment, every time."""

    def __init__(self, files: list[Path], labels: list[int], augment: bool,
                 noises: list[np.ndarray]) -> None:
        self.files, self.labels, self.augment = files, labels, augment
        ops = report_ops(noises)
        self.ops = [lambda x: x, *ops.values()]  # identity + five, one drawn per clip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        wav, _ = sf.read(self.files[i], dtype="float32", always_2d=True)
        wav = wav.mean(axis=1)
        if self.augment:
            wav = self.ops[np.random.randint(len(self.ops))](wav)
        return {"wav": torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)),
                "label": self.labels[i]}


def report_epoch_rate(config: TaskConfig, model_name: str, augment: bool, wav_dir: Path,
                      noises: list[np.ndarray], device: torch.device) -> dict:
    """Clips/s of the second of two epochs of the report's pipeline."""
    table, train = _training_clips(config)
    files = [wav_dir / f"{table.clips[i].path.stem}.wav" for i in train]
    labels = [table.clips[i].target for i in train]
    dataset = ReportDataset(files, labels, augment, noises)
    for op in dataset.ops:  # compile librosa's numba code once, before the workers fork
        op(np.zeros(config.length_wav, dtype=np.float32) + 1e-3)
    registry = load_registry()
    featurizer = registry.create("featurizer", "plugins.logmel", config)  # the report's settings
    mel = featurizer.settings.spectrogram().to(device)
    input_shape = featurizer.output_shape(config.length_wav)
    model = registry.create("model", f"plugins.{model_name}", config, input_shape).to(device)
    optimizer = torch.optim.Adam(model.parameters(), config.learning_rate,
                                 weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    rates = []
    for _ in range(2):
        loader = DataLoader(dataset, batch_size=config.batch_size, collate_fn=collate,
                            sampler=ClassBalancedSampler(labels), num_workers=2,
                            pin_memory=device.type == "cuda")
        started, seen = time.perf_counter(), 0
        for batch in loader:
            wav = batch["wav"].to(device)
            features = torch.log(mel(wav).clamp(min=1e-9)).unsqueeze(1)
            frames = batch["length"].to(device) // featurizer.settings.hop_length + 1
            loss = loss_fn(model(features, frames), batch["label"].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(wav)
        _synchronize(device)
        rates.append(seen / (time.perf_counter() - started))
    return {"clips_per_s": rates[-1], "setup_s": 0.0}


def esc50_epoch_rate(config: TaskConfig, model_name: str, augs: list[str]) -> dict:
    """Clips/s of the second of two training epochs of esc50's Trainer; set-up timed apart."""
    started = time.perf_counter()
    trainer = Trainer(config.override(model=f"plugins.{model_name}", augs=augs,
                                      aug_policy="one-of"), load_registry(), log=lambda _: None)
    setup = time.perf_counter() - started
    rates = []
    for epoch in (1, 2):
        started = time.perf_counter()
        trainer.run_epoch(epoch, training=True)
        _synchronize(trainer.device)
        rates.append(len(trainer.data.train_set) / (time.perf_counter() - started))
    cached = trainer.data.cache[0].nbytes if trainer.data.cache is not None else 0
    return {"clips_per_s": rates[-1], "setup_s": setup, "feature_cache_mib": cached / 2**20}


def _training_clips(config: TaskConfig):
    table = find_clips(Path(config.data), config)
    return table, make_split(table, config, {}).indices(table)[0]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(args: argparse.Namespace) -> None:
    """One measurement (in its own process): print a JSON line."""
    config = TaskConfig().override(data=args.data, split="random", train_ratio=args.train_ratio,
                                   num_classes=50, sample_rate=44_100, length_wav=220_500,
                                   device=args.device, progress=False, output_dir=args.work,
                                   batch_size=args.batch_size, seed=0)
    torch.manual_seed(0)
    np.random.seed(0)
    noise_dir = Path(args.work) / "noise"
    augs = [spec.format(noise=noise_dir) for spec in AUGS[args.augs]]
    if args.pipeline == "report":
        noises = [load_clip(p, config.sample_rate)[0].numpy() for p in sorted(noise_dir.iterdir())]
        result = report_epoch_rate(config, args.model, bool(augs), Path(args.work) / "wav",
                                   noises, torch.device(config.device if config.device != "auto"
                                                        else "cpu"))
    else:
        result = esc50_epoch_rate(config, args.model, augs)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_worker_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


def prepare(data: str, work: Path, clips: int | None) -> int:
    """WAV copies of the clips (the official release's format, which the report read) and four
    clips as the background-noise folder. Returns the number of clips."""
    config = TaskConfig().override(data=data, num_classes=50, sample_rate=44_100, length_wav=220_500)
    table = find_clips(Path(data), config)
    (work / "wav").mkdir()
    (work / "noise").mkdir()
    chosen = table.clips[:clips] if clips else table.clips
    for clip in chosen:
        wav, _ = load_clip(clip.path, config.sample_rate)
        sf.write(work / "wav" / f"{clip.path.stem}.wav", wav.numpy(), config.sample_rate,
                 subtype="PCM_16")
    for i, clip in enumerate(table.clips[-4:]):
        sf.write(work / "noise" / f"noise{i}.wav", load_clip(clip.path, config.sample_rate)[0],
                 config.sample_rate)
    meta = work / "wav" / "meta"
    meta.mkdir()
    names = {c.path.stem for c in chosen}
    lines = (Path(data) / "meta" / "esc50.csv").read_text().splitlines()
    (meta / "esc50.csv").write_text("\n".join(
        [lines[0], *[line for line in lines[1:] if Path(line.split(",")[0]).stem in names]])
        + "\n")
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--clips", type=int, help="use only the first N clips (a quick run)")
    parser.add_argument("--batch-size", type=int, default=TaskConfig.batch_size)
    parser.add_argument("--train-ratio", type=float, default=0.95)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", nargs=3, metavar=("PIPELINE", "MODEL", "AUGS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        args.pipeline, args.model, args.augs = args.one
        args.data = str(Path(args.work) / "wav")
        measure(args)
        return

    with tempfile.TemporaryDirectory() as work:
        count = prepare(args.data, Path(work), args.clips)
        print(f"{count} real ESC-50 clips (5 s, 44.1 kHz, as 16-bit WAV), "
              f"{round(count * args.train_ratio)} per training epoch, batch {args.batch_size}, "
              f"device {args.device}, torch threads {torch.get_num_threads()}; "
              "clips/s of the second epoch\n")
        print("| model | augmentation | report clips/s | esc50 clips/s | ratio | esc50 set-up s "
              "| report peak RSS MiB (main + largest worker) | esc50 peak RSS MiB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for model in args.models:
            report_rate = {}
            for augs in AUGS:
                kind = "on" if AUGS[augs] else "off"
                if kind not in report_rate:
                    report_rate[kind] = run_one(args, work, "report", model, augs)
                ours = run_one(args, work, "esc50", model, augs)
                ref = report_rate[kind]
                print(f"| {model} | {augs} | {ref['clips_per_s']:.1f} | "
                      f"{ours['clips_per_s']:.1f} | {ours['clips_per_s'] / ref['clips_per_s']:.1f}x"
                      f" | {ours['setup_s']:.1f} | {ref['peak_rss_mib']:.0f} + "
                      f"{ref['peak_worker_rss_mib']:.0f} | {ours['peak_rss_mib']:.0f} |",
                      flush=True)


def run_one(args: argparse.Namespace, work: str, pipeline: str, model: str, augs: str) -> dict:
    return in_fresh_process(__file__, pipeline, model, augs, "--work", work, "--data", args.data,
                            "--batch-size", str(args.batch_size), "--train-ratio",
                            str(args.train_ratio), "--device", args.device)


if __name__ == "__main__":
    main()
