"""Files that must survive a crash: atomic writes, checksummed weights, downloads.

Everything is written atomically (a unique temporary file in the same folder,
fsync, rename, then fsync of the folder), so a crash at any moment leaves
either the old file or the new one, never half a file. Weights are stored as
safetensors with a SHA-256 beside them; resumable training state is read
back with ``torch.load(weights_only=True)``. The cache that decides *when* to
train lives one level up, in :mod:`t2i.cache`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unique_temporary(path: Path) -> Path:
    """An empty file beside ``path`` with a name no other writer is using."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = _unique_temporary(path)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


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
            f"checkpoint {path.name} is unreadable ({type(error).__name__}); "
            f"starting from step 0"
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
    state, seen = {}, set()
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        # tied weights (a transformer's embedding and output head) share memory,
        # which safetensors refuses; each gets its own copy, and loading copies
        # both back into the one shared parameter
        if value.data_ptr() in seen:
            value = value.clone()
        seen.add(value.data_ptr())
        state[key] = value
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


def download(url: str, path: str | Path, sha256: str | None) -> Path:
    """Fetch ``url`` to ``path`` unless a copy with the right SHA-256 is there.

    Used for published weights and data when a machine is online. Offline, it
    raises ``ConnectionError`` with what to do instead. Each call downloads
    into its own temporary file, so two processes fetching the same file at
    once do not write into each other's copy.

    ``sha256=None`` is for files whose publishers give no checksum: the first
    download's SHA-256 is written beside the file (``<name>.sha256``) and
    printed, and every later call checks the file against that record, so a
    damaged or replaced copy is still caught.
    """
    path = Path(path)
    record = path.with_name(path.name + ".sha256")
    if sha256 is None and record.exists():
        sha256 = record.read_text().strip()
    if path.exists() and sha256 is not None:
        actual = sha256_of(path)
        if actual == sha256:
            return path
        if record.exists() and record.read_text().strip() == sha256:
            raise ValueError(
                f"{path} has SHA-256 {actual}, but its first download had {sha256}: "
                f"the file changed. Delete {path} and {record} to fetch it again."
            )
    tmp = _unique_temporary(path)
    try:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                with open(tmp, "wb") as f:
                    shutil.copyfileobj(response, f)
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as error:
            raise ConnectionError(
                f"could not download {url} ({error}). If this machine is offline, copy "
                f"the file to {path} by hand, or use the book's own trained model "
                f"instead."
            ) from error
        actual = sha256_of(tmp)
        if sha256 is not None and actual != sha256:
            raise ValueError(
                f"{url} has SHA-256 {actual}, expected {sha256}; the file was not kept"
            )
        os.replace(tmp, path)
        if sha256 is None:
            atomic_write_text(actual + "\n", record)
            print(
                f"{path.name}: no published checksum; recorded this copy's SHA-256 "
                f"{actual} in {record.name}, and later uses are checked against it"
            )
        _fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path
