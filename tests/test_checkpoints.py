import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import t2i.cache
from t2i import checkpoints, configs
from t2i.cache import get_or_train, run_dir
from t2i.checkpoints import atomic_torch_save, download
from t2i.models.ae import AutoEncoder


def small_experiment(**overrides):
    settings = dict(steps=40, batch_size=32, log_every=10, checkpoint_every=20)
    settings.update(overrides)
    return configs.autoencoder("tiny", latent_dim=2, **settings)


@pytest.fixture
def tiny_data():
    return (torch.rand(128, 1, 28, 28), torch.zeros(128, dtype=torch.long))


def test_second_call_loads_instead_of_training(tiny_data, monkeypatch, capsys):
    experiment = small_experiment()
    model, history = get_or_train("ae-test", experiment, AutoEncoder, tiny_data)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the weights were cached")

    monkeypatch.setattr(t2i.cache, "fit", no_training)
    again, history_again = get_or_train("ae-test", experiment, AutoEncoder, tiny_data)
    assert "loaded from the cache" in capsys.readouterr().out
    assert history_again == history
    for fresh in (model, again):  # trained or loaded: same device, same mode
        assert not fresh.training
        assert next(fresh.parameters()).device.type == "cpu"
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_any_config_change_gives_a_new_cache_entry(tiny_data):
    def folder(name="ae", **overrides):
        return run_dir(name, small_experiment(**overrides), tiny_data)

    assert folder() != folder(lr=1e-4)
    assert folder() != folder("other")
    assert folder() == folder()


def test_the_key_follows_the_data_actually_loaded_not_the_config(tiny_data):
    """source="auto" may resolve to full MNIST or to the sample: two models."""
    experiment = small_experiment()
    other = (tiny_data[0].flip(0), tiny_data[1])
    assert run_dir("ae", experiment, tiny_data) != run_dir("ae", experiment, other)
    assert run_dir("ae", experiment, tiny_data) == run_dir(
        "ae", experiment, (tiny_data[0].clone(), tiny_data[1].clone())
    )
    evaluated = run_dir("ae", experiment, tiny_data, eval_data=other)
    assert evaluated != run_dir("ae", experiment, tiny_data)


def test_a_model_trained_on_other_data_is_not_loaded(tiny_data, capsys):
    experiment = small_experiment()
    get_or_train("ae-test", experiment, AutoEncoder, tiny_data)
    capsys.readouterr()
    fallback = (
        torch.rand(128, 1, 28, 28),
        tiny_data[1],
    )  # what a failed download gives
    get_or_train("ae-test", experiment, AutoEncoder, fallback)
    assert "loaded from the cache" not in capsys.readouterr().out


def test_damaged_weights_are_detected_and_retrained(tiny_data, capsys):
    experiment = small_experiment()
    get_or_train("ae-test", experiment, AutoEncoder, tiny_data)
    weights = run_dir("ae-test", experiment, tiny_data) / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-10] ^= 0xFF  # one flipped byte inside a tensor: the header is still valid
    weights.write_bytes(bytes(blob))
    model, _ = get_or_train("ae-test", experiment, AutoEncoder, tiny_data)
    out = capsys.readouterr().out
    assert "unusable" in out and "training again" in out
    checkpoints.load_weights(AutoEncoder(experiment.model), weights)  # intact again


def test_truncated_weights_are_retrained(tiny_data, capsys):
    experiment = small_experiment()
    get_or_train("ae-test", experiment, AutoEncoder, tiny_data)
    weights = run_dir("ae-test", experiment, tiny_data) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    get_or_train("ae-test", experiment, AutoEncoder, tiny_data)
    assert "training again" in capsys.readouterr().out


