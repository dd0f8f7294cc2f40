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


def test_stepper_notes_follow_the_value_static_and_live():
    def note(value):
        return f"measured <{value}>"

    page = interactive.image_stepper([1, 2], shade, live=False, note=note).data
    spec = json.loads(re.search(r'class="st-spec">(.*?)</script>', page, re.S).group(1))
    assert spec["notes"] == ["measured <1>", "measured <2>"]
    assert 'class="st-note"' in page
    control = interactive.image_stepper(
        [1, 2], shade, live=True, live_range=(0.0, 5.0), note=note
    )
    control.children[0].value = 4.5
    assert control.children[2].value == "measured &lt;4.5&gt;"  # escaped text


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


# the Gumbel-softmax temperature explorer (chapter 6)

PALETTE = torch.rand(64, 3, generator=torch.Generator().manual_seed(3))


def palette_decode(soft):
    """A stand-in decoder: each grid position's colour is the codes' mix of
    a fixed palette, each position 2 × 2 pixels."""
    rgb = torch.einsum("khw,kc->hwc", soft, PALETTE[: len(soft)])
    rgb = rgb.repeat_interleave(2, 0).repeat_interleave(2, 1)
    return (rgb.clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def _temperature_args(g=4, k=16, taus=(1 / 16, 0.25, 1.0, 4.0), position=(1, 2)):
    """An original, its hard-code picture and one frame per tau, from fixed
    logits and one fixed Gumbel draw."""
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(k, g, g, generator=generator)
    noise = -torch.log(-torch.log(torch.rand(k, g, g, generator=generator)))
    hard = torch.nn.functional.one_hot(logits.argmax(0), k).permute(2, 0, 1).float()
    frames = [
        interactive.temperature_frame(
            logits, tau, palette_decode, position, noise=noise
        )
        for tau in taus
    ]
    original = palette_decode(torch.softmax(logits, 0))
    return original, palette_decode(hard), position, k, frames


def temperature_spec(page):
    found = re.search(r'class="tx-spec">(.*?)</script>', page, re.DOTALL)
    return json.loads(found.group(1))


def test_static_temperature_explorer_carries_one_frame_per_tau():
    original, hard, position, k, frames = _temperature_args()
    page = interactive.temperature_explorer(
        original, hard, position, k, frames, start=1, live=False
    ).data
    spec = temperature_spec(page)
    assert [f["tau"] for f in spec["frames"]] == [
        "τ = 0.0625",
        "τ = 0.25",
        "τ = 1",
        "τ = 4",
    ]
    for shown, frame in zip(spec["frames"], frames):
        assert (sprite_sheet(shown["soft"]) == frame.soft_image).all()
        assert sprite_sheet(shown["entropy"]).shape == (4, 4, 3)  # one pixel a cell
        assert shown["bars"].startswith("<svg") and shown["bars"].count("<rect") == 9
        mean_bits = frame.entropy.mean() / np.log(2)
        assert f"mean entropy {mean_bits:.2f} bits" in shown["summary"]
    # colder is surer: the entropy and the summary's mean fall with tau
    means = [
        float(re.search(r"entropy ([\d.]+)", f["summary"])[1]) for f in spec["frames"]
    ]
    assert means == sorted(means) and means[0] < means[-1]
    assert page.count('type="range"') == 1 and 'max="3"' in page and 'value="1"' in page
    assert 'class="t2i-temperature"' in page and "http" not in page
    # the first view is drawn without the script too: the start frame
    assert spec["frames"][1]["soft"] in page.split('class="tx-spec"')[0]
    assert page.count('class="tx-mark"') == 4  # the position on every picture


def test_temperature_frame_is_the_relaxed_softmax_with_entropies_in_nats():
    k, g = 8, 2
    flat = torch.zeros(k, g, g)
    frame = interactive.temperature_frame(flat, 1.0, palette_decode, (0, 0), top_k=3)
    assert np.allclose(frame.entropy, np.log(k))  # uniform: ln K nats
    assert frame.top_codes.shape == (3,) and np.allclose(frame.top_probs, 1 / k)
    peaked = flat.clone()
    peaked[5, 1, 0] = 1.0
    cold = interactive.temperature_frame(peaked, 1 / 64, palette_decode, (1, 0))
    assert cold.top_codes[0] == 5 and cold.top_probs[0] > 0.999
    assert cold.entropy[1, 0] < 1e-3 and np.isclose(cold.entropy[0, 0], np.log(k))
    assert list(cold.top_probs) == sorted(cold.top_probs, reverse=True)
    noise = torch.zeros(k, g, g)
    noise[2, 1, 0] = 5.0  # the noise can outvote the logits
    noisy = interactive.temperature_frame(
        peaked, 1 / 64, palette_decode, (1, 0), noise=noise
    )
    assert noisy.top_codes[0] == 2


def _recorded_compute():
    """The explorer's arguments, its frames by tau, and a ``compute`` that
    records which taus it was asked for."""
    original, hard, position, k, frames = _temperature_args()
    by_tau = {frame.tau: frame for frame in frames}
    asked = []

    def compute(tau):
        asked.append(tau)
        return by_tau[tau]

    return original, hard, position, k, by_tau, asked, compute


def test_static_temperature_explorer_computes_every_tau_once():
    original, hard, position, k, by_tau, asked, compute = _recorded_compute()

    page = interactive.temperature_explorer(
        original, hard, position, k, compute=compute, taus=list(by_tau), live=False
    ).data
    assert (
        sorted(asked) == sorted(by_tau) and len(temperature_spec(page)["frames"]) == 4
    )


def test_temperature_explorer_stays_light_with_twenty_frames():
    taus = np.geomspace(1 / 16, 4, 20).tolist()
    original, hard, position, k, frames = _temperature_args(g=8, k=64, taus=taus)
    page = interactive.temperature_explorer(
        original, hard, position, k, frames, live=False
    ).data
    assert len(temperature_spec(page)["frames"]) == 20
    assert len(page.encode()) < 250_000


def _change_frame(frames, index, **changes):
    from dataclasses import replace

    frames = list(frames)
    frames[index] = replace(frames[index], **changes)
    return frames


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda a: {**a, "original": a["original"] / 255}, ValueError, "uint8"),
        (lambda a: {**a, "hard_image": a["hard_image"][:4]}, ValueError, "same size"),
        (
            lambda a: {**a, "original": a["original"][..., 0]},
            ValueError,
            r"\(H, W, 3\)",
        ),
        (lambda a: {**a, "frames": a["frames"][::-1]}, ValueError, "sorted"),
        (lambda a: {**a, "frames": []}, ValueError, "at least one frame"),
        (lambda a: {**a, "frames": None}, ValueError, "compute"),
        (
            lambda a: {**a, "compute": lambda t: a["frames"][0], "taus": [1.0]},
            ValueError,
            "not both",
        ),
        (lambda a: {**a, "position": (4, 0)}, ValueError, "outside the 4 × 4 grid"),
        (lambda a: {**a, "position": 3}, ValueError, r"\(row, column\)"),
        (lambda a: {**a, "start": 4}, ValueError, "one of the 4 temperatures"),
        (lambda a: {**a, "num_codes": 1}, ValueError, "at least 2"),
        (
            lambda a: {
                **a,
                "frames": _change_frame(
                    a["frames"], 3, entropy=a["frames"][3].entropy / np.log(2)
                ),
            },
            ValueError,
            "nats",
        ),
        (
            lambda a: {
                **a,
                "frames": _change_frame(a["frames"], 2, entropy=np.zeros((3, 3))),
            },
            ValueError,
            "grid is 4 × 4",
        ),
        (
            lambda a: {
                **a,
                "frames": _change_frame(a["frames"], 1, top_codes=np.arange(8) + 9),
            },
            ValueError,
            "code indices 0 to 15",
        ),
        (
            lambda a: {
                **a,
                "frames": _change_frame(
                    a["frames"], 1, soft_image=a["frames"][1].soft_image[1:]
                ),
            },
            ValueError,
            r"frames\[1\]\.soft_image",
        ),
        (lambda a: {**a, "frames": [1, 2]}, TypeError, "not a TemperatureFrame"),
        (
            lambda a: {
                **a,
                "frames": None,
                "compute": lambda t: a["frames"][0],
                "taus": [0.25, 4.0],
            },
            ValueError,
            "must compute the tau it is given",
        ),
    ],
    ids=[
        "float picture",
        "hard size",
        "grey",
        "unsorted",
        "no frames",
        "nothing",
        "both",
        "position outside",
        "position int",
        "start",
        "one code",
        "bits",
        "grid changes",
        "code out of range",
        "soft size",
        "not frames",
        "wrong tau",
    ],
)
def test_temperature_explorer_refuses_bad_inputs_and_says_why(change, error, message):
    original, hard, position, k, frames = _temperature_args()
    arguments = {
        "original": original,
        "hard_image": hard,
        "position": position,
        "num_codes": k,
        "frames": frames,
    }
    for live in (False, True):
        with pytest.raises(error, match=message):
            interactive.temperature_explorer(**change(arguments), live=live)


