"""Captioned pictures in webdataset shards, in the layout img2dataset writes.

A shard is a tar file of samples, each a few files with one key:

    00000.tar
        000000000.jpg    the picture
        000000000.txt    its caption (UTF-8)
        000000001.jpg
        000000001.txt
        ...

This is how CC3M, CC12M and LAION are distributed once img2dataset has
downloaded them, and what the webdataset library reads. A set of shards is
named by a brace pattern, ``shards/{00000..00099}.tar``. Shards are read as
streams, one file after another, so a data set larger than memory or on a web
server (``https://...``) passes through without being unpacked to disk.
"""

from __future__ import annotations

import io
import itertools
import re
import tarfile
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def shard_names(pattern: str) -> list[str]:
    """Expand webdataset's brace ranges: ``a/{000..002}.tar`` -> three names.

    Each range keeps the zero padding of its first bound; a pattern may hold
    several ranges (``{00..01}-{0..1}.tar`` gives four names).
    """
    match = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if match is None:
        if "{" in pattern:
            raise ValueError(
                f"cannot read the shard pattern {pattern!r}: write a range as "
                "{first..last} with numbers, e.g. shards/{00000..00009}.tar"
            )
        return [pattern]
    first, last = match.group(1), match.group(2)
    if int(last) < int(first):
        raise ValueError(
            f"the range {{{first}..{last}}} in {pattern!r} counts down; "
            f"write it first..last, e.g. {{{last}..{first}}}"
        )
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [
        name
        for i in range(int(first), int(last) + 1)
        for name in shard_names(f"{head}{i:0{len(first)}d}{tail}")
    ]


def write_shards(
    samples: Iterable[tuple[torch.Tensor, str]],
    folder: str | Path,
    samples_per_shard: int = 10_000,
    quality: int = 95,
) -> list[Path]:
    """Write ``(picture (3, H, W) in [0, 1], caption)`` pairs as shards
    ``00000.tar, 00001.tar, ...`` in ``folder``; returns their paths."""
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    items, written = iter(samples), 0
    while True:
        path = folder / f"{len(paths):05d}.tar"
        with tarfile.open(path, "w") as archive:
            for picture, caption in itertools.islice(items, samples_per_shard):
                _add(archive, f"{written:09d}.jpg", _jpeg(picture, quality))
                _add(archive, f"{written:09d}.txt", caption.encode("utf-8"))
                written += 1
        if written == len(paths) * samples_per_shard:  # nothing was left for it
            path.unlink()
            return paths
        paths.append(path)
        if written % samples_per_shard:  # a short shard is the last one
            return paths


def _jpeg(picture: torch.Tensor, quality: int) -> bytes:
    if picture.ndim != 3 or picture.shape[0] != 3:
        raise ValueError(
            f"expected an RGB picture of shape (3, H, W), got {tuple(picture.shape)}"
        )
    pixels = (picture.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _open(name: str):
    if re.match(r"https?://", name):
        return urllib.request.urlopen(name, timeout=60)
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"no shard at {path}; check the pattern (shard names are expanded "
            f"from {{first..last}} ranges) or download the shards there first"
        )
    return path.open("rb")


def read_shards(
    pattern: str, image_size: int | None = None
) -> Iterator[tuple[torch.Tensor, str]]:
    """Stream ``(picture (3, s, s) in [0, 1], caption)`` from the shards, in
    order. With ``image_size`` each picture is centre-cropped to a square and
    resized to it. A sample that lacks its picture or its caption is skipped
    (img2dataset writes only successful downloads, but a copy may be cut)."""
    for name in shard_names(pattern):
        with _open(name) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            key, parts = None, {}
            for member in tar:
                if not member.isfile():
                    continue
                stem, suffix = _split(member.name)
                if stem != key:
                    yield from _sample(parts, image_size)
                    key, parts = stem, {}
                parts[suffix] = tar.extractfile(member).read()
            yield from _sample(parts, image_size)


def _split(name: str) -> tuple[str, str]:
    """``dir/000000001.jpg`` -> (``dir/000000001``, ``.jpg``): the key is
    everything before the first dot of the file name, as webdataset has it."""
    folder, _, file = name.rpartition("/")
    stem, dot, rest = file.partition(".")
    return f"{folder}/{stem}" if folder else stem, dot + rest.lower()


def _sample(parts: dict[str, bytes], image_size: int | None):
    picture = next((parts[s] for s in IMAGE_SUFFIXES if s in parts), None)
    if picture is None or ".txt" not in parts:
        return
    image = Image.open(io.BytesIO(picture)).convert("RGB")
    if image_size is not None:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize(
            (image_size, image_size), Image.BICUBIC
        )
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)
    yield pixels.permute(2, 0, 1).contiguous(), parts[".txt"].decode("utf-8").strip()


def load_shards(
    pattern: str, image_size: int, limit: int | None = None
) -> tuple[torch.Tensor, list[str]]:
    """The first ``limit`` samples (all without it) as one tensor of pictures
    ``(N, 3, s, s)`` and a list of captions: for data sets that fit in memory."""
    pictures, captions = [], []
    for picture, caption in read_shards(pattern, image_size):
        if limit is not None and len(captions) >= limit:
            break
        pictures.append(picture)
        captions.append(caption)
    if not pictures:
        raise ValueError(f"the shards {pattern!r} hold no picture with a caption")
    return torch.stack(pictures), captions
