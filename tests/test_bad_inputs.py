"""Bad input, tried as a new user would: each gets an error that names the fix.

``CASES`` is the table of bad inputs the tests cover; the setup page lists
the same rows (checked below), so readers can look an error up there.
"""

import re
import tempfile
from pathlib import Path

import pytest
import torch

from t2i import configs, data, shapes
from t2i.metrics import sample_diversity
from t2i.models.ae import AEConfig, AutoEncoder
from t2i.models.dalle import Dalle, DalleConfig
from t2i.models.dvae import DVAEConfig
from t2i.models.judge import AttributeJudge, JudgeConfig
from t2i.models import window
from t2i.models.pixelcnn import PixelCNNConfig
from t2i.models.seq2seq import Seq2Seq, Seq2SeqConfig
from t2i.models.taming import TamingConfig, TamingVQGAN, load_taming_vqgan
from t2i.models.vqgan_clip import SteerConfig, clamp_with_grad
from t2i.models.transformer import Transformer, TransformerConfig
from t2i.models.vae import VAEConfig
from t2i.models.vqgan import VQGAN, VQGANConfig
from t2i.models.vqvae import VQVAEConfig
from t2i.quantize import VQConfig
from t2i.sample import sample_logits
from t2i.text import CaptionTokenizer
from t2i.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def model():
    return AutoEncoder(AEConfig(latent_dim=2)).eval()


def cache_is_a_file(tmp_path, monkeypatch):
    from t2i.env import cache_dir

    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("T2I_CACHE", str(tmp_path / "not-a-folder"))
    cache_dir()


def batch_that_does_not_split_over_three_processes():
    from unittest import mock

    from t2i import distributed
    from t2i.train import fit

    with mock.patch.object(distributed, "world_size", return_value=3):
        fit(model(), (torch.zeros(16, 1, 28, 28),), TrainConfig(batch_size=8))


# (what the user did, what they ran, error type, what the message must say)
def taming_checkpoint_of_another_size():
    small = dict(image_size=16, channels=32, multipliers=(1, 2), residual_blocks=1)
    small |= dict(attention_at=(8,), z_channels=8, code_dim=4, num_codes=16)
    state = TamingVQGAN(TamingConfig(**small)).state_dict()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "last.ckpt"
        torch.save({"state_dict": state}, path)
        load_taming_vqgan(path, TamingConfig(**(small | {"num_codes": 32})))