def test_live_temperature_explorer_computes_the_chosen_tau():
    original, hard, position, k, by_tau, asked, compute = _recorded_compute()

    control = interactive.temperature_explorer(
        original, hard, position, k, compute=compute, taus=list(by_tau), live=True
    )
    slider, view = control.children
    assert asked == [0.0625]  # only what is shown
    before = view.value
    assert 'class="t2i-temperature"' in before and "τ = 0.0625" in before
    slider.value = 3
    assert asked == [0.0625, 4.0] and view.value != before and "τ = 4" in view.value
    slider.value = 0
    assert asked == [0.0625, 4.0] and view.value == before  # computed once


# the attention-mask viewer (chapter 6)


def _hand_made_masks(text=3, g=3):
    """Three layers over 3 text and 3 × 3 image tokens, all causal, every image
    token reading all the text: row (same grid row), column (same grid
    column), and full (every earlier token)."""
    n = text + g * g
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    cell = torch.arange(g * g)
    same_row = cell[:, None] // g == cell[None] // g
    same_column = cell[:, None] % g == cell[None] % g
    masks = []
    for image in (same_row, same_column, torch.ones(g * g, g * g, dtype=torch.bool)):
        mask = causal.clone()
        mask[text:, text:] &= image
        masks.append(mask)
    return torch.stack(masks), ["row", "column", "full"]


