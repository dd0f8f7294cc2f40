"""One training loop for every model in the book.

The contract, kept small on purpose (minGPT's trainer is the model):

* ``data`` is a tuple of tensors with the same first dimension, e.g.
  ``(images, labels)``. Batches are drawn epoch by epoch from a permutation
  seeded by ``(seed, epoch)``, so the order depends only on the step number
  and a resumed run sees exactly the batches the killed run would have seen.
* ``model.loss(batch)`` takes that tuple of batch tensors and returns a dict
  of scalar tensors. ``"loss"`` is minimised; every entry is logged.
* A model with two players (chapter 5's VQGAN: a generator and a
  discriminator) says which loss entry trains which parameters by defining
  ``optimizer_groups()``: a dict from loss key to a torch parameter group,
  e.g. ``{"loss": {"params": generator}, "discriminator_loss": {"params":
  discriminator, "betas": (0.5, 0.9)}}``. Each group gets its own AdamW, and
  each key's gradient reaches only its own group's parameters. Without the
  method, ``"loss"`` trains every parameter.
* If ``checkpoint`` is given, model, optimiser, the state of every random
  generator a model may draw from (CPU, CUDA, MPS) and the history are written
  there atomically every ``checkpoint_every`` steps, and a later call with the
  same path resumes from the last one exactly as if it had never stopped.

What ``fit`` adds around the loop: device choice (cuda, mps, cpu), bf16
autocast (on GPUs with native bf16) and fused AdamW on cuda, channels-last memory layout for
convolutions, optional ``torch.compile`` (``compile=True`` or
``T2I_COMPILE=1``), gradient clipping, a cosine learning-rate decay, a
progress bar with the throughput, and a stop with a clear message when the
loss stops being a finite number.

Launched by ``torchrun``, the same loop trains data-parallel: each process
takes its slice of every batch and the gradients are averaged over the
processes before each optimiser step (:mod:`t2i.distributed` says how), so
N processes take the steps one process would take on the whole batch.
``batch_size`` stays the global batch. Only rank 0 prints and writes the
checkpoint; a killed run resumes on any number of processes.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .checkpoints import atomic_torch_save, read_checkpoint
from .env import is_book_build, pick_device
from .validate import check_non_negative, check_positive, check_sizes

History = dict[str, list[float]]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0  # max gradient norm; None turns clipping off
    cosine_decay: bool = True  # decay lr to 10% over the run
    seed: int = 0
    device: str = "auto"
    # torch.compile the loss (worth it on a GPU only; T2I_COMPILE=1 turns it on
    # without changing the config, and so without changing the cache key)
    compile: bool = False
    log_every: int = 50  # steps averaged into one history point
    eval_every: int = 0  # 0: evaluate only at the end (if eval data is given)
    checkpoint_every: int = 500  # a multiple of log_every, so a resume loses no log

    def __post_init__(self):
        check_sizes(self, "steps", "batch_size", "log_every", "checkpoint_every")
        check_positive(self, "lr")
        check_non_negative(self, "weight_decay", "eval_every")
        if self.grad_clip is not None:
            check_positive(self, "grad_clip")
        if self.checkpoint_every % self.log_every:
            raise ValueError(
                f"checkpoint_every ({self.checkpoint_every}) must be a multiple "
                f"of log_every ({self.log_every})"
            )


def _mps_available() -> bool:
    return (
        bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    )


# Every generator a model may draw from while it trains: (name, present?, read, restore).
# The VAE's noise, the PixelCNN's class dropout and the VQ restarts draw on the
# generator of the device they run on, so a resumed GPU run needs the GPU's too.
RANDOM_GENERATORS = (
    ("cpu", lambda: True, torch.get_rng_state, torch.set_rng_state),
    (
        "cuda",
        lambda: torch.cuda.is_available(),
        lambda: torch.cuda.get_rng_state_all(),
        lambda state: torch.cuda.set_rng_state_all(state),
    ),
    (
        "mps",
        _mps_available,
        lambda: torch.mps.get_rng_state(),
        lambda state: torch.mps.set_rng_state(state),
    ),
)


def random_states() -> dict:
    """The state of every random generator present on this machine."""
    return {name: read() for name, present, read, _ in RANDOM_GENERATORS if present()}


def restore_random_states(states: dict) -> None:
    for name, present, _, restore in RANDOM_GENERATORS:
        if name in states and present():
            restore(states[name])


def lr_at(step: int, config: TrainConfig) -> float:
    if not config.cosine_decay:
        return config.lr
    progress = step / max(1, config.steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def optimizer_groups(model: nn.Module) -> dict[str, dict]:
    """Loss key -> torch parameter group (see the module docstring)."""
    groups = (
        model.optimizer_groups()
        if hasattr(model, "optimizer_groups")
        else {"loss": {"params": model.parameters()}}
    )
    if "loss" not in groups:
        raise ValueError(
            f"{type(model).__name__}.optimizer_groups() must have a 'loss' group "
            f"(the main loss), got {list(groups)}"
        )
    # frozen tensors (an EMA codebook) are left out: no gradient ever reaches them
    return {
        key: dict(group, params=[p for p in group["params"] if p.requires_grad])
        for key, group in groups.items()
    }


def batch_indices(step: int, n: int, config: TrainConfig) -> torch.Tensor:
    """Indices of batch ``step``: a function of the step alone (resumable)."""
    per_epoch = max(1, n // config.batch_size)
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator)
    return order[position * config.batch_size : (position + 1) * config.batch_size]


class Progress:
    """tqdm.auto in a terminal or notebook; one plain line in the book build.

    A notebook progress bar is a widget, and widgets on the static website
    would need JavaScript from a CDN, so the build prints text instead.
    """

    def __init__(self, total: int, initial: int, desc: str, start: float):
        self.desc, self.total, self.start = desc, total, start
        self.bar = None
        if not is_book_build() and distributed.is_main():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)

    def update(self, n: int, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(
                    {k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False
                )

    def close(self, summary: str | None = None, details: str = "") -> None:
        """Close the bar; print ``summary`` and its time, then ``details`` wrapped."""
        if self.bar is not None:
            self.bar.close()
        if summary is not None and distributed.is_main():
            seconds = time.perf_counter() - self.start
            lines = [f"{self.desc}: {summary} in {seconds:.1f} s"]
            lines += textwrap.wrap(
                details, 76, initial_indent="  ", subsequent_indent="  "
            )
            print("\n".join(lines), file=sys.stdout)


def _to_device(
    batch: tuple[torch.Tensor, ...], device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Move a batch; image batches go channels-last, the layout fit gives conv weights."""
    return tuple(
        t.to(device, non_blocking=True, memory_format=torch.channels_last)
        if t.ndim == 4 and t.is_floating_point()
        else t.to(device, non_blocking=True)
        for t in batch
    )