CASES = [
    (
        "an unknown scale",
        lambda: configs.autoencoder("huge"),
        ValueError,
        "choose one of 'tiny'",
    ),
    (
        "a code size of 0",
        lambda: AEConfig(latent_dim=0),
        ValueError,
        r"AEConfig.latent_dim must be a whole number >= 1",
    ),
    (
        "a negative code size",
        lambda: VAEConfig(latent_dim=-3),
        ValueError,
        r"VAEConfig.latent_dim must be a whole number >= 1",
    ),
    (
        "a conv width of 0",
        lambda: AEConfig(channels=(32, 0)),
        ValueError,
        "for every entry",
    ),
    (
        "an unknown VAE body",
        lambda: VAEConfig(body="rnn"),
        ValueError,
        "use 'conv' or 'mlp'",
    ),
    (
        "an image size the encoder cannot halve",
        lambda: VQVAEConfig(image_size=30),
        ValueError,
        "must be divisible by 2",
    ),
    (
        "an EMA decay of 1",
        lambda: VQConfig(decay=1.0),
        ValueError,
        r"VQConfig.decay must lie in \(0, 1\)",
    ),
    (
        "a class dropout above 1",
        lambda: PixelCNNConfig(class_dropout=1.5),
        ValueError,
        r"class_dropout must lie in \[0, 1\)",
    ),
    (
        "an even PixelCNN kernel",
        lambda: PixelCNNConfig(kernel_size=4),
        ValueError,
        "must be odd",
    ),
    ("0 training steps", lambda: TrainConfig(steps=0), ValueError, "TrainConfig.steps"),
    (
        "an unknown data set",
        lambda: data.DataConfig(name="imagenet"),
        ValueError,
        "knows 'mnist'",
    ),
    (
        "an unknown MNIST source",
        lambda: data.DataConfig(source="web"),
        ValueError,
        "choose one of auto",
    ),
    (
        "images of the wrong shape",
        lambda: model()(torch.rand(8, 32, 32)),
        ValueError,
        r"x\[:, None\]",
    ),
    (
        "integer (0-255) images",
        lambda: model()(torch.randint(0, 256, (2, 1, 28, 28))),
        TypeError,
        r"x.float\(\) / 255",
    ),
    (
        "float images in 0-255",
        lambda: model()(torch.rand(2, 1, 28, 28) * 255),
        ValueError,
        "Divide images stored as 0-255 by 255",
    ),
    (
        "a negative temperature",
        lambda: sample_logits(torch.zeros(1, 4), temperature=-1),
        ValueError,
        "temperature must be >= 0",
    ),
    (
        "top-k of 0",
        lambda: sample_logits(torch.zeros(1, 4), top_k=0),
        ValueError,
        "top_k must be a positive integer",
    ),
    (
        "top-p of 0 or 2",
        lambda: sample_logits(torch.zeros(1, 4), top_p=2.0),
        ValueError,
        r"top_p must lie in \(0, 1\]",
    ),
    (
        "logits that rule out every code",
        lambda: sample_logits(torch.full((1, 4), float("-inf"))),
        ValueError,
        "no code a chance",
    ),
    (
        "an unknown shapes world split",
        lambda: data.load(data.DataConfig(name="shapes"), "validation"),
        ValueError,
        "choose one of 'train', 'test', 'held_out'",
    ),
    (
        "a caption with an unknown word",
        lambda: shapes.parse_caption("a small red striped hexagon at the top left"),
        ValueError,
        "unknown word 'hexagon'.*captions name shapes",
    ),
    (
        "a picture of the wrong size for the judge",
        lambda: AttributeJudge(JudgeConfig(image_size=32)).read(
            torch.rand(2, 3, 64, 64)
        ),
        ValueError,
        r"expected images of shape \(batch, 3, 32, 32\)",
    ),
    (
        "a VQGAN with a perceptual weight but no perceptual network",
        lambda: VQGAN(VQGANConfig(perceptual_weight=1.0)),
        ValueError,
        r"no perceptual network was passed.*perceptual_weight=0",
    ),
    (
        "a sliding window larger than the grid",
        lambda: window.window_start(0, size=6, window=8),
        ValueError,
        "a window of 8 does not fit a grid side of 6",
    ),
    (
        "an unknown reading of the logits",
        lambda: window.image_logits(
            Transformer(
                TransformerConfig(
                    vocab_size=8, block_size=8, n_layer=1, n_head=1, n_embd=4
                )
            ),
            torch.zeros(1, 2, dtype=torch.long),
            torch.zeros(1, 2, dtype=torch.long),
            reading="shifted",
        ),
        ValueError,
        "unknown reading 'shifted'",
    ),
    (
        "a caption longer than the text length",
        lambda: CaptionTokenizer(text_length=4).encode(["a small red solid circle"]),
        ValueError,
        r"is 5 tokens long, but text_length is 4.*CaptionTokenizer\(text_length=5\)",
    ),
    (
        "text tokens of the wrong length for DALL·E",
        lambda: Dalle(DalleConfig(text_length=8, n_embd=16)).generate(
            torch.zeros(1, 5, dtype=torch.long)
        ),
        ValueError,
        r"expected text tokens of shape \(batch, 8\)",
    ),
    (
        "a dVAE temperature schedule that rises",
        lambda: DVAEConfig(tau_start=0.5, tau_end=1.0),
        ValueError,
        "DVAEConfig needs 0 < tau_end <= tau_start",
    ),
    (
        "a negative super-conditioning scale",
        lambda: Seq2Seq(Seq2SeqConfig(n_embd=16)).generate(
            torch.zeros(1, 34, dtype=torch.long), scale=-1.0
        ),
        ValueError,
        "the super-conditioning scale must be >= 0, got -1.0",
    ),
    (
        "VQGAN-CLIP noise too loud for the cutouts",
        lambda: SteerConfig(noise=0.5),
        ValueError,
        r"SteerConfig.noise 0.5 is too loud: at most 0.15",
    ),
    (
        "a clamp with an empty range",
        lambda: clamp_with_grad(torch.zeros(2), 1.0, 1.0),
        ValueError,
        "clamp_with_grad needs low < high, got 1.0 and 1.0",
    ),
    (
        "a checkpoint that does not fit the taming model",
        taming_checkpoint_of_another_size,
        ValueError,
        r"does not fit TamingConfig.*pass the config of the checkpoint's model.yaml",
    ),
    (
        "one sample per caption for the diversity",
        lambda: sample_diversity(torch.rand(4, 1, 3, 8, 8)),
        ValueError,
        r"expected \(captions, samples >= 2, ...\)",
    ),
    (
        "a batch size that does not split over the torchrun processes",
        batch_that_does_not_split_over_three_processes,
        ValueError,
        r"make batch_size a multiple of 3 \(the batch size is global",
    ),
    (
        "T2I_CACHE pointing at a file",
        cache_is_a_file,
        NotADirectoryError,
        r"\$T2I_CACHE\) is a file",
    ),
]