def mask_spec(page):
    found = re.search(r'class="mk-spec">(.*?)</script>', page, re.DOTALL)
    return json.loads(found.group(1))


def unhex(digits, length):
    return np.array([int(b) for b in bin(int(digits, 16))[2:].zfill(4 * len(digits))])[
        :length
    ].astype(bool)


def test_static_mask_viewer_carries_one_picture_and_every_row_per_layer():
    masks, kinds = _hand_made_masks()
    page = interactive.mask_viewer(masks, kinds, 3, 3, start=1, live=False).data
    spec = mask_spec(page)
    assert spec["titles"] == [
        "layer 1 of 3: row attention",
        "layer 2 of 3: column attention",
        "layer 3 of 3: full attention",
    ]
    assert len(spec["masks"]) == 3 and len(spec["rows"]) == 3
    blue = np.array([0x2F, 0x6D, 0xB5])
    for layer, source in enumerate(spec["masks"]):
        picture = sprite_sheet(source)
        scale = spec["scale"]
        assert picture.shape == (12 * scale, 12 * scale, 3)  # whole pixels a token
        assert (
            (picture[::scale, ::scale] == blue).all(-1) == masks[layer].numpy()
        ).all()
        # every query's row, exactly
        for query, digits in enumerate(spec["rows"][layer]):
            assert (unhex(digits, 12) == masks[layer, query].numpy()).all()
    assert page.count('class="mk-pick"') == 3 and page.count('type="range"') == 1
    assert 'class="t2i-masks"' in page and "http" not in page
    assert 'data-layer="1" aria-pressed="true"' in page


