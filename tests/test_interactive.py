import json
import re
import shutil
import subprocess
from importlib import resources

import numpy as np
import pytest
import torch

from t2i import interactive
from t2i.interactive import LatentPanel
from t2i.interactive.core import SCRIPT_FUNCTIONS


def coordinate_decoder(z):
    """An 'image' whose left half is the first coordinate and right half the second."""
    images = torch.zeros(len(z), 1, 4, 4)
    images[:, 0, :, :2] = z[:, 0, None, None]
    images[:, 0, :, 2:] = z[:, 1, None, None]
    return images


@pytest.fixture
def panel():
    codes = torch.rand(50, 2)
    return LatentPanel(
        "test", coordinate_decoder, codes, torch.arange(50) % 10, extent=(0, 1, 0, 1)
    )


def test_sprite_tile_i_j_is_the_decoding_of_grid_point_i_j(panel):
    steps = 5
    sprite = panel.sprite(steps)
    xs, ys = panel.grid_values(steps)
    assert sprite.shape == (steps * 4, steps * 4)
    for i in range(steps):  # x index: column of tiles
        for j in range(steps):  # y index: row of tiles, counted from the bottom
            tile = sprite[(steps - 1 - j) * 4 : (steps - j) * 4, i * 4 : (i + 1) * 4]
            assert tile[0, 0] == round(xs[i] * 255) and tile[0, 3] == round(ys[j] * 255)


def test_default_extent_covers_the_codes():
    codes = torch.randn(500, 2) * torch.tensor([5.0, 0.5])
    p = LatentPanel("t", coordinate_decoder, codes, torch.zeros(500, dtype=torch.long))
    x0, x1, y0, y1 = p.extent
    assert x0 < codes[:, 0].quantile(0.01) and x1 > codes[:, 0].quantile(0.99)
    assert (x1 - x0) > 5 * (y1 - y0)


def test_only_two_dimensional_codes():
    with pytest.raises(ValueError, match="2-D codes"):
        LatentPanel("t", coordinate_decoder, torch.rand(10, 3), torch.zeros(10))


def test_static_explorer_is_self_contained_html(panel):
    page = interactive.latent_explorer(panel, steps=7, live=False).data
    assert page.count('type="range"') == 2 and 'max="6"' in page
    spec = json.loads(re.search(r'class="lx-spec">(.*?)</script>', page, re.S).group(1))
    assert spec["steps"] == 7 and spec["panels"][0]["sprite"].startswith(
        "data:image/png;base64,"
    )
    assert all(0 <= u <= 1 and 0 <= v <= 1 for u, v, _ in spec["panels"][0]["points"])
    assert "http" not in page  # nothing is fetched


def test_several_panels_share_one_pair_of_sliders(panel):
    page = interactive.latent_explorer([panel, panel], steps=5, live=False).data
    assert page.count('type="range"') == 2
    spec = json.loads(re.search(r'class="lx-spec">(.*?)</script>', page, re.S).group(1))
    assert len(spec["panels"]) == 2


def test_live_explorer_runs_the_decoder_when_a_slider_moves(panel):
    control = interactive.latent_explorer(panel, live=True)
    sliders = control.children[0].children
    image = control.children[1].children[0].children[1].children[1]
    before = image.value
    sliders[0].value = sliders[0].max
    assert image.value != before
    after_x = image.value
    sliders[1].value = sliders[1].min
    assert image.value != after_x


def test_plotly_figure_in_the_book_does_not_inline_plotly_js():
    import plotly.graph_objects as go

    figure = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    page = interactive.plotly_figure(figure, live=False).data
    assert "Plotly.newPlot" in page and len(page) < 20_000
    assert "<script src" not in page and "cdn" not in page.lower()
    assert interactive.plotly_figure(figure, live=True) is figure


def test_loss_curves_draw_train_lines_and_test_markers():
    history = {"step": [1, 2], "loss": [1.0, 0.5], "eval_step": [2], "eval_loss": [0.6]}
    figure = interactive.loss_curves({"run": history}, live=True)
    modes = [trace.mode for trace in figure.data]
    assert modes == ["lines", "markers"]


def shade(value):
    return {
        "first": np.full((4, 4), int(value * 50), np.uint8),
        "second": np.full((4, 6, 3), 255 - int(value * 50), np.uint8),
    }


def test_static_stepper_precomputes_every_value():
    page = interactive.image_stepper([1, 2, 3], shade, label="level", live=False).data
    spec = json.loads(re.search(r'class="st-spec">(.*?)</script>', page, re.S).group(1))
    assert spec["labels"] == ["1", "2", "3"]
    assert len(spec["frames"]) == 3 and all(len(frame) == 2 for frame in spec["frames"])
    assert len({frame[0] for frame in spec["frames"]}) == 3  # three different pictures
    assert page.count('class="st-img"') == 2 and 'max="2"' in page


def test_live_stepper_renders_values_that_were_never_precomputed():
    seen = []

    def render(value):
        seen.append(value)
        return shade(value)

    control = interactive.image_stepper(
        [1, 2, 3], render, live=True, live_range=(0.5, 4.0)
    )
    slider = control.children[0]
    slider.value = 3.7
    assert seen[-1] == 3.7
    image = control.children[1].children[0].children[0]
    assert image.value  # a PNG was produced


