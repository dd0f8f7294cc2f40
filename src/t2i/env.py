"""Where the book runs: cache and data folders, the compute device, seeds.

Environment variables (all optional):

``T2I_CACHE``      trained weights, resumable checkpoints (default ``~/.cache/t2i``)
``T2I_DATA``       downloaded data sets (default ``$T2I_CACHE/data``)
``T2I_BOOK_BUILD`` set to 1 by ``make book``: figures take their static
                   (no-kernel) form and progress bars print one plain line.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def _usable_folder(variable: str, default: Path | str) -> Path:
    """The folder ``$variable`` names (or ``default``), created if missing.

    An unusable path (a file, or a folder that cannot be created) raises an
    error that names the variable, not a bare ``NotADirectoryError``."""
    folder = Path(os.environ.get(variable, str(default))).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        where = (
            f"${variable}" if variable in os.environ else f"the default for {variable}"
        )
        problem = (
            "is a file, not a folder"
            if folder.is_file()
            else f"cannot be created ({error.strerror})"
        )
        raise NotADirectoryError(
            f"{folder} ({where}) {problem}. Set {variable} to a folder you can "
            f"write to."
        ) from None
    return folder


def cache_dir() -> Path:
    return _usable_folder("T2I_CACHE", "~/.cache/t2i")


def data_dir() -> Path:
    return _usable_folder("T2I_DATA", cache_dir() / "data")


def is_book_build() -> bool:
    """True while the website is being built (no reader, no live kernel)."""
    return os.environ.get("T2I_BOOK_BUILD", "") not in ("", "0")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, VS Code...)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


def pick_device(preference: str = "auto") -> torch.device:
    """``"auto"`` picks cuda, then Apple's mps, then the cpu."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run can be repeated exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
