import re

import pytest
import torch
from torch import nn

from t2i import configs, data
from t2i.models.ae import AutoEncoder
from t2i.train import TrainConfig, batch_indices, evaluate, fit


def test_batches_cover_each_epoch_once_and_depend_only_on_the_step():
    config = TrainConfig(batch_size=10, seed=3)
    epoch = torch.cat([batch_indices(step, 50, config) for step in range(5)])
    assert sorted(epoch.tolist()) == list(range(50))
    assert torch.equal(batch_indices(7, 50, config), batch_indices(7, 50, config))
    assert not torch.equal(batch_indices(0, 50, config), batch_indices(5, 50, config))


def test_checkpoint_interval_must_match_logging():
    with pytest.raises(ValueError, match="multiple of log_every"):
        TrainConfig(log_every=30, checkpoint_every=50)


def test_autoencoder_learns_and_does_not_collapse_to_a_constant():
    """An all-black output scores MSE ~0.11 on MNIST: training must go well below it."""
    x, y = data.load_mnist("train", source="sample", limit=1000)
    experiment = configs.autoencoder(
        "tiny", latent_dim=4, steps=300, log_every=50, checkpoint_every=300
    )
    model = AutoEncoder(experiment.model)
    black = torch.mean(x**2).item()
    history = fit(model, (x, y), experiment.train)
    assert history["loss"][-1] < 0.7 * black
    assert history["loss"][-1] < history["loss"][0]
    assert evaluate(model, (x[:200], y[:200]))["loss"] < 0.7 * black


class Scalar(nn.Module):
    """The smallest model that honours the contract; its loss turns NaN on call ``nan_at``."""

    def __init__(self, nan_at: int | None = None):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.calls, self.nan_at = 0, nan_at

    def loss(self, batch):
        self.calls += 1
        value = self.w.sum() * (float("nan") if self.calls == self.nan_at else 1.0)
        return {"loss": value}


def test_non_finite_loss_stops_with_the_step_and_a_fix():
    data_ = (torch.zeros(16, 1),)
    with pytest.raises(FloatingPointError) as error:
        fit(
            Scalar(nan_at=4),
            data_,
            TrainConfig(steps=10, batch_size=4, log_every=1, checkpoint_every=5),
        )
    assert "step 3" in str(error.value) and "learning rate" in str(error.value)


def test_too_few_examples_for_a_batch():
    with pytest.raises(ValueError, match="batch size"):
        fit(Scalar(), (torch.zeros(3, 1),), TrainConfig(batch_size=4))


def test_book_build_prints_a_short_plain_summary(monkeypatch, capsys):
    """No progress bar on the website: one line of steps and time, then the
    final metrics wrapped to fit the page."""
    monkeypatch.setenv("T2I_BOOK_BUILD", "1")
    fit(
        Scalar(),
        (torch.zeros(16, 1),),
        TrainConfig(steps=20, batch_size=4, log_every=5, checkpoint_every=10),
        desc="demo",
    )
    captured = capsys.readouterr()
    first, *details = captured.out.splitlines()
    assert re.fullmatch(r"demo: 20 steps on cpu in \d+\.\d s", first)
    assert details == ["  loss 1"] or details[0].startswith("  loss")
    assert all(len(line) <= 78 for line in captured.out.splitlines())
    assert captured.err == ""  # no tqdm bar


def test_history_has_one_point_per_log_interval():
    history = fit(
        Scalar(),
        (torch.zeros(16, 1),),
        TrainConfig(steps=20, batch_size=4, log_every=5, checkpoint_every=10),
        eval_data=(torch.zeros(8, 1),),
    )
    assert history["step"] == [5, 10, 15, 20]
    assert len(history["loss"]) == 4 and history["eval_step"] == [20]


class NoisyScalar(nn.Module):
    """Its loss draws noise from ``generator``, as a VAE draws from its device's."""

    def __init__(self, generator: torch.Generator, crash_at: int | None = None):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.generator, self.calls, self.crash_at = generator, 0, crash_at

    def loss(self, batch):
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt("killed")
        noise = torch.rand(1, generator=self.generator) + torch.rand(1)
        return {"loss": ((self.w - noise) ** 2).sum()}


def test_resume_restores_the_gpu_random_state_too(tmp_path, monkeypatch):
    """Where CUDA is absent a fake CUDA generator stands in: the same code path."""
    import t2i.train

    fake_cuda = torch.Generator()
    # the CUDA entry reports itself present; its own read/restore code runs as is
    monkeypatch.setattr(
        t2i.train,
        "RANDOM_GENERATORS",
        tuple(
            (name, (lambda: True) if name == "cuda" else present, read, restore)
            for name, present, read, restore in t2i.train.RANDOM_GENERATORS
        ),
    )
    monkeypatch.setattr(
        torch.cuda, "get_rng_state_all", lambda: [fake_cuda.get_state()]
    )
    monkeypatch.setattr(
        torch.cuda, "set_rng_state_all", lambda states: fake_cuda.set_state(states[0])
    )
    config = TrainConfig(
        steps=20, batch_size=4, log_every=5, checkpoint_every=10, device="cpu"
    )
    data_ = (torch.zeros(16, 1),)

    def fresh_start():  # a new process: both generators start somewhere else
        fake_cuda.manual_seed(123)
        torch.manual_seed(123)

    fresh_start()
    whole = NoisyScalar(fake_cuda)
    fit(whole, data_, config)

    fresh_start()
    with pytest.raises(KeyboardInterrupt):
        fit(
            NoisyScalar(fake_cuda, crash_at=14),
            data_,
            config,
            checkpoint=tmp_path / "r.pt",
        )
    fake_cuda.manual_seed(999)  # the restarted process has other states
    torch.manual_seed(999)
    resumed = NoisyScalar(fake_cuda)
    history = fit(resumed, data_, config, checkpoint=tmp_path / "r.pt")
    assert history["step"] == [5, 10, 15, 20]
    assert torch.equal(resumed.w, whole.w)


def test_bad_training_settings_name_the_field():
    for field, value in (
        ("steps", 0),
        ("batch_size", -1),
        ("lr", 0.0),
        ("grad_clip", 0),
    ):
        with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
            TrainConfig(**{field: value})


def test_bf16_autocast_only_where_the_gpu_computes_in_bf16(monkeypatch):
    """Colab's T4 has no bf16 units: it trains in float32, not in emulation."""
    from t2i.train import bf16_native

    asked = []

    def supported(including_emulation=True):
        asked.append(including_emulation)
        return including_emulation  # a T4: only with emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert not bf16_native(torch.device("cuda"))
    assert asked == [False]
    assert not bf16_native(torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **_: True)  # an A100
    assert bf16_native(torch.device("cuda"))