def test_mask_viewer_rows_give_the_image_cells_each_query_may_read():
    masks, kinds = _hand_made_masks()
    spec = mask_spec(interactive.mask_viewer(masks, kinds, 3, 3, live=False).data)
    readable = {
        kind: [
            set(np.flatnonzero(unhex(digits, 12)[3:]).tolist())
            for digits in spec["rows"][layer][3:]
        ]
        for layer, kind in enumerate(kinds)
    }
    # image token 5 is row 1, column 2 of the 3 × 3 grid
    assert readable["row"][5] == {3, 4, 5}
    assert readable["column"][5] == {2, 5}
    assert readable["full"][5] == {0, 1, 2, 3, 4, 5}
    assert readable["row"][0] == readable["column"][0] == {0}
    assert spec["rows"][0][0] == "800"  # text token 0 reads only itself


def test_mask_viewer_draws_the_starting_query_without_the_script():
    masks, kinds = _hand_made_masks()
    page = interactive.mask_viewer(masks, kinds, 3, 3, query=11, live=False).data
    cells = re.findall(r'class="mk-cell" data-cell="(\d)"[^>]*fill="(#\w+)"', page)
    colours = [fill for _, fill in cells]
    assert colours[8] == "#ff7f0e"  # the query (row 2, column 2)
    assert [k for k, c in enumerate(colours) if c == "#2f6db5"] == [6, 7]
    assert "image token 8 may read 3 of the 9 image tokens and all 3 text" in page
    assert "position 11: image token 8 (row 2, column 2)" in page


def test_mask_viewer_says_what_a_query_reads():
    from t2i.interactive.masks import describe_query, reads

    masks, _ = _hand_made_masks()
    assert reads(masks[0, 1].numpy(), 1, 3, 3) == (
        "text token 1 may read no image token and 2 of the 3 text tokens"
    )
    assert reads(masks[2, 11].numpy(), 11, 3, 3) == (
        "image token 8 may read all 9 image tokens and all 3 text tokens"
    )
    assert describe_query(2, 3, 3) == "position 2: text token 2"


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda a: {**a, "text_length": 4}, ValueError, r"4 \+ 3 \*\* 2 = 13"),
        (lambda a: {**a, "kinds": ["row"]}, ValueError, "3 masks but 1 kinds"),
        (lambda a: {**a, "kinds": "row"}, ValueError, "names each layer"),
        (lambda a: {**a, "masks": a["masks"].float()}, ValueError, "mask == 0"),
        (lambda a: {**a, "masks": a["masks"][0]}, ValueError, r"mask\[None\]"),
        (lambda a: {**a, "masks": a["masks"][:, :5]}, ValueError, r"\(n_layer, L, L\)"),
        (lambda a: {**a, "masks": a["masks"].tolist()}, TypeError, "torch.stack"),
        (lambda a: {**a, "start": 3}, ValueError, "layer from 0 to 2"),
        (lambda a: {**a, "query": 12}, ValueError, "position from 0 to 11"),
        (lambda a: {**a, "grid_size": 3.0}, TypeError, "integer"),
    ],
    ids=[
        "length",
        "kinds",
        "kinds str",
        "float",
        "one layer",
        "not square",
        "list",
        "start",
        "query",
        "float grid",
    ],
)
def test_mask_viewer_refuses_bad_inputs_and_says_why(change, error, message):
    masks, kinds = _hand_made_masks()
    arguments = {"masks": masks, "kinds": kinds, "text_length": 3, "grid_size": 3}
    for live in (False, True):
        with pytest.raises(error, match=message):
            interactive.mask_viewer(**change(arguments), live=live)