@pytest.mark.parametrize(
    "what, action, error, message", CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_gets_a_clear_error(
    what, action, error, message, tmp_path, monkeypatch
):
    with pytest.raises(error, match=message):
        if action is cache_is_a_file:
            action(tmp_path, monkeypatch)
        else:
            action()


def test_a_tiny_temperature_is_not_an_error():
    """1e-45 used to reach torch.multinomial as NaNs; it is argmax now."""
    assert sample_logits(torch.tensor([[0.0, 3.0, 1.0]]), temperature=1e-45).item() == 1


def test_the_command_line_refuses_unknown_models_and_scales():
    from t2i.__main__ import main

    for argv in (["train", "gan"], ["train", "ae", "--scale", "huge"]):
        with pytest.raises(SystemExit):
            main(argv)


def test_the_setup_page_lists_every_bad_input_the_tests_cover():
    page = (ROOT / "book" / "setup.md").read_text()
    table = page.split("## Bad input and what it says")[1]
    rows = [
        re.sub(r"\s+", " ", r).replace("`", "")
        for r in re.findall(r"^\| ([^|]+) \|", table, re.M)
    ]
    for what, *_ in CASES:
        assert what in rows, f"the setup page's table has no row for {what!r}"


def test_the_steer_command_draws_a_caption_into_a_png(tmp_path, monkeypatch):
    """``python -m t2i steer`` end to end, with a small random VQGAN and a
    fixed random "CLIP" in place of the cached models."""
    from PIL import Image

    from conftest import steering_setup

    import t2i.__main__ as cli

    gan, encode_images, _ = steering_setup()
    seen = []

    def encode_texts(captions):
        seen.extend(captions)
        return torch.randn(len(captions), 12)

    monkeypatch.setattr(
        cli,
        "_book_pair",
        lambda scale: (gan, encode_images, encode_texts),
    )
    out = tmp_path / "drawn.png"
    cli.main(["steer", "a red circle", "--steps", "3", "--out", str(out)])
    assert seen == ["a red circle"]
    assert Image.open(out).size == (256, 256)  # 16 x 16, enlarged 16 times
    with pytest.raises(SystemExit):
        cli.main(["steer"])  # no caption
