import re

import numpy as np
import pytest
import torch

from t2i import viz
from t2i.models.ae import AutoEncoder


def test_show_source_shows_the_code_that_runs_with_file_and_lines():
    shown = viz.show_source(AutoEncoder).data
    assert "```python\nclass AutoEncoder(nn.Module):" in shown
    assert "`t2i/models/ae.py`, lines" in shown
    first, last = map(int, re.search(r"lines (\d+)–(\d+)", shown).groups())
    body = shown.split("```python\n")[1].rsplit("\n```", 1)[0]
    assert last - first + 1 == body.count("\n") + 1


def test_show_source_line_range():
    shown = viz.show_source(AutoEncoder.loss, lines=(1, 2)).data
    body = shown.split("```python\n")[1].rsplit("\n```", 1)[0]
    assert body.count("\n") == 1 and body.lstrip().startswith("def loss")


def test_tile_lays_images_out_row_by_row():
    images = torch.zeros(3, 1, 2, 2)
    images[1] = 1.0
    grid = viz.tile(images, ncols=2, pad=1)
    assert grid.shape == (5, 5) and grid.dtype == np.uint8
    assert grid[0, 3] == 255 and grid[0, 0] == 0 and grid[3, 0] == 0


def test_road_map_highlights_one_model_and_rejects_unknown_ones():
    svg = viz.road_map("vqgan").data
    assert svg.count("<rect") == 8 and svg.count("#fde68a") == 1
    for name in (
        "AE",
        "VAE",
        "VQ-VAE",
        "VQ-VAE-2",
        "VQGAN",
        "DALL·E",
        "DALL·E mini",
        "VQGAN-CLIP",
    ):
        assert f">{name}<" in svg
    assert "1711.00937" in svg and "<script" not in svg
    with pytest.raises(ValueError, match="vqgan_clip"):
        viz.road_map("stable_diffusion")


def test_record_returns_the_value_outside_the_book():
    assert viz.record("some_metric", 0.25) == 0.25


def test_run_info_names_scale_device_and_versions():
    table = viz.run_info("tiny", started=0.0).data
    for word in ("scale", "tiny", "device", "torch", "wall time"):
        assert word in table


def test_code_patches_are_the_cells_quantised_to_that_code():
    images = torch.zeros(2, 1, 8, 8)
    images[1, 0, 4:6, 2:4] = 1.0  # cell (2, 1) of a 4 x 4 grid with 2-pixel cells
    indices = torch.zeros(2, 4, 4, dtype=torch.long)
    indices[1, 2, 1] = 5
    patches = viz.code_patches(images, indices, code=5, context=1)
    assert patches.shape == (1, 1, 6, 6)
    assert torch.equal(
        patches[0, 0, 2:4, 2:4], torch.ones(2, 2)
    )  # the cell sits in the middle
    assert patches[0].sum() == 4
    strip = viz.patch_strip(images, indices, code=5, count=3, zoom=2)
    assert strip.shape == (12, 2 * (3 * 7 - 1), 3)
    assert strip[:, 14:].min() == 255  # white where there is no second patch
    assert tuple(strip[4, 4]) == (214, 39, 40)  # the centre cell's outline, top left
    assert tuple(strip[6, 6]) == (255, 255, 255)  # inside it: the white stroke
    assert tuple(strip[0, 0]) == (0, 0, 0)  # context around it: black background
    assert viz.patch_strip(images, indices, code=9, count=3).min() == 255


def test_figure_to_array_gives_rgb_pixels():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1), dpi=50)
    ax.plot([0, 1], [0, 1])
    array = viz.figure_to_array(fig)
    assert array.shape == (50, 50, 3) and array.dtype == np.uint8


def test_describe_lists_every_setting_of_a_config():
    from dataclasses import fields

    from t2i.train import TrainConfig

    table = viz.describe(TrainConfig(steps=7)).data
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert "| `steps` | `7` |" in rows and len(rows) == len(fields(TrainConfig))


def test_run_info_leaves_optional_models_out_of_the_cold_estimate(monkeypatch):
    """A model a chapter only uses when cached is not training time a cold
    run pays, so the benchmarks page must not add it to the estimate."""
    from t2i.cache import SESSION

    glued = {}
    monkeypatch.setattr(viz, "record", lambda key, value: glued.setdefault(key, value))
    monkeypatch.setitem(SESSION, "loaded", {"vqgan": 70.0, "dalle": 60.0})
    monkeypatch.setitem(SESSION, "trained", {})
    table = viz.run_info("tiny", 0.0, optional=("dalle",)).data
    assert glued["run_cached_training_seconds"] == 70.0
    assert glued["run_models_loaded"] == 2
    assert "| used only if cached | dalle |" in table
    assert "used only if cached" not in viz.run_info("tiny", 0.0).data