@torch.no_grad()
def evaluate(
    model: nn.Module, data: tuple[torch.Tensor, ...], batch_size: int = 500
) -> dict[str, float]:
    """Average every entry of ``model.loss`` over ``data`` (weighted by batch size)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n = len(data[0])
    totals: dict[str, float] = {}
    for start in range(0, n, batch_size):
        batch = _to_device(tuple(t[start : start + batch_size] for t in data), device)
        for key, value in model.loss(batch).items():
            totals[key] = totals.get(key, 0.0) + value.item() * len(batch[0])
    model.train(was_training)
    return {key: total / n for key, total in totals.items()}


def train_step(
    forward: Callable[[tuple[torch.Tensor, ...]], dict[str, torch.Tensor]],
    batch: tuple[torch.Tensor, ...],
    groups: dict[str, dict],
    optimizers: dict[str, torch.optim.Optimizer],
    autocast: torch.autocast,
    config: TrainConfig,
    step: int,
) -> dict[str, torch.Tensor]:
    """One training step: one forward pass, then each loss entry in ``groups``
    backward into its own parameters and its optimiser's step. The loop of
    :func:`fit`, and what the benchmarks time against reference code."""
    with autocast:
        metrics = forward(batch)
    losses = [(metrics[key], groups[key], optimizers[key]) for key in groups]
    for loss, _, _ in losses:  # before any step, so a bad batch changes nothing
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()}")
    for i, (loss, group, optimizer) in enumerate(losses):
        optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:  # e.g. a discriminator not switched on yet
            # inputs=: the generator's loss must not train the discriminator
            loss.backward(inputs=group["params"], retain_graph=i < len(losses) - 1)
        distributed.average_gradients(group["params"])  # no-op in one process
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(group["params"], config.grad_clip)
        optimizer.param_groups[0]["lr"] = lr_at(step, config)
        optimizer.step()
    return metrics


def throughput(batch: tuple[torch.Tensor, ...], steps: int, seconds: float) -> dict:
    """Examples per second over all processes, in the unit of the batch's
    first tensor: images for image batches, tokens for token sequences."""
    first = batch[0]
    examples = steps * len(first) * distributed.world_size() / max(seconds, 1e-9)
    if first.is_floating_point() and first.ndim == 4:
        return {"images/s": examples}
    if not first.is_floating_point() and first.ndim >= 2:
        return {"tokens/s": examples * first[0].numel()}
    return {"examples/s": examples}


def _mean_over_ranks(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each metric as a float, averaged over the processes (one collective)."""
    values = torch.stack([v.detach().float() for v in metrics.values()])
    if distributed.is_distributed():
        values = distributed.all_reduce_sum(values) / distributed.world_size()
    return dict(zip(metrics, values.tolist()))


