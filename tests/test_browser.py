"""Drive the built site in headless Chromium, as a reader would, with the network off."""

import functools
import http.server
import threading

import pytest

pytestmark = pytest.mark.book

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(built_book):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(built_book))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def open_page(browser, site):
    """Open a page; record console errors and every request that leaves localhost."""
    opened = []

    def go(path):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.errors, page.foreign = [], []
        page.on(
            "console",
            lambda m: page.errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on(
            "request",
            lambda r: (
                page.foreign.append(r.url)
                if not r.url.startswith((site, "data:", "blob:", "about:"))
                else None
            ),
        )
        # the network is off for the page: anything foreign is aborted (and recorded)
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(site)
                or route.request.url.startswith("data:")
                else route.abort()
            ),
        )
        page.goto(f"{site}/{path}", wait_until="load")
        page.wait_for_timeout(1000)
        opened.append(page)
        return page

    yield go
    for page in opened:
        page.close()


def decoded_pixels(page):
    return page.evaluate(
        "document.querySelector('.t2i-latent-explorer .lx-decoded').toDataURL()"
    )


def test_latent_slider_changes_the_decoded_digit(open_page):
    page = open_page("chapters/01_autoencoder.html")
    explorer = page.locator(".t2i-latent-explorer")
    explorer.scroll_into_view_if_needed()
    before = decoded_pixels(page)
    coords_before = explorer.locator(".lx-coords").inner_text()
    slider = explorer.locator("input.lx-x")
    slider.focus()
    for _ in range(8):
        page.keyboard.press("ArrowRight")
    after = decoded_pixels(page)
    assert after != before, "moving the z1 slider did not change the decoded image"
    assert explorer.locator(".lx-coords").inner_text() != coords_before
    explorer.locator("input.lx-y").focus()
    for _ in range(8):
        page.keyboard.press("ArrowLeft")
    assert decoded_pixels(page) != after
    assert page.errors == [] and page.foreign == []


def test_clicking_the_scatter_moves_the_point(open_page):
    page = open_page("chapters/01_autoencoder.html")
    scatter = page.locator(".t2i-latent-explorer .lx-scatter")
    scatter.scroll_into_view_if_needed()
    before = decoded_pixels(page)
    scatter.click(
        position={"x": 3, "y": 3}
    )  # the top-left corner: smallest z1, largest z2
    last = page.locator(".t2i-latent-explorer input.lx-x").get_attribute("max")
    assert page.locator(".t2i-latent-explorer input.lx-x").input_value() == "0"
    assert page.locator(".t2i-latent-explorer input.lx-y").input_value() == last
    assert decoded_pixels(page) != before


def test_plotly_and_math_render_without_network(open_page):
    page = open_page("chapters/01_autoencoder.html")
    page.wait_for_function(
        "document.querySelectorAll('.t2i-plotly .main-svg').length > 0", timeout=15000
    )
    page.wait_for_function(
        "document.querySelectorAll('mjx-container').length > 5", timeout=15000
    )
    assert page.errors == [] and page.foreign == []


@pytest.mark.parametrize(
    "path",
    [
        "book/intro.html",
        "book/setup.html",
        "book/benchmarks.html",
        "book/references.html",
        "book/course.html",
    ],
)
def test_other_pages_load_cleanly(open_page, path):
    page = open_page(path)
    assert page.title()
    assert page.errors == [] and page.foreign == []


def stepper_pictures(page, index):
    return page.evaluate(
        f"Array.from(document.querySelectorAll('.t2i-stepper')[{index}].querySelectorAll('.st-img'))"
        ".map(img => img.src)"
    )


def test_vae_page_two_panel_explorer_moves_both_models(open_page):
    page = open_page("chapters/02_vae.html")
    explorer = page.locator(".t2i-latent-explorer")
    assert explorer.count() == 1 and explorer.locator(".lx-decoded").count() == 2
    explorer.scroll_into_view_if_needed()
    before = page.evaluate(
        "Array.from(document.querySelectorAll('.lx-decoded')).map(c => c.toDataURL())"
    )
    explorer.locator("input.lx-y").focus()
    for _ in range(6):
        page.keyboard.press("ArrowUp")
    after = page.evaluate(
        "Array.from(document.querySelectorAll('.lx-decoded')).map(c => c.toDataURL())"
    )
    assert before[0] != after[0] and before[1] != after[1]
    assert page.errors == [] and page.foreign == []


