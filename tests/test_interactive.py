import base64
import io
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
        "level mixer": interactive.level_mixer(*_level_args()[:2], live=False),
        "token reading": interactive.token_reading(4, _token_images(), live=False),
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


def _level_args(n=3, height=4, width=6):
    """Originals of one flat colour each, and a mix whose pixels spell out
    its arguments: red = 40 * (i + 1), green = 40 * (j + 1); calls are logged."""
    originals = np.zeros((n, height, width, 3), np.uint8)
    for k in range(n):
        originals[k] = (200 - 30 * k, 30 * k, 90)
    calls = []

    def mix(i, j):
        calls.append((i, j))
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0], image[..., 1], image[..., 2] = 40 * (i + 1), 40 * (j + 1), 7
        image[0, 0] = (255, 255, 255)  # a corner that shows a flipped tile
        return image

    return originals, mix, calls


def sprite_sheet(data_url):
    from PIL import Image

    raw = base64.b64decode(data_url.removeprefix("data:image/png;base64,"))
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def test_static_level_mixer_packs_every_pair_into_one_sprite_sheet():
    originals, mix, calls = _level_args()
    page = interactive.level_mixer(originals, mix, live=False).data
    found = re.search(r'class="lm-spec">(.*?)</script>', page, re.DOTALL)
    spec = json.loads(found.group(1))
    assert spec["n"] == 3 and spec["tile"] == [6, 4]  # [width, height]
    assert spec["levels"] == ["top", "bottom"] and spec["start"][0] != spec["start"][1]
    assert sorted(calls) == [(i, j) for i in range(3) for j in range(3)]
    sheet = sprite_sheet(spec["sheet"])
    assert sheet.shape == (4 * 4, 3 * 6, 3)  # n rows of mixes, then the originals
    for i in range(3):
        for j in range(3):
            assert (sheet[i * 4 : (i + 1) * 4, j * 6 : (j + 1) * 6] == mix(i, j)).all()
    assert (sheet[12:] == np.concatenate(list(originals), axis=1)).all()
    # one picture for the whole figure, and a thumbnail button per image and level
    assert page.count("data:image/png") == 1 and "http" not in page
    assert page.count('class="lm-pick"') == 6
    assert 'aria-label="bottom codes from image 3"' in page


def test_level_mixer_names_its_levels():
    originals, mix, _ = _level_args()
    page = interactive.level_mixer(
        originals, mix, levels=("coarse", "fine"), live=False
    ).data
    assert (
        "coarse codes from:" in page and 'aria-label="fine codes from image 1"' in page
    )
    assert interactive.levels.caption(("coarse", "fine"), 0, 2) == (
        "coarse codes of image 1 + fine codes of image 3"
    )
    assert "plain reconstruction" in interactive.levels.caption(("a", "b"), 1, 1)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o, m: (o.astype(np.float32) / 255, m), "uint8"),
        (lambda o, m: (o[..., 0], m), "np.repeat"),
        (lambda o, m: (o[..., :1], m), r"\(n, H, W, 3\)"),
        (lambda o, m: (o[:1], m), "at least two"),
        (lambda o, m: (np.concatenate([o, o, o]), m), r"originals\[:8\]"),
        (
            lambda o, m: (o, lambda i, j: m(i, j)[:, :3]),
            r"mix\(0, \d\) returned uint8 of shape \(4, 3, 3\)",
        ),
        (lambda o, m: (o, lambda i, j: m(i, j) / 255.0), "float64"),
        (lambda o, m: (o, lambda i, j: m(i, j).transpose(2, 0, 1)), "channels last"),
    ],
    ids=[
        "float",
        "grey",
        "one channel",
        "one image",
        "nine",
        "crop",
        "float mix",
        "channels first",
    ],
)
def test_level_mixer_refuses_bad_inputs_and_names_the_fix(change, message):
    originals, mix, _ = _level_args()
    for live in (False, True):
        with pytest.raises(ValueError, match=message):
            interactive.level_mixer(*change(originals, mix), live=live)


def test_level_mixer_refuses_a_wrong_number_of_level_names():
    originals, mix, _ = _level_args()
    with pytest.raises(ValueError, match="two code levels"):
        interactive.level_mixer(originals, mix, levels=("top",), live=False)


