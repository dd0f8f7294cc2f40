"""Train once, reuse everywhere: the weight cache behind every chapter.

``get_or_train(name, experiment, build, data)`` looks for finished weights
under ``$T2I_CACHE/<name>-<key>/``. If they are there and intact it loads
them; otherwise it trains with :func:`t2i.train.fit`, which resumes from
``resume.pt`` if an earlier run was killed.

The key is a hash of everything that decides the trained weights:

* the experiment (model, training and data settings, the scale);
* a fingerprint of the tensors actually trained on (and evaluated on). The
  config says ``source="auto"``; the fingerprint says whether that became
  full MNIST or the 5,000-digit sample, so a model trained offline on the
  sample is never loaded as the full-data model;
* for a model trained on another model's output (a prior on VQ-VAE codes),
  the experiment's ``source`` names that model's weights by their SHA-256.

This module sits above :mod:`t2i.train` and :mod:`t2i.checkpoints`, which
know nothing of it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from . import distributed
from .checkpoints import atomic_write_text, load_weights, save_weights
from .env import cache_dir, seed_everything
from .train import fit

# Bump when a change to the library makes old cached weights meaningless.
CACHE_VERSION = 3

# What get_or_train did in this Python session, for the chapters' run-info footer:
# model name -> seconds its training took (None where no record was kept)
SESSION: dict[str, dict[str, float | None]] = {"trained": {}, "loaded": {}}

Tensors = tuple[torch.Tensor, ...]


def tensor_fingerprint(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 of named tensors: their names, dtypes, shapes and every byte."""
    digest = hashlib.sha256()
    for name, tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy())  # no copy
    return digest.hexdigest()


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model's weights and buffers: names a trained model exactly."""
    return tensor_fingerprint(sorted(model.state_dict().items()))


def data_fingerprint(data: Tensors | None) -> str | None:
    """SHA-256 of a data tuple, or None for no data."""
    if data is None:
        return None
    return tensor_fingerprint((str(i), t) for i, t in enumerate(data))


def config_dict(config: Any) -> dict:
    return asdict(config) if is_dataclass(config) else dict(config)


def _fingerprints(data: Tensors, eval_data: Tensors | None) -> dict:
    return {"data": data_fingerprint(data), "eval_data": data_fingerprint(eval_data)}


def _folder(name: str, config: Any, fingerprints: dict) -> Path:
    blob = json.dumps(
        {
            "name": name,
            "config": config_dict(config),
            **fingerprints,
            "v": CACHE_VERSION,
        },
        sort_keys=True,
        default=str,
    )
    return cache_dir() / f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def run_dir(
    name: str, config: Any, data: Tensors, eval_data: Tensors | None = None
) -> Path:
    """The folder that holds (or will hold) this run's weights and history."""
    return _folder(name, config, _fingerprints(data, eval_data))


def get_or_train(
    name: str,
    config: Any,
    build: Callable[[Any], nn.Module],
    data: Tensors,
    *,
    eval_data: Tensors | None = None,
) -> tuple[nn.Module, dict[str, list[float]]]:
    """Return ``(model, history)``, training only if no intact cached copy exists.

    ``config`` is a dataclass with a ``model`` field (passed to ``build``) and a
    ``train`` field (a :class:`t2i.train.TrainConfig`). It goes into the cache
    key with the data's fingerprint, so changing any setting or any training
    example trains a new model. The model comes back on the CPU in eval mode,
    whether it was trained or loaded.

    Under torchrun every process calls this with the same arguments: rank 0
    looks in the cache and the others follow its answer (a loaded model
    reaches them from rank 0, so only rank 0 needs the cache folder), all of
    them train together, and only rank 0 writes.
    """
    fingerprints = _fingerprints(data, eval_data)
    folder = _folder(name, config, fingerprints)
    weights, history_file = folder / "model.safetensors", folder / "history.json"
    timing = folder / "training.json"  # how long the training took, for the footer
    main = distributed.is_main()
    seed_everything(config.train.seed)
    model = build(config.model)
    cached = None  # (history, seconds) of a usable cached copy, read by rank 0
    if main and weights.exists() and history_file.exists():
        try:
            load_weights(model, weights)
            print(f"{name}: loaded from the cache ({folder.name})")
            seconds = (
                json.loads(timing.read_text())["seconds"] if timing.exists() else None
            )
            cached = json.loads(history_file.read_text()), seconds
        except Exception as error:
            print(f"{name}: cached weights unusable ({error}); training again")
            seed_everything(config.train.seed)
            model = build(config.model)
    cached = distributed.broadcast_object(cached)
    if cached is not None:
        state = distributed.broadcast_object(model.state_dict() if main else None)
        if not main:
            model.load_state_dict(state)
        SESSION["loaded"][name] = cached[1]
        return model.eval(), cached[0]
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            json.dumps(
                {"experiment": config_dict(config), "sha256": fingerprints},
                indent=2,
                default=str,
            ),
            folder / "config.json",
        )
    started = time.perf_counter()
    history = fit(
        model,
        data,
        config.train,
        checkpoint=folder / "resume.pt",
        eval_data=eval_data,
        desc=name,
    )
    seconds = time.perf_counter() - started  # of this run only, if it resumed
    if main:
        save_weights(model, weights)
        atomic_write_text(json.dumps(history), history_file)
        atomic_write_text(json.dumps({"seconds": round(seconds, 1)}), timing)
        (folder / "resume.pt").unlink(missing_ok=True)
    SESSION["trained"][name] = seconds
    # returned exactly like a cached model (on the CPU, in the usual memory
    # layout), so a chapter computes the same numbers whether it trained or
    # loaded, and a cache key derived from the model's outputs stays put
    return model.cpu().to(memory_format=torch.contiguous_format).eval(), history
