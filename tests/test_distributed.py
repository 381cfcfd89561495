"""Multi-process training: torchrun with the gloo backend, two CPU processes, real entry point."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.results.checkpoint import load_checkpoint
from tests.conftest import STFT_FLAGS, write_synthetic_dataset


def torchrun(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m esc50 ARGS``, its output in files under
    ``workdir`` (no time limit: a busy machine is slow, not wrong)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "esc50", *args]
    out, err = workdir / "torchrun.out", workdir / "torchrun.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        returncode = subprocess.run(command, stdout=stdout, stderr=stderr).returncode
    return subprocess.CompletedProcess(command, returncode, out.read_text(), err.read_text())


SETTINGS = ["--set", "num_classes=4", "--set", "sample_rate=8000", "--set", "length_wav=8000",
            *STFT_FLAGS]


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_two_processes_take_the_steps_of_one_and_learn(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", clips_per_class_per_fold=4)
    args = ["train", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--epochs", "6",
            "--val-fold", "1", "--no-progress", "--device", "cpu", "--batch-size", "16",
            "--lr", "3e-3", "--aug", "noise:min_snr_db=20,max_snr_db=30", *SETTINGS]
    done = torchrun(tmp_path, *args, "--run-name", "two")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("final validation accuracy") == 1  # rank 0 alone prints
    single = CliRunner().invoke(cli, [*args, "--run-name", "one"])
    assert single.exit_code == 0, single.output

    two = load_checkpoint(tmp_path / "runs" / "two" / "last.pt")
    one = load_checkpoint(tmp_path / "runs" / "one" / "last.pt")
    assert [r["steps"] for r in two["history"]] == [r["steps"] for r in one["history"]]
    assert len(two["rng"]["augment"]) == 2  # each process's own augmentation stream
    metrics = json.loads((tmp_path / "runs" / "two" / "metrics.json").read_text())
    assert metrics["final_val_accuracy"] >= 0.85  # chance is 0.25
    assert metrics["train_clips"] == 32 and metrics["val_clips"] == 16
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["one", "two"]

    resumed = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "runs" / "two")])
    assert resumed.exit_code == 1
    assert "was trained by 2 process(es); resume it with as many, not 1" in resumed.output


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data")
    done = torchrun(tmp_path, "train", "--data", str(data), "--output-dir", str(tmp_path), "--val-fold", "1",
                    "--batch-size", "15", "--device", "cpu", *SETTINGS)
    assert done.returncode != 0
    assert "Error: batch_size=15 does not split evenly over 2 processes" in done.stderr


def accumulate_in_process(rank: int, port: int, out: str) -> None:
    """One of two gloo processes: four optimizer steps of two micro-batches each through a
    DistributedDataParallel model, every micro-batch's gradients reduced (as before), then the
    first micro-batch of each step held back (no_sync, as now); writes the final weights and how
    many all-reduces each way ran."""
    import gc
    import os

    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    from esc50.core.training.distributed import held_back

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    results = {}
    for hold in (False, True):
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(6, 3))
        reduced = []
        model.register_comm_hook(None, lambda state, bucket: reduced.append(1) or
                                 allreduce_hook(state, bucket))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        data = torch.Generator().manual_seed(10 + rank)  # each process its own shard
        for _ in range(4):
            optimizer.zero_grad()
            for micro in range(2):
                x, y = torch.randn(5, 6, generator=data), torch.randint(3, (5,), generator=data)
                with held_back(model, hold and micro == 0):
                    (torch.nn.functional.cross_entropy(model(x), y) * 0.5).backward()
            optimizer.step()
        results[hold] = {"weight": model.module.weight.detach(), "reduced": len(reduced)}
    if rank == 0:
        torch.save(results, out)
    # The DDP model and its Python comm hook go before gloo does: left to the interpreter's
    # exit, they aborted a process after its work was done (std::terminate; 3 runs of 60).
    del model, optimizer
    gc.collect()
    dist.barrier()  # both leave together: a process tearing gloo down alone may abort the other
    dist.destroy_process_group()


@pytest.mark.slow
def test_accumulated_micro_batches_reduce_gradients_once_a_step_to_the_same_weights(tmp_path):
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    mp.spawn(accumulate_in_process, args=(port, str(tmp_path / "w.pt")), nprocs=2, join=True)
    before, now = (torch.load(tmp_path / "w.pt")[hold] for hold in (False, True))
    assert before["reduced"] == 8 and now["reduced"] == 4
    torch.testing.assert_close(now["weight"], before["weight"])