def test_live_level_mixer_decodes_the_chosen_pair():
    originals, mix, calls = _level_args()
    control = interactive.level_mixer(originals, mix, live=True)
    thumbnails, top, bottom, shown = control.children
    result, words = shown.children
    assert len(thumbnails.children) == 3 and calls == [(0, 1)]
    assert words.value == "top codes of image 1 + bottom codes of image 2"
    before = result.value
    top.value = 2
    assert calls[-1] == (2, 1) and result.value != before
    bottom.value = 2
    assert calls[-1] == (2, 2) and "plain reconstruction" in words.value


@pytest.fixture(scope="module")
def chromium_or_skip():
    """Chromium for the browser checks that need no built book; they are
    skipped (the book's browser tests fail instead) when it is missing."""
    pytest.importorskip("playwright.sync_api")
    from conftest import find_chromium

    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium: `make test` installs it (see .ci/ensure-chromium)")
    return path


def mixer_state(page, index):
    """Caption, pressed buttons and result pixels of the index-th level mixer."""
    return page.evaluate(
        """index => {
          const root = document.querySelectorAll('.t2i-levels')[index];
          const canvas = root.querySelector('.lm-result');
          const pixels = canvas.getContext('2d')
            .getImageData(0, 0, canvas.width, canvas.height).data;
          return {
            caption: root.querySelector('.lm-caption').textContent,
            pressed: Array.from(root.querySelectorAll('[aria-pressed="true"]'))
              .map(b => b.getAttribute('aria-label')),
            pixels: Array.from(pixels),
          };
        }""",
        index,
    )


def rgb(pixels, height, width):
    return np.array(pixels, np.uint8).reshape(height, width, 4)[..., :3]


def test_level_mixer_page_in_chromium(chromium_or_skip, tmp_path):
    """The figure's script in a real browser, with no book: two mixers on one
    page, driven by mouse and keyboard, each drawing exactly its mix."""
    from playwright.sync_api import sync_playwright

    originals, mix, _ = _level_args(n=4, height=8, width=8)
    first = interactive.level_mixer(originals, mix, live=False).data
    second = interactive.level_mixer(originals, mix, live=False).data
    page_file = tmp_path / "level_mixer.html"
    page_file.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>mixer</title>"
        f"</head><body>{first}<hr>{second}</body></html>"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_or_skip, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 800, "height": 700})
        errors, foreign = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "console", lambda m: errors.append(m.text) if m.type == "error" else None
        )
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(("file:", "data:"))
                else (foreign.append(route.request.url), route.abort())
            ),
        )
        page.goto(page_file.as_uri(), wait_until="load")
        page.wait_for_function(  # both sprite sheets decoded and drawn
            "Array.from(document.querySelectorAll('.lm-result')).every(c =>"
            " c.getContext('2d').getImageData(0, 0, 1, 1).data[3] > 0)"
        )
        start = mixer_state(page, 0)
        assert start["caption"] == "top codes of image 1 + bottom codes of image 2"
        assert start["pressed"] == [
            "top codes from image 1",
            "bottom codes from image 2",
        ]
        assert (rgb(start["pixels"], 8, 8) == mix(0, 1)).all()
        thumbnail = page.evaluate(
            "Array.from(document.querySelector('.lm-pick[data-index=\"2\"] canvas')"
            ".getContext('2d').getImageData(0, 0, 8, 8).data)"
        )
        assert (rgb(thumbnail, 8, 8) == originals[2]).all()

        mixer = page.locator(".t2i-levels").first
        mixer.get_by_role("button", name="top codes from image 3").click()
        state = mixer_state(page, 0)
        assert state["caption"] == "top codes of image 3 + bottom codes of image 2"
        assert (rgb(state["pixels"], 8, 8) == mix(2, 1)).all()
        assert mixer_state(page, 1) == start, "the other mixer on the page moved"

        mixer.get_by_role("button", name="bottom codes from image 4").click()
        state = mixer_state(page, 0)
        assert state["caption"] == "top codes of image 3 + bottom codes of image 4"
        assert state["pressed"] == [
            "top codes from image 3",
            "bottom codes from image 4",
        ]
        assert (rgb(state["pixels"], 8, 8) == mix(2, 3)).all()

        mixer.get_by_role("button", name="bottom codes from image 3").focus()
        page.keyboard.press("Enter")
        state = mixer_state(page, 0)
        assert "plain reconstruction" in state["caption"]
        assert (rgb(state["pixels"], 8, 8) == mix(2, 2)).all()
        page.keyboard.press("Shift+Tab")  # to "bottom codes from image 2"
        page.keyboard.press("Space")
        assert (rgb(mixer_state(page, 0)["pixels"], 8, 8) == mix(2, 1)).all()
        browser.close()
    assert errors == [] and foreign == []