def test_codes_image_places_codes_in_the_extent():
    codes = torch.tensor([[-0.9, -0.9]])
    picture = interactive.codes_image(codes, torch.tensor([3]), (-1, 1, -1, 1), size=50)
    assert picture.shape == (50, 50, 3)
    assert tuple(picture[47, 2]) != (255, 255, 255)  # near the bottom-left corner
    assert tuple(picture[2, 47]) == (255, 255, 255)  # the top-right corner is empty


def _codebook_args(k=6):
    torch.manual_seed(0)
    codebook = torch.randn(k, 4)
    usage = torch.tensor([5, 0, 3, 9, 0, 1][:k])
    amplitude = [1, 9, 2, 3, 8, 4]  # how much each code's decoded picture varies
    checkers = np.indices((8, 8)).sum(0) % 2

    def patches(c):
        return np.full((4, 20), 10 * c, np.uint8)

    def decoded(c):
        return (checkers * 20 * amplitude[c]).astype(np.uint8)

    return codebook, usage, patches, decoded


def test_static_codebook_explorer_carries_every_code():
    html = interactive.codebook_explorer(*_codebook_args(), live=False).data
    spec = json.loads(re.search(r'class="cb-spec">(.*?)</script>', html, re.S).group(1))
    assert len(spec["points"]) == 6 and spec["usage"] == [5, 0, 3, 9, 0, 1]
    # it opens on the used code whose picture varies most (unused 1 and 4 vary more)
    assert spec["start"] == 5 and spec["total"] == 18 and spec["tile"] == 8
    assert all(0 <= v <= 1 for p in spec["points"] for v in p)
    assert spec["decoded"].startswith("data:image/png;base64,") and "http" not in html


def test_live_codebook_explorer_decodes_the_chosen_code():
    seen = []
    codebook, usage, patches, decoded = _codebook_args()
    widget = interactive.codebook_explorer(
        codebook, usage, patches, lambda c: seen.append(c) or decoded(c), live=True
    )
    slider = widget.children[0]
    assert slider.value == 3  # the most used code first
    slider.value = 2
    assert seen[-1] == 2


def test_codebook_explorer_refuses_mismatched_usage():
    codebook, usage, patches, decoded = _codebook_args()
    with pytest.raises(ValueError, match="usage"):
        interactive.codebook_explorer(codebook, usage[:3], patches, decoded, live=False)


def test_codebook_legend_mentions_unused_codes_only_when_there_are_some():
    codebook, usage, patches, decoded = _codebook_args()
    with_unused = interactive.codebook_explorer(
        codebook, usage, patches, decoded, live=False
    ).data
    all_used = interactive.codebook_explorer(
        codebook, usage + 1, patches, decoded, live=False
    ).data
    assert "grey rings" in with_unused and "grey rings" not in all_used
    assert "principal components" in all_used


def test_every_script_is_valid_javascript_defining_its_function():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is missing: install nodejs to check the figures' scripts")
    scripts = sorted(resources.files("t2i.interactive").joinpath("js").iterdir())
    assert sorted(script.name for script in scripts) == sorted(SCRIPT_FUNCTIONS)
    for script in scripts:
        check = subprocess.run([node, "--check", str(script)], capture_output=True)
        assert check.returncode == 0, check.stderr.decode()
        functions = re.findall(r"^function (\w+)\(root\)", script.read_text(), re.M)
        assert functions == [SCRIPT_FUNCTIONS[script.name]], script.name


def static_figures(panel):
    import plotly.graph_objects as go

    return {
        "latent explorer": interactive.latent_explorer(panel, steps=3, live=False),
        "stepper": interactive.image_stepper([1, 2], shade, live=False),
        "codebook": interactive.codebook_explorer(*_codebook_args(), live=False),
        "plotly": interactive.plotly_figure(go.Figure(go.Bar(y=[1])), live=False),
    }


def test_static_figures_run_their_script_with_no_formatting_left(panel):
    for name, figure in static_figures(panel).items():
        page = figure.data
        assert "%(" not in page and "%%" not in page, name
        calls = re.findall(r'(\w+)\(document\.getElementById\("([\w-]+)"\)\);', page)
        assert len(calls) == 1 and calls[0][0] in SCRIPT_FUNCTIONS.values(), name
        assert f'id="{calls[0][1]}"' in page, name


def test_log_axes_get_spelled_out_ticks():
    """plotly labels minor log ticks with one digit; the book lists 1-2-5 ticks."""
    from t2i.interactive.plots import log_ticks

    assert log_ticks(0.0095, 0.09) == [0.01, 0.02, 0.05, 0.1]
    history = {"step": [1, 2], "loss": [0.5, 0.02]}
    html = interactive.loss_curves({"run": history}, live=False).data
    assert '"tickvals":[0.02,0.05,0.1,0.2,0.5]' in html.replace(" ", "")


def test_codes_outside_the_extent_are_not_drawn_over_the_frame():
    labels = torch.tensor([0, 1])
    inside = interactive.codes_image(
        torch.tensor([[0.0, 0.0], [9.0, 9.0]]), labels, (-1, 1, -1, 1)
    )
    alone = interactive.codes_image(
        torch.tensor([[0.0, 0.0]]), labels[:1], (-1, 1, -1, 1)
    )
    assert (inside == alone).all()
