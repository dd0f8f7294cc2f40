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
autocast on cuda, channels-last memory layout for convolutions, optional
``torch.compile``, gradient clipping, a cosine
learning-rate decay, a progress bar, and a stop with a clear message when the
loss stops being a finite number.
"""

from __future__ import annotations

import math
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

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
    compile: bool = False  # torch.compile the model (worth it on a GPU only)
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
        if not is_book_build():
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
        if summary is not None:
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
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(group["params"], config.grad_clip)
        optimizer.param_groups[0]["lr"] = lr_at(step, config)
        optimizer.step()
    return metrics


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
    (training values averaged over ``log_every`` steps); evaluation results are
    stored as ``"eval_step"`` and ``"eval_<name>"``.
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
    device = pick_device(config.device)
    # channels-last convolutions: 20-35% faster per step on 2 CPU cores, and the
    # layout GPU tensor cores want; the weights are saved in the usual layout
    model.to(device, memory_format=torch.channels_last).train()
    groups = optimizer_groups(model)
    optimizers = {
        key: torch.optim.AdamW([group], lr=config.lr, weight_decay=config.weight_decay)
        for key, group in groups.items()
    }
    history: History = {"step": []}
    step = 0

    checkpoint = Path(checkpoint) if checkpoint is not None else None
    state = read_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        if state.get("config") != asdict(config) or "optimizers" not in state:
            print(
                f"{desc}: checkpoint {checkpoint.name} was made with another config "
                f"or version of t2i; starting over"
            )
        else:
            model.load_state_dict(state["model"])
            for key, optimizer in optimizers.items():
                optimizer.load_state_dict(state["optimizers"][key])
            restore_random_states(state["random_states"])
            history, step = state["history"], state["step"]
            print(f"{desc}: resumed from step {step} of {config.steps}")

    def save() -> None:
        if checkpoint is not None:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                    "random_states": random_states(),
                    "history": history,
                    "step": step,
                    "config": asdict(config),
                },
                checkpoint,
            )

    def log_eval() -> None:
        if eval_data is None or history.get("eval_step", [None])[-1] == step:
            return
        history.setdefault("eval_step", []).append(step)
        for key, value in evaluate(model, eval_data).items():
            history.setdefault(f"eval_{key}", []).append(value)

    forward = torch.compile(model.loss) if config.compile else model.loss
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )
    progress = Progress(config.steps, step, desc, start=started)
    running: dict[str, float] = {}
    try:
        while step < config.steps:
            batch = _to_device(
                tuple(t[batch_indices(step, n, config)] for t in data), device
            )
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

            for key, value in metrics.items():
                running[key] = running.get(key, 0.0) + value.item()
            if step % config.log_every == 0 or step == config.steps:
                count = step % config.log_every or config.log_every
                history["step"].append(step)
                for key, total in running.items():
                    history.setdefault(key, []).append(total / count)
                progress.update(count, **{k: v / count for k, v in running.items()})
                running = {}
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
    model.eval()
    final = ", ".join(
        f"{k} {v[-1]:.4g}" for k, v in history.items() if not k.endswith("step") and v
    )
    progress.close(f"{config.steps} steps on {device.type}", final)
    return history