def _token_images(m=2, height=6, width=5):
    """Flat pictures whose colour says which reading and which picture they are."""
    return {
        reading: np.stack(
            [
                np.full((height, width, 3), (100 * r + 10 * k, 50, 200), np.uint8)
                for k in range(m)
            ]
        )
        for r, reading in enumerate(("correct", "off_by_one"))
    }


def reading_parts(page):
    """Each reading's diagram and sentence in a static token_reading page."""
    return dict(re.findall(r'<div data-for="(\w+)"(.*?)</p></div>', page, re.DOTALL))


def test_static_token_reading_carries_both_readings_and_the_numbers_for_n():
    images = _token_images(m=3)
    page = interactive.token_reading(64, images, live=False).data
    page = page.replace("\xa0", " ")  # ranges are kept on one line
    pictures = re.findall(r'<img src="(data:image/png;base64,[^"]+)"', page)
    assert len(pictures) == 6 and "http" not in page
    for k, source in enumerate(pictures):
        reading = "correct" if k < 3 else "off_by_one"
        assert (sprite_sheet(source) == images[reading][k % 3]).all()
    parts = reading_parts(page)
    correct, off = parts["correct"], parts["off_by_one"]
    # long parts keep their first and last two positions
    assert re.findall(r'class="tr-used">(\d+)<', correct) == ["63", "64", "65", "126"]
    assert re.findall(r'class="tr-used">(\d+)<', off) == ["64", "65", "126", "127"]
    assert "127 of the 128 tokens" in correct and "positions 63 … 126" in correct
    assert "all 128 tokens" in off and "positions 64 … 127" in off
    assert "…</text>" in correct and "not fed" in correct
    assert "past the end" not in correct
    assert "past the end" in off and "not fed" not in off
    # with no script: the correct reading, no buttons that do nothing
    assert off.startswith(" hidden>") and not correct.startswith(" hidden")
    assert re.search(r'class="tr-toggle"[^>]*hidden>', page)
    assert "outputs 63 … 126" in page and "outputs 64 … 127" in page


def test_short_token_readings_draw_every_position():
    page = interactive.token_reading(3, _token_images(), live=False).data
    parts = reading_parts(page)
    assert re.findall(r'class="tr-used">(\d+)<', parts["correct"]) == ["2", "3", "4"]
    assert re.findall(r'class="tr-used">(\d+)<', parts["off_by_one"]) == ["3", "4", "5"]
    assert "…</text>" not in parts["correct"]  # no ellipsis in the diagram


def _change_reading(images, reading, change):
    return {**images, reading: change(images[reading])}


@pytest.mark.parametrize(
    "n, change, message",
    [
        (1, lambda i: i, "at least 2"),
        (64.0, lambda i: i, "at least 2"),
        (True, lambda i: i, "at least 2"),
        (64, lambda i: [i["correct"], i["off_by_one"]], "keys 'correct' and"),
        (64, lambda i: {"correct": i["correct"]}, "keys 'correct' and"),
        (
            64,
            lambda i: _change_reading(i, "correct", lambda x: x / 255.0),
            r"images\['correct'\] must be a uint8",
        ),
        (
            64,
            lambda i: _change_reading(i, "off_by_one", lambda x: x[..., 0]),
            r"x\[None\]",
        ),
        (
            64,
            lambda i: _change_reading(
                i, "off_by_one", lambda x: x.transpose(0, 3, 1, 2)
            ),
            "channels last",
        ),
        (
            64,
            lambda i: {k: np.concatenate([v] * 5) for k, v in i.items()},
            r"\[:8\]",
        ),
        (
            64,
            lambda i: {k: v[:0] for k, v in i.items()},
            "give 1 to 8",
        ),
        (
            64,
            lambda i: _change_reading(i, "off_by_one", lambda x: x[:1]),
            "same pictures",
        ),
    ],
    ids=[
        "one token",
        "float n",
        "bool n",
        "list",
        "one key",
        "float",
        "grey",
        "channels first",
        "ten",
        "none",
        "different counts",
    ],
)
def test_token_reading_refuses_bad_inputs_and_names_the_fix(n, change, message):
    for live in (False, True):
        with pytest.raises(ValueError, match=message):
            interactive.token_reading(n, change(_token_images()), live=live)


