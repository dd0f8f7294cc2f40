import os
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build" / "html"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own weight cache and data folder, and runs as if
    in a live session (not the book build) unless it says otherwise."""
    monkeypatch.setenv("T2I_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("T2I_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("T2I_BOOK_BUILD", raising=False)
    torch.manual_seed(0)
    yield


def find_chromium() -> str | None:
    """A system Chromium (or $T2I_CHROMIUM), else the one Playwright installed."""
    for name in (
        os.environ.get("T2I_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
    ):
        if name and shutil.which(name):
            return shutil.which(name)
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            bundled = p.chromium.executable_path
        return bundled if os.path.exists(bundled) else None
    except Exception:
        return None


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.fail(
            "no Chromium for the browser tests: `make test` installs it (see "
            ".ci/ensure-chromium), or run `sudo apt-get install chromium`"
        )
    return path


@pytest.fixture(scope="session")
def built_book() -> Path:
    if not (BUILD / "chapters" / "01_autoencoder.html").exists():
        pytest.fail(
            "the book is not built: run `make book` first (make test does it for you)"
        )
    return BUILD