@pytest.mark.parametrize(
    "path, index",
    [
        ("chapters/02_vae.html", 0),
        ("chapters/02_vae.html", 1),
        ("chapters/03_vqvae.html", 0),
        ("chapters/03_vqvae.html", 1),
        ("chapters/03_vqvae.html", 2),
        ("chapters/03_vqvae.html", 3),
        ("chapters/03_vqvae.html", 4),
    ],
    ids=["moon path", "beta", "k-means", "writing", "temperature", "top-k", "top-p"],
)
def test_steppers_change_their_pictures(open_page, path, index):
    page = open_page(path)
    stepper = page.locator(".t2i-stepper").nth(index)
    stepper.scroll_into_view_if_needed()
    assert all(
        src.startswith("data:image/png") for src in stepper_pictures(page, index)
    )
    assert stepper.locator(".st-label").inner_text()
    stepper.locator("input.st-range").focus()
    views = {}
    for key in ("Home", "End"):  # a stepper may open at either end, or in between
        page.keyboard.press(key)
        views[key] = (
            stepper_pictures(page, index),
            stepper.locator(".st-label").inner_text(),
        )
    assert views["Home"][0] != views["End"][0] and views["Home"][1] != views["End"][1]
    assert page.errors == [] and page.foreign == []


def ends_of_stepper(page, stepper, index):
    """A stepper's (pictures, label, note) at its first and last value."""
    stepper.locator("input.st-range").focus()
    views = {}
    for key in ("Home", "End"):
        page.keyboard.press(key)
        views[key] = (
            stepper_pictures(page, index),
            stepper.locator(".st-label").inner_text(),
            stepper.locator(".st-note").inner_text(),
        )
    return views


def codebook_state(page):
    return page.evaluate(
        "(() => { const r = document.querySelector('.t2i-codebook');"
        " return [r.querySelector('.cb-info').textContent,"
        " r.querySelector('.cb-decoded').toDataURL(),"
        " r.querySelector('.cb-patches').toDataURL()]; })()"
    )


def test_codebook_explorer_hover_shows_a_code_and_click_pins_it(open_page):
    page = open_page("chapters/03_vqvae.html")
    scatter = page.locator(".t2i-codebook .cb-scatter")
    scatter.scroll_into_view_if_needed()
    start = codebook_state(page)
    assert start[0].startswith("code ") and "used" in start[0]
    box = scatter.bounding_box()
    seen = set()
    for fx, fy in ((0.1, 0.1), (0.9, 0.1), (0.1, 0.9), (0.9, 0.9), (0.5, 0.5)):
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        seen.add(tuple(codebook_state(page)))
    assert len({state[0] for state in seen}) >= 3, "hovering did not change the code"
    assert len({state[1] for state in seen}) >= 3, "the decoded picture did not change"
    page.mouse.click(box["x"] + 0.5 * box["width"], box["y"] + 0.5 * box["height"])
    pinned = codebook_state(page)
    assert "pinned" in pinned[0]
    page.mouse.move(box["x"] + 0.1 * box["width"], box["y"] + 0.1 * box["height"])
    assert codebook_state(page) == pinned, (
        "a pinned code must stay while the mouse moves"
    )
    assert page.errors == [] and page.foreign == []


def level_mixer_state(page):
    return page.evaluate(
        "(() => { const r = document.querySelector('.t2i-levels');"
        " return [r.querySelector('.lm-caption').textContent,"
        " r.querySelector('.lm-result').toDataURL(),"
        " Array.from(r.querySelectorAll('.lm-pick[aria-pressed=\"true\"]'))"
        ".map(b => b.getAttribute('aria-label'))]; })()"
    )


def test_level_mixer_draws_the_chosen_top_and_bottom_codes(open_page):
    page = open_page("chapters/04_vqvae2.html")
    mixer = page.locator(".t2i-levels")
    assert mixer.count() == 1
    mixer.scroll_into_view_if_needed()
    start = level_mixer_state(page)
    assert " codes of image " in start[0] and len(start[2]) == 2
    unpressed = '.lm-pick[data-level="{}"][aria-pressed="false"]'
    mixer.locator(unpressed.format(0)).first.click()  # another "top codes from"
    after_top = level_mixer_state(page)
    assert after_top[0] != start[0], "the caption did not follow the top codes"
    assert after_top[1] != start[1], "other top codes did not change the picture"
    mixer.locator(unpressed.format(1)).first.click()  # another "bottom codes from"
    after_bottom = level_mixer_state(page)
    assert after_bottom[0] != after_top[0] and after_bottom[1] != after_top[1]
    mixer.locator(unpressed.format(1)).last.focus()
    page.keyboard.press("Enter")
    by_keyboard = level_mixer_state(page)
    assert by_keyboard[0] != after_bottom[0] and by_keyboard[1] != after_bottom[1]
    assert by_keyboard[2] != after_bottom[2]  # the outline moved with the choice
    assert page.errors == [] and page.foreign == []