def test_live_mask_viewer_redraws_the_chosen_layer_and_image_token():
    masks, kinds = _hand_made_masks()
    control = interactive.mask_viewer(masks.numpy(), kinds, 3, 3, live=True)
    layer, token, view = control.children
    assert layer.value == 0 and token.value == 4  # the middle of the grid
    assert "layer 1 of 3: row attention" in view.value
    assert "image token 4 may read 2 of the 9 image tokens" in view.value
    token.value = 5
    assert "image token 5 may read 3 of the 9 image tokens" in view.value
    layer.value = 1
    assert "layer 2 of 3: column attention" in view.value
    assert "image token 5 may read 2 of the 9 image tokens" in view.value
    assert 'class="t2i-masks"' in view.value and "slider" in view.value


def test_new_figures_run_their_script_with_no_formatting_left():
    masks, kinds = _hand_made_masks()
    figures = {
        "temperature": interactive.temperature_explorer(
            *_temperature_args(), live=False
        ),
        "masks": interactive.mask_viewer(masks, kinds, 3, 3, live=False),
    }
    for name, figure in figures.items():
        page = figure.data
        assert "%(" not in page and "{" not in page.split("<style>")[0], name
        calls = re.findall(r'(\w+)\(document\.getElementById\("([\w-]+)"\)\);', page)
        assert len(calls) == 1 and calls[0][0] in SCRIPT_FUNCTIONS.values(), name
        assert f'id="{calls[0][1]}"' in page, name


def new_figures_state(page):
    """What the first temperature explorer and mask viewer of a page show."""
    return page.evaluate(
        """() => {
          const t = document.querySelector('.t2i-temperature');
          const m = document.querySelector('.t2i-masks');
          return {
            soft: t.querySelector('.tx-soft').src,
            entropy: t.querySelector('.tx-entropy').src,
            summary: t.querySelector('.tx-summary').textContent,
            bars: t.querySelector('.tx-bars').innerHTML,
            taus: Array.from(t.querySelectorAll('.tx-tau')).map(s => s.textContent),
            title: m.querySelector('.mk-title').textContent,
            mask: m.querySelector('.mk-png').getAttribute('href'),
            pressed: Array.from(m.querySelectorAll('.mk-pick[aria-pressed="true"]'))
              .map(b => b.textContent),
            query: m.querySelector('.mk-query-text').textContent,
            reads: m.querySelector('.mk-reads').textContent,
            cells: Array.from(m.querySelectorAll('.mk-cell'))
              .map(c => c.getAttribute('fill')),
          };
        }"""
    )


