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
        "loaded from the cache" in html or "steps on" in html
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


def test_benchmarks_page_compares_ours_with_the_references(built_book):
    """The results file as tables: the machine, a ratio per reference, the checks."""
    import json

    data = Path(__file__).resolve().parents[1] / "book" / "_data"
    results = json.loads((data / "benchmarks-cpu.json").read_text())
    text = page_text((built_book / "book" / "benchmarks.html").read_text())
    assert f"Measured on {results['machine']['processor']}" in text
    assert text.count("ours against it") == len(results["comparisons"])
    ratios = re.findall(
        r"(\d+\.\d\d)×( \(\d+\.\d\d–\d+\.\d\d\))?, (ours faster|ours slower|about even)",
        text,
    )
    references = sum(len(c["rows"]) - 1 for c in results["comparisons"])
    assert len(ratios) == references
    assert text.count("Check: ") == sum(
        len(c["checks"]) for c in results["comparisons"]
    )
    gpu = data / "benchmarks-gpu.json"
    if gpu.exists():
        assert json.loads(gpu.read_text())["machine"]["gpu"] in text
    else:
        assert "No results yet (_data/benchmarks-gpu.json does not exist)" in text


def test_benchmarks_page_reports_each_chapter_against_its_time_budget(built_book):
    """Time is a figure, not a test: the page shows it, with a warning when over."""
    html = (built_book / "book" / "benchmarks.html").read_text()
    text = re.sub(r"<[^>]+>", " ", html).replace("&#8776;", "≈")
    rows = re.findall(
        r"\b(\d\d)_[a-z]\w+\s+(\d+)\s+(cold|warm)\s+(\d+) of (\d+)\s+(≈ )?(\d+)\s+"
        r"(180|240)\s+(within budget|OVER BUDGET)( \(est\.\))?",
        text,
    )
    assert {r[0] for r in rows} >= {"01", "02", "03"}, rows
    for _, executed, run, trained, total, approx, cold, budget, verdict, est in rows:
        assert (run == "cold") == (trained == total) == (not approx) == (not est)
        assert int(cold) >= int(executed)
        over = int(cold) > int(budget)
        assert verdict == ("OVER BUDGET" if over else "within budget")
    over_any = any(r[8] == "OVER BUDGET" for r in rows)
    assert ("Over the tiny-scale time budget" in text) == over_any


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


def page_text(html: str) -> str:
    """Visible text of a page, whitespace folded (scripts and styles dropped)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", html)
    for entity, char in (
        ("&#8217;", "'"),
        ("&#39;", "'"),
        ("&amp;", "&"),
        ("&quot;", '"'),
    ):
        text = text.replace(entity, char)
    return re.sub(r"\s+", " ", text).replace("*", "")


CHAPTER_PAGES = (
    "01_autoencoder",
    "02_vae",
    "03_vqvae",
    "04_vqvae2",
    "05_vqgan",
    "06_dalle",
    "07_dalle_mini",
    "08_vqgan_clip",
)


@pytest.mark.parametrize("chapter", CHAPTER_PAGES)
def test_every_checked_sentence_is_on_the_page(built_book, chapter):
    """The guards and the prose cannot drift apart: each sentence the run checked
    (listed in the footer) also stands in the chapter's text."""
    html = (built_book / "chapters" / f"{chapter}.html").read_text()
    footer = re.search(r'<details class="t2i-claims">(.*?)</details>', html, re.S)
    assert footer, "the footer lists no checked sentences"
    rows = re.findall(r"<tr[^>]*>\s*<td[^>]*>(.*?)</td>", footer.group(1), re.S)
    body = page_text(html.replace(footer.group(0), "")).lower()
    assert len(rows) >= 4
    for row in rows:
        sentence = page_text(row).strip()
        assert sentence.lower() in body, f"checked but not on the page: {sentence!r}"


@pytest.mark.parametrize("chapter", CHAPTER_PAGES)
def test_figures_are_numbered_with_captions_and_alt_text(built_book, chapter):
    html = (built_book / "chapters" / f"{chapter}.html").read_text()
    number = int(chapter[:2])
    captions = re.findall(
        r'<span class="caption-number">Fig\. (\d+)\.(\d+) </span>', html
    )
    assert len(captions) >= 5 and {int(c) for c, _ in captions} == {number}
    assert [int(n) for _, n in captions] == list(range(1, len(captions) + 1))
    for alt in re.findall(r'<img alt="([^"]*)" src="../_images/', html):
        assert " " in alt, f"an image without a real alt text: {alt!r}"


def test_launch_buttons_only_on_chapter_pages(built_book):
    assert (
        "colab.research.google.com"
        not in (built_book / "book" / "intro.html").read_text()
    )
    assert (
        "colab.research.google.com"
        in (built_book / "chapters" / "02_vae.html").read_text()
    )


def test_glossary_defines_the_terms_the_chapters_use(built_book):
    glossary = page_text((built_book / "book" / "glossary.html").read_text())
    for term in ("perplexity", "PSNR", "total variation", "nat", "bits-back coding"):
        assert term in glossary, term
    chapter = (built_book / "chapters" / "01_autoencoder.html").read_text()
    assert "glossary.html#term-PSNR" in chapter


def test_vqgan_page_names_its_perceptual_network_and_quotes_the_paper(built_book):
    html = (built_book / "chapters" / "05_vqgan.html").read_text()
    text = page_text(html)
    # no silent fallback: the run info says which network the perceptual loss used
    assert "perceptual loss judge features (book-trained attribute judge" in text
    for published in ("7.94", "4.98", "32.01"):  # taming's reconstruction FIDs
        assert published in text
    for figure in ("fig-ch5-disc-start", "fig-ch5-reconstructions", "fig-ch5-cost"):
        assert f'id="{figure}"' in html, figure
    assert html.count('class="t2i-tokens') == 1


def test_vqgan_clip_page_says_which_models_drew_it_and_compares_all_three(built_book):
    html = (built_book / "chapters" / "08_vqgan_clip.html").read_text()
    text = page_text(html).replace("\u2019", "'")
    # offline, no silent fallback: the page says the published pair was not used
    assert "This page was built with the book's own models" in text
    # the three-way table: a built book has chapters 6 and 7's models cached
    for row in ("| VQGAN-CLIP |", "| DALL·E |", "| DALL·E mini, s = 1 |"):
        assert row.replace("|", "").strip() in text, row
    assert "Not measured in this run" not in text
    for figure in ("fig-ch8-progress", "fig-ch8-ablation", "fig-ch8-edit"):
        assert f'id="{figure}"' in html, figure
    assert html.count('class="t2i-stepper') == 1
