"""Captioned pictures in webdataset shards (img2dataset's layout): written
by the test, read back as a stream."""

import io
import tarfile

import pytest
import torch

from t2i.shards import load_shards, read_shards, shard_names, write_shards


def smooth_pictures(n: int, size: int = 16) -> torch.Tensor:
    """Soft gradients in a colour each: JPEG keeps them to within a few levels."""
    ramp = torch.linspace(0.2, 0.8, size)
    base = ramp[None, :, None] * ramp[None, None, :]
    colours = torch.rand(n, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    return 0.5 * base + 0.5 * colours


def test_brace_ranges_expand_with_their_padding():
    assert shard_names("s/{000..002}.tar") == ["s/000.tar", "s/001.tar", "s/002.tar"]
    assert shard_names("{0..1}-{08..09}.tar") == [
        "0-08.tar",
        "0-09.tar",
        "1-08.tar",
        "1-09.tar",
    ]
    assert shard_names("one.tar") == ["one.tar"]
    with pytest.raises(ValueError, match="first..last"):
        shard_names("s/{a..b}.tar")
    with pytest.raises(ValueError, match="counts down"):
        shard_names("s/{09..00}.tar")


def test_shards_give_back_the_pictures_and_captions_written(tmp_path):
    pictures = smooth_pictures(7)
    captions = [f"a picture number {i}, with ünïcode" for i in range(7)]
    paths = write_shards(zip(pictures, captions), tmp_path, samples_per_shard=3)
    assert [p.name for p in paths] == ["00000.tar", "00001.tar", "00002.tar"]
    with tarfile.open(paths[1]) as tar:  # img2dataset's names: key.jpg, key.txt
        assert tar.getnames() == [
            "000000003.jpg",
            "000000003.txt",
            "000000004.jpg",
            "000000004.txt",
            "000000005.jpg",
            "000000005.txt",
        ]
    read = list(read_shards(str(tmp_path / "{00000..00002}.tar")))
    assert [caption for _, caption in read] == captions
    back = torch.stack([picture for picture, _ in read])
    assert back.shape == pictures.shape
    assert (back - pictures).abs().mean() < 0.02  # JPEG at quality 95


def test_pictures_are_cropped_to_the_centre_and_resized(tmp_path):
    wide = torch.zeros(3, 8, 16)
    wide[:, :, 4:12] = 1.0  # a white square in the middle of a black strip
    write_shards([(wide, "wide")], tmp_path)
    (picture, caption), *_ = read_shards(str(tmp_path / "00000.tar"), image_size=4)
    assert picture.shape == (3, 4, 4) and caption == "wide"
    assert picture.mean() > 0.9  # only the white centre is left


def test_a_sample_missing_its_caption_is_skipped(tmp_path):
    write_shards(zip(smooth_pictures(2), ["kept", "cut"]), tmp_path)
    shard = tmp_path / "00000.tar"
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w") as tar:  # drop the second caption
        for member, data in members:
            if member.name != "000000001.txt":
                tar.addfile(member, io.BytesIO(data))
    assert [c for _, c in read_shards(str(shard))] == ["kept"]


def test_loading_into_memory_and_the_errors_that_name_the_fix(tmp_path):
    write_shards(zip(smooth_pictures(5), list("abcde")), tmp_path, samples_per_shard=2)
    pictures, captions = load_shards(str(tmp_path / "{00000..00002}.tar"), 8, limit=4)
    assert pictures.shape == (4, 3, 8, 8) and captions == list("abcd")
    with pytest.raises(FileNotFoundError, match="check the pattern"):
        load_shards(str(tmp_path / "{00000..00009}.tar"), 8)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        write_shards([(torch.zeros(1, 4, 4), "grey")], tmp_path / "bad")


def test_the_command_line_trains_dalle_on_shards_and_draws_their_captions(
    tmp_path, capsys
):
    """Shapes-world scenes stand in for web pictures; their captions are
    tokenized by a vocabulary fitted to them, not shapes world's."""
    from PIL import Image

    from t2i import shapes
    from t2i.__main__ import SHARD_SAMPLES, main

    scenes = shapes.make_scenes(64, seed=5)
    write_shards(zip(scenes.images, scenes.captions), tmp_path / "web", 40)
    out = tmp_path / "drawn.png"
    pattern = str(tmp_path / "web" / "{00000..00001}.tar")
    main(["train", "dalle", "--shards", pattern, "--steps", "4", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "56 captioned pictures" in printed and "8 kept out" in printed
    assert "dvae-shards: 4 steps" in printed and "dalle-shards: 4 steps" in printed
    picture = Image.open(out)
    # rows of (real, drawn) pictures, 32 px at tiny, enlarged 4 times
    assert picture.size == (4 * (2 * 32 + 2), 4 * (SHARD_SAMPLES * 34 - 2))
    assert f"row 1: {scenes.captions[56]}" in printed  # not trained on
    with pytest.raises(SystemExit):
        main(["train", "vqgan", "--shards", pattern])
    with pytest.raises(ValueError, match="more than the 8 kept out"):
        main(["train", "dalle", "--shards", pattern, "--limit", "0", "--steps", "4"])