def test_temperature_and_mask_pages_in_chromium(chromium_or_skip, tmp_path):
    """Both figures' scripts in a real browser, with no book: the slider
    swaps the frames, the layer buttons the masks, and hovering the mask, the
    query slider or a grid cell picks the query whose cells the grid shows."""
    from playwright.sync_api import sync_playwright

    original, hard, position, k, frames = _temperature_args()
    masks, kinds = _hand_made_masks()
    temperature = interactive.temperature_explorer(
        original, hard, position, k, frames, live=False
    )
    viewer = interactive.mask_viewer(masks, kinds, 3, 3, live=False)
    spec = temperature_spec(temperature.data)
    rows = mask_spec(viewer.data)["rows"]
    page_file = tmp_path / "chapter6.html"
    page_file.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>dalle</title>"
        f"</head><body>{temperature.data}<hr>{viewer.data}</body></html>"
    )
    query, read, blocked = "#ff7f0e", "#2f6db5", "#eeeeee"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_or_skip, args=["--headless", "--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 900, "height": 1200})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "console", lambda m: errors.append(m.text) if m.type == "error" else None
        )
        page.goto(page_file.as_uri(), wait_until="load")
        state = new_figures_state(page)
        assert state["soft"] == spec["frames"][0]["soft"]
        assert state["taus"] == ["τ = 0.0625"] * 3
        page.locator(".tx-range").focus()
        page.keyboard.press("End")
        state = new_figures_state(page)
        hot = spec["frames"][3]
        assert (state["soft"], state["entropy"]) == (hot["soft"], hot["entropy"])
        label = re.search(r'aria-label="([^"]*)"', hot["bars"])[1]
        assert label.startswith("probabilities at row 1, column 2, τ = 4: code ")
        assert f'aria-label="{label}"' in state["bars"]
        assert state["summary"] == hot["summary"] and state["taus"] == ["τ = 4"] * 3

        # the mask viewer opens on layer 1 (row) at the middle image token 4
        assert state["title"] == "layer 1 of 3: row attention"
        assert state["pressed"] == ["layer 1: row"]
        assert state["query"] == "position 7: image token 4 (row 1, column 1)"
        assert state["cells"] == [blocked] * 3 + [read, query] + [blocked] * 4
        page.get_by_role("button", name="layer 2: column").click()
        state = new_figures_state(page)
        assert state["title"] == "layer 2 of 3: column attention"
        assert state["mask"] == mask_spec(viewer.data)["masks"][1]
        assert (
            state["cells"] == [blocked, read] + [blocked] * 2 + [query] + [blocked] * 4
        )
        assert state["reads"] == (
            "image token 4 may read 2 of the 9 image tokens and all 3 text tokens"
        )
        # hovering the last row of the mask shows the last image token
        box = page.locator(".mk-png").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] - 2)
        state = new_figures_state(page)
        assert state["query"] == "position 11: image token 8 (row 2, column 2)"
        assert state["cells"] == [blocked, blocked, read] * 2 + [blocked] * 2 + [query]
        # every cell drawn as the page's row for that query says
        for q in range(12):
            page.mouse.move(box["x"] + 5, box["y"] + (q + 0.5) * box["height"] / 12)
            shown = new_figures_state(page)["cells"]
            bits = unhex(rows[1][q], 12)[3:]
            expected = [read if b else blocked for b in bits]
            if q >= 3:
                expected[q - 3] = query
            assert shown == expected, q
        # leaving the mask goes back to the slider's query; a cell click picks one
        page.mouse.move(0, 0)
        assert new_figures_state(page)["query"].startswith("position 7:")
        page.locator('.mk-cell[data-cell="2"]').click()
        state = new_figures_state(page)
        assert state["query"] == "position 5: image token 2 (row 0, column 2)"
        assert state["cells"][2] == query and read not in state["cells"]
        page.locator(".mk-query").focus()
        page.keyboard.press("Home")
        state = new_figures_state(page)
        assert state["query"] == "position 0: text token 0"
        assert (
            state["reads"]
            == "text token 0 may read no image token and 1 of the 3 text tokens"
        )
        assert set(state["cells"]) == {blocked}
        browser.close()
    assert errors == []


def test_live_steering_runs_the_typed_caption_and_shows_each_frame():
    import ipywidgets as widgets

    seen = []

    def run(caption, show):
        seen.append(caption)
        for step in (0, 10):
            show(np.full((4, 4, 3), step, dtype=np.uint8), f"step {step} <b>")

    control = interactive.live_steering(run, "a red circle", live=True)
    (box, button), picture, line = control.children[0].children, *control.children[1:]
    box.value = "a blue square"
    button.click()
    assert seen == ["a blue square"]
    assert picture.value == interactive.png_bytes(np.full((4, 4, 3), 10, np.uint8))
    assert line.value == "step 10 &lt;b&gt;"  # escaped
    assert not button.disabled
    assert isinstance(control, widgets.VBox)

    def broken(caption, show):
        raise ValueError("unknown word")

    control = interactive.live_steering(broken, "x", live=True)
    control.children[0].children[1].click()
    assert "could not steer: unknown word" in control.children[2].value
    assert "Run button" in interactive.live_steering(run, "x", live=False).data
