"""One epoch of training or validation: batches in, the model's step, loss and accuracy out.

Loss and accuracy are summed on the training device and read back (a GPU sync) only every
``SYNC_EVERY`` steps, for the progress bar, the finiteness check and the step loggers, and at
the end. When the loss has stopped being finite, the batches since the last read-back are
prepared again from their records, with the draws they were prepared with and every stage's
output checked, so that the message names the first plugin whose output went non-finite (or
says that none did: the training diverged). Validation goes through the run's scoring
(:mod:`esc50.core.training.scoring`): the accuracy of its last epoch is what every later scoring
of the same clips gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from esc50.core.config import TaskConfig
from esc50.core.data.collate import collate
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.contracts import Randomness
from esc50.core.training.batches import FeatureSource
from esc50.core.training.device import autocast
from esc50.core.training.distributed import Distributed, held_back
from esc50.core.training.memory import measure, plan_steps
from esc50.core.training.scoring import Scoring, predicted
from esc50.core.training.stages import BatchRecord
from esc50.core.training.state import TrainingState, state_bytes

SYNC_EVERY = 20  # steps between reads of the running loss from the device
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    steps: int  # optimizer steps taken (0 in validation)


def run_epoch(source: FeatureSource, state: TrainingState, epoch: int, training: bool, *,
              step_model: nn.Module, randomness: Randomness, loss_fn: Loss, scoring: Scoring,
              dist: Distributed, progress: bool,
              on_step: Callable[[int, float, float], None] | None = None) -> EpochStats:
    """One pass over the training batches (the model learns) or the validation batches (the
    scored model, :attr:`TrainingState.scored_model`, is evaluated in ``scoring``'s batches).
    ``step_model`` is the model as a training step calls it (wrapped for several processes or
    compiled); the model runs under bf16 autocast when ``scoring.bf16``; ``on_step(step,
    running loss, lr)`` is called where the loss is read back anyway."""
    model = step_model if training else state.scored_model
    model.train(training)
    device = source.device
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    finite = torch.ones((), dtype=torch.bool, device=device)
    seen = 0
    desc = f"epoch {epoch} {'train' if training else 'val'}"
    steps = source.steps(training, scoring.batch)
    weights = source.step_weights() if training else []
    batches = source.batches(randomness, epoch) if training else \
        source.validation.batches(scoring, dist, epoch)
    bar = tqdm(batches, total=steps, desc=desc, leave=False, disable=not progress)
    unread: list[BatchRecord] = []  # the batches since the loss was last read back
    for step, batch in enumerate(bar, start=1):
        unread.append(batch.record)
        last_of_step = step % source.accumulate == 0 or step == steps  # ``accumulate`` a step
        with held_back(step_model, training and not last_of_step):  # one all-reduce a step
            with torch.set_grad_enabled(training), autocast(device, scoring.bf16):
                logits = source.stages.at(batch.record.where).logits(model, batch.features,
                                                                     batch.frames)
                loss = loss_fn(logits.float(), batch.targets)
            if training:  # each micro-batch weighted by its share of the step's clips
                if (step - 1) % source.accumulate == 0:
                    state.optimizer.zero_grad(set_to_none=True)
                (loss * weights[step - 1] if source.accumulate > 1 else loss).backward()
        finite &= torch.isfinite(loss)
        if training and last_of_step:
            state.step(finite)  # skipped when not finite: the weights stay as they were
        read_back = step % SYNC_EVERY == 0 or step == steps
        checked = read_back or device.type == "cpu"  # a CPU reads the flag for free
        if checked and not finite:
            lost = f"{desc}: the loss became {loss.item()} (by step {step})"
            try:
                replay(source, unread, randomness, model, scoring)
            except Esc50Error as exc:
                raise Esc50Error(f"{lost}; {exc}") from None
            raise Esc50Error(f"{lost}; lower --lr or check the data (every stage's output on "
                             "the batches since the last check, prepared again with their own "
                             "draws, is finite: training diverged)")
        if checked:
            unread.clear()
        if training:
            labels, guesses = batch.targets.argmax(1), logits.argmax(dim=1)
        else:
            labels, guesses = batch.targets, predicted(logits.float())
        total_loss += loss.detach().double() * len(labels)
        correct += (guesses == labels).sum()
        seen += len(labels)
        if read_back:
            running = float(total_loss) / seen
            bar.set_postfix(loss=f"{running:.3f}", acc=f"{int(correct) / seen:.3f}")
            if training and on_step is not None:
                on_step(step, running, state.optimizer.param_groups[0]["lr"])
    total_loss, correct, seen = dist.sum([float(total_loss), int(correct), seen], device)
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1),
                      source.optimizer_steps() if training else 0)


@torch.no_grad()
def replay(source: FeatureSource, records: list[BatchRecord], randomness: Randomness,
           model: nn.Module, scoring: Scoring) -> None:
    """Prepare the recorded batches again, in order, each with its own draws and every stage's
    output checked, and score them: raises the one-line error of the first plugin whose output
    is wrong or non-finite, if any."""
    for record in records:
        features, frames = source.replay(record, randomness)
        with autocast(source.device, scoring.bf16):
            source.stages.at(f"{record.where} (checked again)", checked=True).logits(
                model, features, frames)


def measure_step(source: FeatureSource, model: nn.Module, loss_fn: Loss, clips: int, amp: bool,
                 seed: int) -> int:
    """Peak bytes, on the training device, of one training step's batch preparation, forward
    and backward on ``clips`` training clips (:func:`esc50.core.training.memory.measure`). The
    run is left as it was: its own generators are not drawn from, torch's global random state,
    the model's buffers (batch-norm statistics) and gradients are put back."""
    items = [source.train_audio[i % len(source.train_audio)] for i in range(clips)]
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    global_state = torch.get_rng_state()
    generator = torch.Generator(device=source.device).manual_seed(seed)

    stages = source.stages.at(f" in the memory plan (a training step of {clips} clips)")

    def step() -> None:
        features, frames, targets = source.prepare(collate(items), True, generator, stages)
        with autocast(source.device, amp):
            logits = stages.logits(model, features, frames)
        loss_fn(logits.float(), targets).backward()

    model.train()
    try:
        return measure(step, source.device)
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name])
        torch.set_rng_state(global_state)


def plan_memory(source: FeatureSource, model: nn.Module, config: TaskConfig, amp: bool,
                log: Callable[[str], None]) -> int:
    """Plan the training step against the memory this process may use
    (:func:`esc50.core.training.memory.plan_steps`, measuring with :func:`measure_step`), set
    ``source`` to its micro-batches and return ``accumulate``: batches per optimizer step."""
    loss_fn = training_loss(model, config.label_smoothing)
    plan = plan_steps(config, source.step_batch,
                      lambda clips: measure_step(source, model, loss_fn, clips, amp, config.seed),
                      state_bytes(model, config), source.device)
    if plan.note:
        log(plan.note)
    source.use_micro_batches(plan.accumulate)
    return plan.accumulate


def training_loss(model: nn.Module, label_smoothing: float) -> Loss:
    """The model's own ``loss(logits, targets)`` where it defines one, else cross-entropy
    against the label probabilities (mixup makes them soft) with ``label_smoothing``."""
    if hasattr(model, "loss"):
        return model.loss
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


validation_loss = nn.CrossEntropyLoss()  # plain, on class indices