def test_truncated_resume_checkpoint_restarts_from_zero(tiny_data, capsys):
    experiment = small_experiment()
    folder = run_dir("ae-test", experiment, tiny_data)
    folder.mkdir(parents=True)
    (folder / "resume.pt").write_bytes(b"PK\x03\x04 half a zip file")
    model, history = get_or_train("ae-test", experiment, AutoEncoder, tiny_data)
    assert "unreadable" in capsys.readouterr().out
    assert history["step"][-1] == 40 and not (folder / "resume.pt").exists()


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "state.pt"
    atomic_torch_save({"step": 1}, target)

    def broken_save(obj, path):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_torch_save({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == [
        "state.pt"
    ]  # no temporary left behind


def test_download_verifies_the_checksum(tmp_path):
    source = tmp_path / "weights.bin"
    source.write_bytes(b"pretend weights")
    good = hashlib.sha256(b"pretend weights").hexdigest()
    path = download(source.as_uri(), tmp_path / "copy.bin", good)
    assert path.read_bytes() == b"pretend weights"
    with pytest.raises(ValueError, match="SHA-256"):
        download(source.as_uri(), tmp_path / "bad.bin", "0" * 64)
    assert not (tmp_path / "bad.bin").exists()
    with pytest.raises(ConnectionError, match="offline"):
        download("http://127.0.0.1:9/weights.bin", tmp_path / "x.bin", good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.bin", "weights.bin"]


def test_concurrent_downloads_use_their_own_temporary_files(tmp_path, monkeypatch):
    """Two processes fetching one file must not write into each other's copy."""
    source = tmp_path / "weights.bin"
    source.write_bytes(b"pretend weights")
    good = hashlib.sha256(b"pretend weights").hexdigest()
    seen = []
    real_copy = checkpoints.shutil.copyfileobj

    def copy_and_note(response, f):
        seen.append(f.name)
        if len(seen) == 1:  # a second download starts while the first is writing
            download(source.as_uri(), tmp_path / "copy.bin", good)
        real_copy(response, f)

    monkeypatch.setattr(checkpoints.shutil, "copyfileobj", copy_and_note)
    download(source.as_uri(), tmp_path / "copy.bin", good)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert (tmp_path / "copy.bin").read_bytes() == b"pretend weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.bin", "weights.bin"]


KILLABLE = textwrap.dedent("""
    import torch
    torch.set_num_threads(1)
    from t2i import configs, data
    from t2i.cache import get_or_train
    from t2i.models.ae import AutoEncoder
    x, y = data.load_mnist("train", source="sample", limit=512)
    experiment = configs.autoencoder("tiny", latent_dim=2, steps=STEPS, batch_size=64,
                                     log_every=10, checkpoint_every=20)
    model, history = get_or_train("killme", experiment, AutoEncoder, (x, y))
    print("final loss", history["loss"][-1])
""")


def run_training(cache: Path, steps: int, **popen) -> subprocess.Popen:
    env = dict(os.environ, T2I_CACHE=str(cache), T2I_BOOK_BUILD="1")
    return subprocess.Popen(
        [sys.executable, "-c", KILLABLE.replace("STEPS", str(steps))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


@pytest.mark.slow
def test_sigkill_during_training_resumes_to_the_same_weights(tmp_path):
    steps = 600
    killed_cache, clean_cache = tmp_path / "killed", tmp_path / "clean"
    process = run_training(killed_cache, steps)
    # wait for the first checkpoint; the training ending before it is the failure
    while not list(killed_cache.glob("killme-*/resume.pt")):
        assert process.poll() is None, "training ended before a checkpoint was written"
        time.sleep(0.01)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    folder = next(killed_cache.glob("killme-*"))
    assert not (folder / "model.safetensors").exists()

    resumed = run_training(killed_cache, steps)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "resumed from step" in out
    step = int(out.split("resumed from step ")[1].split()[0])
    assert 0 < step < steps

    clean = run_training(clean_cache, steps)
    clean_out, _ = clean.communicate(timeout=300)
    assert clean.returncode == 0, clean_out
    a = load_file(str(folder / "model.safetensors"))
    b = load_file(str(next(clean_cache.glob("killme-*")) / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert out.split("final loss")[-1] == clean_out.split("final loss")[-1]


def test_fingerprints_ignore_memory_layout_but_not_values():
    """A model trained channels-last and the same weights loaded contiguous are
    one model: keys derived from its weights must agree."""
    from t2i.cache import weights_fingerprint

    model = AutoEncoder(small_experiment().model)
    before = weights_fingerprint(model)
    assert weights_fingerprint(model.to(memory_format=torch.channels_last)) == before
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-6
    assert weights_fingerprint(model) != before


def test_the_cache_remembers_how_long_training_took(tiny_data):
    from t2i.cache import SESSION

    experiment = small_experiment()
    get_or_train("ae-timed", experiment, AutoEncoder, tiny_data)
    trained = SESSION["trained"]["ae-timed"]
    get_or_train("ae-timed", experiment, AutoEncoder, tiny_data)
    assert trained > 0 and SESSION["loaded"]["ae-timed"] == round(trained, 1)


def test_tied_weights_are_saved_and_stay_tied_after_loading(tmp_path):
    from t2i.checkpoints import load_weights, save_weights
    from t2i.models.transformer import Transformer, TransformerConfig

    config = TransformerConfig(
        vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8
    )
    model = Transformer(config)
    save_weights(model, tmp_path / "gpt.safetensors")
    loaded = load_weights(Transformer(config), tmp_path / "gpt.safetensors")
    assert loaded.head.weight is loaded.token_embedding.weight
    assert torch.equal(loaded.head.weight, model.head.weight)