def _training_device(preference: str) -> torch.device:
    """``pick_device``; under torchrun with GPUs, this process's own GPU."""
    device = pick_device(preference)
    if distributed.is_distributed() and device.type == "cuda" and device.index is None:
        return distributed.local_device()
    return device


def bf16_native(device: torch.device) -> bool:
    """Whether ``fit`` trains in bf16 autocast on ``device``: on GPUs that
    compute in bf16 (Ampere and later), not on older ones like Colab's T4,
    which would only emulate it; those train in float32."""
    if device.type != "cuda":
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.4 counts no emulation anyway
        return torch.cuda.is_bf16_supported()


def _compile_requested(config: TrainConfig) -> bool:
    return config.compile or os.environ.get("T2I_COMPILE", "") not in ("", "0")


def fit(
    model: nn.Module,
    data: tuple[torch.Tensor, ...],
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    eval_data: tuple[torch.Tensor, ...] | None = None,
    desc: str = "train",
) -> History:
    """Train ``model`` in place for ``config.steps`` steps; return the history.

    The history maps ``"step"`` and every logged quantity to lists of floats
    (training values averaged over ``log_every`` steps, and over the processes
    under torchrun); evaluation results are stored as ``"eval_step"`` and
    ``"eval_<name>"``.
    """
    started = time.perf_counter()
    if not isinstance(data, (tuple, list)) or not data:
        raise TypeError(
            "fit() expects data as a tuple of tensors, e.g. (images, labels)"
        )
    n = len(data[0])
    if n < config.batch_size:
        raise ValueError(
            f"only {n} examples for batch_size={config.batch_size}; lower the batch size"
        )
    distributed.shard(torch.arange(config.batch_size))  # fails early if uneven
    main = distributed.is_main()
    device = _training_device(config.device)
    # channels-last convolutions: 20-35% faster per step on 2 CPU cores, and the
    # layout GPU tensor cores want; the weights are saved in the usual layout
    model.to(device, memory_format=torch.channels_last).train()
    groups = optimizer_groups(model)
    optimizers = {
        key: torch.optim.AdamW(
            [group],
            lr=config.lr,
            weight_decay=config.weight_decay,
            fused=device.type == "cuda",  # one kernel for all parameters
        )
        for key, group in groups.items()
    }
    history: History = {"step": []}
    step = 0

    checkpoint = Path(checkpoint) if checkpoint is not None else None
    # rank 0 reads; the others receive what it read (no shared disk needed)
    state = read_checkpoint(checkpoint) if checkpoint is not None and main else None
    state = distributed.broadcast_object(state)
    if state is not None:
        if (
            state.get("config") != asdict(config)
            or "optimizers" not in state
            or not isinstance(state.get("random_states"), list)
        ):
            if main:
                print(
                    f"{desc}: checkpoint {checkpoint.name} was made with another "
                    f"config or version of t2i; starting over"
                )
        else:
            model.load_state_dict(state["model"])
            for key, optimizer in optimizers.items():
                optimizer.load_state_dict(state["optimizers"][key])
            _restore_rank_random_state(state["random_states"], desc)
            history, step = state["history"], state["step"]
            if main:
                print(f"{desc}: resumed from step {step} of {config.steps}")
    elif distributed.rank() > 0:
        # the other processes draw other noise (a VAE's samples, a restart's picks)
        torch.manual_seed(config.seed * 100_003 + 7919 * distributed.rank())
    distributed.broadcast_module(model)  # every process starts from rank 0's weights
    del state

    def save() -> None:
        if checkpoint is None:
            return
        # rank 0's statistics (BatchNorm's running means) are the ones kept
        distributed.broadcast_tensors(model.buffers())
        states = distributed.gather_objects(random_states())  # every process's
        if main:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                    "random_states": states,
                    "history": history,
                    "step": step,
                    "config": asdict(config),
                },
                checkpoint,
            )

    def log_eval() -> None:
        if eval_data is None or history.get("eval_step", [None])[-1] == step:
            return
        distributed.broadcast_tensors(model.buffers())
        history.setdefault("eval_step", []).append(step)
        for key, value in evaluate(model, eval_data).items():
            history.setdefault(f"eval_{key}", []).append(value)

    forward = torch.compile(model.loss) if _compile_requested(config) else model.loss
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=bf16_native(device)
    )
    progress = Progress(config.steps, step, desc, start=started)
    running: dict[str, float] = {}
    window_start = time.perf_counter()
    try:
        while step < config.steps:
            indices = distributed.shard(batch_indices(step, n, config))
            batch = _to_device(tuple(t[indices] for t in data), device)
            try:
                metrics = train_step(
                    forward, batch, groups, optimizers, autocast, config, step
                )
            except FloatingPointError as error:
                raise FloatingPointError(
                    f"{desc}: {error} at step {step}. Lower the learning rate "
                    f"(lr={config.lr}) or keep grad_clip on; the last good checkpoint "
                    f"is {checkpoint if checkpoint else 'not saved (pass checkpoint=...)'}."
                ) from None
            step += 1

            for key, value in _mean_over_ranks(metrics).items():
                running[key] = running.get(key, 0.0) + value
            if step % config.log_every == 0 or step == config.steps:
                count = step % config.log_every or config.log_every
                history["step"].append(step)
                for key, total in running.items():
                    history.setdefault(key, []).append(total / count)
                now = time.perf_counter()
                progress.update(
                    count,
                    **{k: v / count for k, v in running.items()},
                    **throughput(batch, count, now - window_start),
                )
                running, window_start = {}, now
            if (
                config.eval_every
                and step % config.eval_every == 0
                and step < config.steps
            ):
                log_eval()
            if step % config.checkpoint_every == 0 and step < config.steps:
                save()

    except BaseException:  # close the bar so it does not linger below the error
        progress.close()
        raise
    log_eval()
    save()
    distributed.broadcast_tensors(model.buffers())  # every process ends identical
    model.eval()
    final = ", ".join(
        f"{k} {v[-1]:.4g}" for k, v in history.items() if not k.endswith("step") and v
    )
    where = device.type
    if distributed.world_size() > 1:
        where = f"{distributed.world_size()} processes ({device.type})"
    progress.close(f"{config.steps} steps on {where}", final)
    return history


def _restore_rank_random_state(states: list[dict], desc: str) -> None:
    """This process's random generators as the checkpoint saved them; with
    more processes than when it was saved, the new ones keep their seeds."""
    if distributed.rank() < len(states):
        restore_random_states(states[distributed.rank()])
    if len(states) != distributed.world_size() and distributed.is_main():
        print(
            f"{desc}: the checkpoint was written by {len(states)} process(es), this "
            f"run has {distributed.world_size()}; the batches are the same, the "
            f"random draws of the new processes are not"
        )