def test_live_token_reading_redraws_the_chosen_reading():
    control = interactive.token_reading(64, _token_images(), live=True)
    picker, view = control.children
    assert picker.value == "correct" and 'data-reading="correct"' in view.value
    assert reading_parts(view.value)["off_by_one"].startswith(" hidden>")
    picker.value = "off_by_one"
    assert 'data-reading="off_by_one"' in view.value
    assert reading_parts(view.value)["correct"].startswith(" hidden>")
    assert "positions 64\xa0…\xa0127" in view.value
    assert view.value.count("data:image/png") == 4  # both panels, always


def reading_state(page, index):
    """What the index-th token_reading figure shows: its reading, pressed
    button, visible diagram's highlighted outputs and sentence, and panels."""
    return page.evaluate(
        """index => {
          const root = document.querySelectorAll('.t2i-tokens')[index];
          const shown = Array.from(root.querySelectorAll('[data-for]'))
            .filter(d => getComputedStyle(d).visibility === 'visible');
          return {
            reading: root.getAttribute('data-reading'),
            pressed: Array.from(root.querySelectorAll('[aria-pressed="true"]'))
              .map(b => b.getAttribute('data-reading')),
            shown: shown.map(d => d.getAttribute('data-for')),
            used: Array.from(shown[0].querySelectorAll('.tr-used'))
              .map(t => t.textContent),
            sentence: shown[0].querySelector('p').textContent.replace(/\u00a0/g, ' '),
            panels: Object.fromEntries(Array.from(root.querySelectorAll('.tr-panel'))
              .map(p => [p.getAttribute('data-panel'), [
                getComputedStyle(p).opacity, getComputedStyle(p).borderTopColor]])),
          };
        }""",
        index,
    )


def test_token_reading_page_in_chromium(chromium_or_skip, tmp_path):
    """The figure's script in a real browser, with no book: two figures on
    one page, switched by mouse and keyboard, each on its own."""
    from playwright.sync_api import sync_playwright

    first = interactive.token_reading(64, _token_images(m=4), live=False).data
    second = interactive.token_reading(3, _token_images(m=1), live=False).data
    page_file = tmp_path / "token_reading.html"
    page_file.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>tokens</title>"
        f"</head><body>{first}<hr>{second}</body></html>"
    )
    blue, red = "rgb(31, 119, 180)", "rgb(214, 39, 40)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_or_skip, args=["--headless", "--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 760, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "console", lambda m: errors.append(m.text) if m.type == "error" else None
        )
        page.goto(page_file.as_uri(), wait_until="load")
        start = reading_state(page, 0)
        assert start["reading"] == "correct" and start["pressed"] == ["correct"]
        assert start["shown"] == ["correct"]
        assert start["used"] == ["63", "64", "65", "126"]
        assert "127 of the 128 tokens" in start["sentence"]
        assert start["panels"] == {
            "correct": ["1", blue],
            "off_by_one": ["0.35", "rgba(0, 0, 0, 0)"],
        }

        figure = page.locator(".t2i-tokens").first
        figure.get_by_role("button", name="off by one").click()
        state = reading_state(page, 0)
        assert state["reading"] == "off_by_one" and state["pressed"] == ["off_by_one"]
        assert state["shown"] == ["off_by_one"]
        assert state["used"] == ["64", "65", "126", "127"]
        assert "positions 64 … 127" in state["sentence"]
        assert state["panels"] == {
            "correct": ["0.35", "rgba(0, 0, 0, 0)"],
            "off_by_one": ["1", red],
        }
        assert reading_state(page, 1)["used"] == ["2", "3", "4"]  # the other stays

        page.keyboard.press("Shift+Tab")  # to the "correct" button
        page.keyboard.press("Enter")
        assert reading_state(page, 0) == start
        page.keyboard.press("Tab")
        page.keyboard.press("Space")
        assert reading_state(page, 0)["used"] == ["64", "65", "126", "127"]

        # with scripts off: the correct diagram, both panels plain, no buttons
        still = browser.new_page(java_script_enabled=False)
        still.goto(page_file.as_uri(), wait_until="load")
        state = reading_state(still, 0)
        assert state["reading"] is None and state["shown"] == ["correct"]
        assert state["used"] == ["63", "64", "65", "126"]
        assert [opacity for opacity, _ in state["panels"].values()] == ["1", "1"]
        assert not still.locator(".tr-pick").first.is_visible()
        browser.close()
    assert errors == []