def test_token_reading_on_the_vqgan_page_switches_readings(open_page):
    page = open_page("chapters/05_vqgan.html")
    figure = page.locator(".t2i-tokens")
    assert figure.count() == 1
    figure.scroll_into_view_if_needed()

    def state():
        return page.evaluate(
            "(() => { const r = document.querySelector('.t2i-tokens');"
            " const shown = Array.from(r.querySelectorAll('[data-for]'))"
            ".filter(d => getComputedStyle(d).visibility === 'visible');"
            " return [r.getAttribute('data-reading'),"
            " shown.map(d => d.getAttribute('data-for')),"
            " Array.from(shown[0].querySelectorAll('.tr-used')).map(t => t.textContent),"
            " Array.from(r.querySelectorAll('.tr-panel img')).length]; })()"
        )

    reading, shown, used, pictures = state()
    assert reading == "correct" and shown == ["correct"]
    assert used[0] == "63" and used[-1] == "126"  # 64 + 64 tokens, 127 fed
    assert pictures >= 2  # both readings' pictures are on the page
    figure.get_by_role("button", name="off by one").click()
    reading, shown, used, _ = state()
    assert reading == "off_by_one" and shown == ["off_by_one"]
    assert used[0] == "64" and used[-1] == "127"
    assert page.errors == [] and page.foreign == []


def temperature_state(page):
    return page.evaluate(
        "(() => { const r = document.querySelector('.t2i-temperature');"
        " return {soft: r.querySelector('.tx-soft').src,"
        " entropy: r.querySelector('.tx-entropy').src,"
        " pictures: Array.from(r.querySelectorAll('img')).map(i => i.src),"
        " summary: r.querySelector('.tx-summary').textContent,"
        " bars: r.querySelector('.tx-bars svg').getAttribute('aria-label'),"
        " taus: Array.from(r.querySelectorAll('.tx-tau')).map(t => t.textContent)};"
        " })()"
    )


def test_temperature_slider_changes_the_soft_image_and_entropy(open_page):
    import re

    page = open_page("chapters/06_dalle.html")
    figure = page.locator(".t2i-temperature")
    assert figure.count() == 1
    figure.scroll_into_view_if_needed()
    slider = figure.locator("input.tx-range")
    assert slider.is_visible()
    slider.focus()
    page.keyboard.press("Home")
    cold = temperature_state(page)
    page.keyboard.press("End")
    hot = temperature_state(page)
    assert all(src.startswith("data:image/png") for src in cold["pictures"])
    assert cold["soft"] != hot["soft"], "the soft-code picture did not follow tau"
    assert cold["entropy"] != hot["entropy"], "the entropy map did not follow tau"
    assert cold["bars"] != hot["bars"] and cold["taus"] != hot["taus"]
    assert len(set(hot["taus"])) == 1  # every tau on the figure says the same
    # the original and the hard-code picture stay; the entropy rises with tau
    assert cold["pictures"][:2] == hot["pictures"][:2]
    means = [
        float(re.search(r"mean entropy ([\d.]+) bits", s["summary"])[1])
        for s in (cold, hot)
    ]
    assert means[0] < means[1]
    assert page.errors == [] and page.foreign == []


def mask_state(page):
    return page.evaluate(
        "(() => { const r = document.querySelector('.t2i-masks');"
        " return {title: r.querySelector('.mk-title').textContent,"
        " mask: r.querySelector('.mk-png').getAttribute('href'),"
        " pressed: Array.from(r.querySelectorAll('.mk-pick[aria-pressed=\"true\"]'))"
        ".map(b => b.textContent),"
        " query: r.querySelector('.mk-query-text').textContent,"
        " reads: r.querySelector('.mk-reads').textContent,"
        " read: Array.from(r.querySelectorAll('.mk-cell'))"
        ".filter(c => c.getAttribute('data-read') === '1')"
        ".map(c => +c.getAttribute('data-cell'))}; })()"
    )


