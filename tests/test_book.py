"""Checks on the built website (run after `make book`)."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.book

CDN = re.compile(
    r"""(src|href)=["'](https?:)?//[^"']*(cdn|jsdelivr|unpkg|googleapis|cloudflare|require\.js)""",
    re.I,
)


def pages(site: Path):
    return sorted(site.rglob("*.html"))


def test_every_page_is_offline(built_book):
    for page in pages(built_book):
        html = page.read_text(errors="replace")
        assert not CDN.search(html), (
            f"{page.relative_to(built_book)} loads something from a CDN"
        )


def test_plotly_and_mathjax_are_served_once_from_the_site(built_book):
    vendor = built_book / "_static" / "vendor"
    assert (vendor / "plotly.min.js").stat().st_size > 1_000_000
    assert (vendor / "mathjax" / "tex-svg.js").exists()
    chapter = (built_book / "chapters" / "01_autoencoder.html").read_text()
    assert (
        "_static/vendor/plotly.min.js" in chapter
        and "vendor/mathjax/tex-svg.js" in chapter
    )
    for page in pages(built_book):  # the 3.5 MB library is never inlined into a page
        assert page.stat().st_size < 2_000_000, page


def test_chapter_page_has_its_figures(built_book):
    html = (built_book / "chapters" / "01_autoencoder.html").read_text()
    assert html.count('class="t2i-latent-explorer"') == 1
    assert "t2i-plotly" in html and 'class="t2i-road"' in html
    assert (
        html.count("<img") >= 8
    )  # data grid, reconstructions, sweep, scatter, samples, ...
    assert (
        "loaded trained weights" in html or "steps on" in html
    )  # training ran or was reused
    assert "colab.research.google.com" in html  # launch button


def test_no_error_output_in_any_page(built_book):
    for page in pages(built_book):
        html = page.read_text(errors="replace")
        assert "Traceback (most recent call last)" not in html, page
        assert 'class="output traceback' not in html, page


def test_benchmarks_page_quotes_the_measured_numbers(built_book):
    text = re.sub(
        r"<[^>]+>", " ", (built_book / "book" / "benchmarks.html").read_text()
    )
    assert re.search(r"01_autoencoder", text)  # the execution table lists the chapter
    numbers = re.findall(r"\b0\.\d{4}\b", text)
    assert len(numbers) >= 4, "the glued MSE values are missing"
    assert re.search(r"-?\d{2,3}\.\d\b", text), "the glued ELBO values are missing"


def test_each_chapter_ran_within_the_tiny_budget(built_book):
    from jupyter_cache import get_cache

    cache = get_cache(str(built_book.parent / ".jupyter_cache"))
    records = cache.list_cache_records()
    chapters = [r for r in records if "chapters/" in r.uri]
    assert chapters, "no executed chapter in the jupyter cache"
    for record in chapters:
        seconds = record.data.get("execution_seconds")
        assert seconds is not None and seconds < 180, (record.uri, seconds)


def test_vae_page_has_its_figures_and_numbers(built_book):
    html = (built_book / "chapters" / "02_vae.html").read_text()
    assert html.count('class="t2i-latent-explorer"') == 1
    assert html.count('class="t2i-stepper"') == 2  # moon path and the beta control
    text = re.sub(r"<[^>]+>", " ", html)
    assert "test ELBO" in text and "importance-sampled log p(x)" in text
    assert "What this run shows" in text


def test_vqvae_page_has_its_figures_and_numbers(built_book):
    html = (built_book / "chapters" / "03_vqvae.html").read_text()
    assert html.count('class="t2i-codebook"') == 1
    # k-means rounds, the sample being written, temperature, top-k, top-p
    assert html.count('class="t2i-stepper"') == 5
    assert "t2i-plotly" in html  # the prior's learning curve
    text = re.sub(r"<[^>]+>", " ", html)
    for phrase in ("codes used", "perplexity", "bits per code", "pixel space", "ratio"):
        assert phrase in text, phrase
    used = [int(n) for n in re.findall(r"codes used\s+(\d+) of 128", text)]
    assert len(used) == 2 and used[0] < used[1], (
        "the collapse demo should show fewer codes in use"
    )
