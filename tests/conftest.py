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


@pytest.fixture
def tiny_open_clip(monkeypatch):
    """A tiny open_clip architecture registered as "t2i-tiny" (random weights,
    32 x 32 pictures, open_clip's own tokenizer): published CLIP code paths
    tested offline in a second."""
    import open_clip

    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "t2i-tiny", TINY_OPEN_CLIP)
    return "t2i-tiny"


TINY_OPEN_CLIP = {
    "embed_dim": 8,
    "vision_cfg": {
        "image_size": 32,
        "layers": 1,
        "width": 16,
        "head_width": 8,
        "patch_size": 16,
    },
    "text_cfg": {
        "context_length": 77,
        "vocab_size": 49408,
        "width": 16,
        "heads": 2,
        "layers": 1,
    },
}


def steering_setup():
    """A small random VQGAN and a fixed random linear "CLIP" of 16 x 16 pictures."""
    from t2i.models.vqgan import VQGAN, DiscriminatorConfig, VQGANConfig
    from t2i.quantize import VQConfig

    torch.manual_seed(0)
    gan = VQGAN(
        VQGANConfig(
            image_size=16,
            channels=(8, 16),
            residual_blocks=0,
            vq=VQConfig(num_codes=8, code_dim=4),
            discriminator=DiscriminatorConfig(channels=4, layers=2),
            perceptual_weight=0.0,
            output_offset=0.5,
        )
    ).eval()
    for p in gan.parameters():
        p.requires_grad_(False)
    projection = torch.randn(3 * 16 * 16, 12)

    def encode_images(pictures):
        return pictures.flatten(1) @ projection

    target = encode_images(
        torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    )
    return gan, encode_images, target