def test_mask_viewer_switches_layers_and_shows_readable_cells(open_page):
    import re

    page = open_page("chapters/06_dalle.html")
    viewer = page.locator(".t2i-masks")
    assert viewer.count() == 1
    viewer.scroll_into_view_if_needed()
    start = mask_state(page)
    assert re.fullmatch(r"layer \d+ of \d+: .+ attention", start["title"])
    assert len(start["pressed"]) == 1 and start["mask"].startswith("data:image/png")

    def checked(state):
        """The query is an image token that reads only itself and earlier
        image tokens (causality), as many as the sentence says."""
        cell = int(re.search(r"image token (\d+)", state["query"])[1])
        assert state["read"] and max(state["read"]) <= cell, state
        assert f"image token {cell} may read " in state["reads"]
        said = re.search(
            r"may read (?:all (\d+)|(\d+) of the \d+|no) image token", state["reads"]
        )
        assert int(said[1] or said[2] or 0) == len(state["read"]), state
        return cell

    checked(start)
    # another kind of layer: a new title, picture and readable cells
    kind = start["pressed"][0].split(": ")[1]
    other = viewer.locator(".mk-pick").filter(
        has_not_text=re.compile(f": {re.escape(kind)}$")
    )
    assert other.count() >= 1, "the page shows only one kind of mask"
    other.first.click()
    switched = mask_state(page)
    assert switched["title"] != start["title"] and switched["mask"] != start["mask"]
    assert switched["pressed"] != start["pressed"]
    assert switched["query"] == start["query"] and switched["read"] != start["read"]
    checked(switched)
    # hovering the mask's last row shows the last image token, which reads the most
    box = viewer.locator(".mk-png").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] - 1)
    last = mask_state(page)
    assert checked(last) > checked(switched)
    # a click on a grid cell picks that image token
    viewer.locator('.mk-cell[data-cell="0"]').click()
    first = mask_state(page)
    assert checked(first) == 0 and first["read"] == [0]  # the first reads itself
    assert page.errors == [] and page.foreign == []


def test_super_conditioning_control_shows_samples_and_measurements_per_scale(open_page):
    """Chapter 7's s control: each position of the slider shows its own
    samples and the judge's numbers measured at that s."""
    page = open_page("chapters/07_dalle_mini.html")
    stepper = page.locator(".t2i-stepper").first
    stepper.scroll_into_view_if_needed()
    assert "s = 1" in stepper.locator(".st-label").inner_text()  # opens at s = 1
    views = ends_of_stepper(page, stepper, 0)
    (low_pictures, low_label, low_note), (high_pictures, high_label, high_note) = (
        views["Home"],
        views["End"],
    )
    assert low_label == "s = 0" and high_label == "s = 10"
    assert low_note.startswith("s = 0.") and high_note.startswith("s = 10.")
    assert "colour" in low_note and "diversity" in high_note and low_note != high_note
    assert all(src.startswith("data:image/png") for src in low_pictures + high_pictures)
    assert low_pictures != high_pictures
    assert page.errors == [] and page.foreign == []


def test_vqgan_clip_progress_slider_shows_each_recorded_step(open_page):
    """Chapter 8's progress control: each step of the recorded run shows its
    own pictures and the CLIP score and judge accuracy measured there; the
    page built offline says the live box needs a kernel."""
    page = open_page("chapters/08_vqgan_clip.html")
    stepper = page.locator(".t2i-stepper").first
    stepper.scroll_into_view_if_needed()
    last = stepper.locator(".st-label").inner_text()
    assert last.startswith("step ") and last != "step 0"  # opens at the end
    views = ends_of_stepper(page, stepper, 0)
    (first_pictures, first_label, first_note), (end_pictures, end_label, end_note) = (
        views["Home"],
        views["End"],
    )
    assert first_label == "step 0" and end_label == last
    assert first_note.startswith("step 0:") and "CLIP" in end_note
    assert "colour" in first_note and first_note != end_note
    assert all(
        src.startswith("data:image/png") for src in first_pictures + end_pictures
    )
    assert first_pictures != end_pictures
    assert "Run button" in page.content()
    assert page.errors == [] and page.foreign == []
