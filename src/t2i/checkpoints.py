"""Train once, reuse everywhere: the weight cache behind every chapter.

``get_or_train(name, config, build, data)`` looks for finished weights under
``$T2I_CACHE/<name>-<hash of config>/``. If they are there and intact it
loads them; otherwise it trains, resuming from ``resume.pt`` if an earlier
run was killed. Everything is written atomically (a temporary file, then a
rename), so a crash at any moment leaves either the old file or the new one,
never half a file. Weights are stored as safetensors with a SHA-256 beside
them; resumable state is read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .env import cache_dir, seed_everything

# Bump when a change to the library makes old cached weights meaningless.
CACHE_VERSION = 2

# What get_or_train did in this Python session, for the chapters' run-info footer.
SESSION = {"trained": [], "loaded": []}


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    _atomic_write(Path(path), lambda tmp: torch.save(obj, tmp))


def atomic_write_text(text: str, path: str | Path) -> None:
    _atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def read_checkpoint(path: Path) -> dict | None:
    """Load a resumable checkpoint, or None if it is missing or unreadable."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated or corrupt file: start again, don't crash
        print(
            f"checkpoint {path.name} is unreadable ({type(error).__name__}); starting from step 0"
        )
        path.unlink()
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write safetensors weights and a ``.sha256`` file that vouches for them."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(path, lambda tmp: save_file(state, str(tmp)))
    atomic_write_text(sha256_of(path), path.with_suffix(".sha256"))


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights written by :func:`save_weights`; raise if they are damaged."""
    path = Path(path)
    expected = path.with_suffix(".sha256").read_text().strip()
    if sha256_of(path) != expected:
        raise ValueError(f"{path} does not match its SHA-256; the file is damaged")
    device = next(model.parameters()).device
    model.load_state_dict(load_file(str(path), device=str(device)))  # strict
    return model


def config_dict(config: Any) -> dict:
    return asdict(config) if is_dataclass(config) else dict(config)


def config_hash(name: str, config: Any) -> str:
    blob = json.dumps(
        {"name": name, "config": config_dict(config), "v": CACHE_VERSION},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_dir(name: str, config: Any) -> Path:
    return cache_dir() / f"{name}-{config_hash(name, config)}"


def get_or_train(
    name: str,
    config: Any,
    build: Callable[[Any], nn.Module],
    data: tuple[torch.Tensor, ...],
    *,
    eval_data: tuple[torch.Tensor, ...] | None = None,
) -> tuple[nn.Module, dict[str, list[float]]]:
    """Return ``(model, history)``, training only if no intact cached copy exists.

    ``config`` is a dataclass with a ``model`` field (passed to ``build``) and a
    ``train`` field (a :class:`t2i.train.TrainConfig`); all of it goes into the
    cache key, so changing any setting trains a new model.
    """
    from .train import fit

    folder = run_dir(name, config)
    weights, history_file = folder / "model.safetensors", folder / "history.json"
    seed_everything(config.train.seed)
    model = build(config.model)
    if weights.exists() and history_file.exists():
        try:
            load_weights(model, weights)
            print(f"{name}: loaded trained weights from the cache ({folder.name})")
            SESSION["loaded"].append(name)
            return model.eval(), json.loads(history_file.read_text())
        except Exception as error:
            print(f"{name}: cached weights unusable ({error}); training again")
            seed_everything(config.train.seed)
            model = build(config.model)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        json.dumps(config_dict(config), indent=2, default=str), folder / "config.json"
    )
    history = fit(
        model,
        data,
        config.train,
        checkpoint=folder / "resume.pt",
        eval_data=eval_data,
        desc=name,
    )
    save_weights(model, weights)
    atomic_write_text(json.dumps(history), history_file)
    (folder / "resume.pt").unlink(missing_ok=True)
    SESSION["trained"].append(name)
    # trained on any device, returned on the CPU like a cached model, so the
    # chapter's tensors and the model always sit on the same device
    return model.cpu().eval(), history


def download(url: str, path: str | Path, sha256: str) -> Path:
    """Fetch ``url`` to ``path`` unless a copy with the right SHA-256 is there.

    Used for published weights and data when a machine is online. Offline, it
    raises ``ConnectionError`` with what to do instead.
    """
    path = Path(path)
    if path.exists() and sha256_of(path) == sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise ConnectionError(
            f"could not download {url} ({error}). If this machine is offline, copy the file "
            f"to {path} by hand, or use the book's own trained model instead."
        ) from error
    actual = sha256_of(tmp)
    if actual != sha256:
        tmp.unlink()
        raise ValueError(
            f"{url} has SHA-256 {actual}, expected {sha256}; the file was not kept"
        )
    os.replace(tmp, path)
    return path
