"""Data-parallel training with torchrun: two gloo processes on this CPU.

The worker is tests/data_parallel_run.py; each process has its own cache
folder, so anything rank 1 writes is caught.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from t2i import distributed
from t2i.train import throughput

WORKER = Path(__file__).with_name("data_parallel_run.py")


def run(
    model: str, out: Path, processes: int, *extra: str
) -> subprocess.CompletedProcess:
    launcher = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
        ]
        if processes > 1
        else [sys.executable]
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env.update(T2I_BOOK_BUILD="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [*launcher, str(WORKER), model, str(out), *extra],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def weights(out: Path, rank: int) -> dict:
    return torch.load(out / f"weights-rank{rank}.pt", weights_only=True)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def assert_same(a: dict, b: dict, **tolerance) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if tolerance:
            torch.testing.assert_close(value, b[key], **tolerance, msg=key)
        else:
            assert torch.equal(value, b[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("model", ["vqvae", "vqgan"])
def test_two_processes_end_identical_and_only_rank_0_writes(tmp_path, model):
    done = run(model, tmp_path, 2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same(weights(tmp_path, 0)["weights"], weights(tmp_path, 1)["weights"])
    assert files_under(tmp_path / "cache-rank1") == []
    written = files_under(tmp_path / "cache-rank0")
    assert {Path(f).name for f in written} == {
        "config.json",
        "history.json",
        "model.safetensors",
        "model.sha256",
        "training.json",
    }
    assert "12 steps on 2 processes (cpu)" in done.stdout
    # a second run: rank 0 loads from its cache, rank 1 receives the weights
    again = run(model, tmp_path, 2)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "loaded from the cache" in again.stdout
    assert "steps on" not in again.stdout
    assert_same(weights(tmp_path, 0)["weights"], weights(tmp_path, 1)["weights"])
    assert files_under(tmp_path / "cache-rank1") == []


@pytest.mark.slow
def test_two_processes_take_the_steps_of_one_process_on_the_whole_batch(tmp_path):
    """An EMA VQ-VAE: averaged gradients and summed codebook statistics make two
    processes with 4 examples each equal one process with 8."""
    two, one = tmp_path / "two", tmp_path / "one"
    for out, processes in ((two, 2), (one, 1)):
        done = run("vqvae", out, processes)
        assert done.returncode == 0, done.stdout + done.stderr
    parallel, single = weights(two, 0), weights(one, 0)
    assert_same(parallel["weights"], single["weights"], atol=1e-5, rtol=1e-4)
    assert parallel["history"]["step"] == single["history"]["step"]
    torch.testing.assert_close(
        torch.tensor(parallel["history"]["loss"]),
        torch.tensor(single["history"]["loss"]),
        atol=1e-5,
        rtol=1e-4,
    )
    # the check can fail: the codebook did move, and differently from its start
    codebook = "quantizer.codebook"
    assert not torch.allclose(single["weights"][codebook], torch.zeros(16, 4))


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_same_weights(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = run("vqgan", whole, 2)
    assert done.returncode == 0, done.stdout + done.stderr
    crashed = run("vqgan", killed, 2, "--crash-at", "7")
    assert crashed.returncode != 0
    assert not (killed / "weights-rank0.pt").exists()
    assert [Path(f).name for f in files_under(killed / "cache-rank0")] == [
        "config.json",
        "resume.pt",
    ]
    resumed = run("vqgan", killed, 2)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from step 4 of 12" in resumed.stdout
    for rank in (0, 1):
        assert_same(weights(killed, rank)["weights"], weights(whole, rank)["weights"])
    assert weights(killed, 0)["history"] == weights(whole, 0)["history"]


@pytest.mark.slow
def test_a_two_process_run_resumes_in_one_process(tmp_path):
    """The batches do not depend on the number of processes, so a run killed
    on two processes and finished on one ends where the two would have."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run("vqvae", whole, 2).returncode == 0
    assert run("vqvae", killed, 2, "--crash-at", "7").returncode != 0
    resumed = run("vqvae", killed, 1)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from step 4 of 12" in resumed.stdout
    assert "written by 2 process(es), this run has 1" in resumed.stdout
    assert_same(
        weights(killed, 0)["weights"],
        weights(whole, 0)["weights"],
        atol=1e-5,
        rtol=1e-4,
    )


@pytest.mark.slow
def test_the_command_line_trains_under_torchrun_and_one_process_speaks(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env.update(T2I_CACHE=str(tmp_path), T2I_BOOK_BUILD="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "t2i",
            "train",
            "ae",
            "--latent-dim",
            "2",
            "--steps",
            "4",
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ae-mnist-z2: 4 steps on 2 processes (cpu)") == 1
    assert done.stdout.count("test MSE") == 1


def _average_on_two_ranks(rank: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    only_rank_0, nowhere, both = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    if rank == 0:
        only_rank_0.grad = torch.full((2,), 2.0)
    both.grad = torch.full((2,), 1.0 + 2 * rank)
    distributed.average_gradients([only_rank_0, nowhere, both])
    torch.save(
        {"only_rank_0": only_rank_0.grad, "nowhere": nowhere.grad, "both": both.grad},
        f"{out}-{rank}.pt",
    )
    dist.destroy_process_group()


def test_a_gradient_missing_on_one_rank_counts_as_zero_there(tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "grads")
    mp.spawn(_average_on_two_ranks, args=(str(tmp_path / "init"), out), nprocs=2)
    for rank in (0, 1):
        grads = torch.load(f"{out}-{rank}.pt", weights_only=True)
        assert grads["only_rank_0"].tolist() == [1.0, 1.0]  # (2 + 0) / 2
        assert grads["nowhere"] is None
        assert grads["both"].tolist() == [2.0, 2.0]  # (1 + 3) / 2


def test_shard_splits_the_global_batch_and_names_the_fix_when_uneven(monkeypatch):
    indices = torch.arange(12)
    assert torch.equal(distributed.shard(indices), indices)  # one process
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    monkeypatch.setattr(distributed, "rank", lambda: 2)
    assert distributed.shard(indices).tolist() == [8, 9, 10, 11]
    with pytest.raises(ValueError, match="multiple of 3"):
        distributed.shard(torch.arange(10))


def test_throughput_counts_images_or_tokens_over_all_processes(monkeypatch):
    images = (torch.zeros(8, 3, 4, 4), torch.zeros(8))
    tokens = (torch.zeros(8, 20, dtype=torch.long),)
    assert throughput(images, steps=10, seconds=2.0) == {"images/s": 40.0}
    assert throughput(tokens, steps=10, seconds=2.0) == {"tokens/s": 800.0}
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    assert throughput(images, steps=10, seconds=2.0) == {"images/s": 160.0}
