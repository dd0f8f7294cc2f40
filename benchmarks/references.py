"""The reference implementations, imported when they are installed.

``make bench`` installs them into ``.bench/site`` (benchmarks/requirements.txt),
outside the book's environment: the book never imports them. Each loader
returns the module, or raises :class:`Missing` with the reason, which the
results file records in place of the figure.

Two things keep the packaged code importable offline, and neither changes
what is timed:

* taming's ``mingpt.py`` imports ``top_k_top_p_filtering`` from Hugging Face
  ``transformers`` at the top (only ``sample_with_past`` with ``top_k`` calls
  it). Recent ``transformers`` releases no longer have it, and the package is
  large, so a stand-in module that raises if it is ever called is put in its
  place.
* taming's LPIPS loads torchvision's ImageNet VGG16 and its own linear
  weights from the internet when it is built. The benchmark builds it with a
  randomly initialised VGG16 and no download, then copies in the very same
  weights our LPIPS holds, so both sides compute the same distance.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import sys
import types

PACKAGES = {
    "taming": "taming-transformers-rom1504",
    "lucidrains": "vector-quantize-pytorch",
    "openai": "DALL-E",
}


class Missing(RuntimeError):
    """A reference that cannot run here, and why."""


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(PACKAGES[name])
    except importlib.metadata.PackageNotFoundError:
        return None


def _import(module: str, name: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise Missing(
            f"{PACKAGES[name]} is not installed ({error}); `make bench` installs it"
        ) from error


def _transformers_stand_in() -> None:
    if "transformers" in sys.modules:
        return
    try:
        importlib.import_module("transformers")
        return
    except ImportError:
        pass

    def top_k_top_p_filtering(*args, **kwargs):
        raise NotImplementedError(
            "the benchmarks' stand-in for transformers.top_k_top_p_filtering"
        )

    stand_in = types.ModuleType("transformers")
    stand_in.top_k_top_p_filtering = top_k_top_p_filtering
    sys.modules["transformers"] = stand_in


def taming_quantizer():
    return _import("taming.modules.vqvae.quantize", "taming").VectorQuantizer2


def taming_autoencoder():
    """taming's Encoder and Decoder classes."""
    model = _import("taming.modules.diffusionmodules.model", "taming")
    return model.Encoder, model.Decoder


def taming_gpt():
    _transformers_stand_in()
    return _import("taming.modules.transformer.mingpt", "taming")


@contextlib.contextmanager
def _offline_lpips(lpips_module):
    """Build taming's LPIPS without downloading: random VGG16, no linear weights."""
    import torchvision

    models, load = lpips_module.models, lpips_module.LPIPS.load_from_pretrained
    lpips_module.models = types.SimpleNamespace(
        vgg16=lambda pretrained=False: torchvision.models.vgg16(weights=None)
    )
    lpips_module.LPIPS.load_from_pretrained = lambda self, name="vgg_lpips": None
    try:
        yield
    finally:
        lpips_module.models = models
        lpips_module.LPIPS.load_from_pretrained = load


def taming_loss(**kwargs):
    """taming's VQLPIPSWithDiscriminator, built offline (see the module's doc)."""
    lpips_module = _import("taming.modules.losses.lpips", "taming")
    losses = _import("taming.modules.losses.vqperceptual", "taming")
    with _offline_lpips(lpips_module), contextlib.redirect_stdout(None):
        return losses.VQLPIPSWithDiscriminator(**kwargs)


def lucidrains_quantizer():
    return _import("vector_quantize_pytorch", "lucidrains").VectorQuantize


def openai_dvae():
    """openai's dVAE Encoder and Decoder classes."""
    encoder = _import("dall_e.encoder", "openai")
    decoder = _import("dall_e.decoder", "openai")
    return encoder.Encoder, decoder.Decoder
