"""Every chapter follows the template: checked on the committed notebooks."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def load(path):
    return json.loads(path.read_text())


def test_there_are_chapters_and_all_are_in_the_table_of_contents():
    assert CHAPTERS, "no chapter notebooks found"
    toc = (ROOT / "_toc.yml").read_text()
    for path in CHAPTERS:
        assert f"chapters/{path.stem}" in toc


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_outputs_are_stripped(path):
    for cell in load(path)["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_shape(path):
    cells = load(path)["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    text = "\n".join(
        "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
    )
    assert "".join(cells[0]["source"]).startswith("# "), (
        "the chapter starts with its title"
    )
    assert "Learning goals" in text
    # the Colab install cell comes first and installs from the configured repository
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    first = "".join(code[0]["source"])
    assert "google.colab" in first and f"git+{repo}" in first
    # a papermill parameters cell with the tiny scale
    parameters = [
        c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    assert len(parameters) == 1 and re.search(
        r'^SCALE = "tiny"', "".join(parameters[0]["source"]), re.M
    )
    assert "show_source(" in "".join("".join(c["source"]) for c in code)
    for heading in ("## Exercises", "## Summary", "## References"):
        assert heading in text
    assert '<details class="solution">' in text
    assert "run_info(SCALE" in "".join(code[-1]["source"])


def test_book_config_is_offline_and_strict():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]["config"]
    assert not sphinx["mathjax_path"].startswith("http")
    assert sphinx["nb_ipywidgets_js"] == {}
    assert config["execute"]["execute_notebooks"] in ("cache", "force")
    assert "--warningiserror" in (ROOT / "Makefile").read_text()


FIGURE_CALLS = re.compile(
    r"plt\.subplots|viz\.(rows_figure|image_grid)\(|interactive\.(latent_explorer|image_stepper|"
    r"codebook_explorer|loss_curves|plotly_figure)\("
)


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_figure_is_numbered_captioned_and_folded(path):
    """A cell that draws has a named, captioned figure (alt text for images), and
    its code is behind "show code"; model code stays in view."""
    names = []
    for cell in load(path)["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not FIGURE_CALLS.search(source):
            continue
        if "remove-input" in tags(cell) or "remove-cell" in tags(cell):
            continue
        figure = cell["metadata"].get("mystnb", {}).get("figure", {})
        assert figure.get("caption") and figure.get("name"), source[:80]
        assert figure["name"].startswith(f"fig-ch{int(path.stem[:2])}-"), figure["name"]
        assert "hide-input" in tags(cell), f"drawing code in view: {source[:80]}"
        interactive = re.search(r"interactive\.", source)
        if not interactive:  # a static image: it needs alt text
            assert cell["metadata"]["mystnb"].get("image", {}).get("alt"), source[:80]
        names.append(figure["name"])
    assert len(names) >= 5 and len(names) == len(set(names))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_claims_about_the_run_are_guarded_in_hidden_cells(path):
    """The chapter template: sentences about this run are checked by claims.claim."""
    guards = [
        c
        for c in load(path)["cells"]
        if c["cell_type"] == "code" and "claims.claim(" in "".join(c["source"])
    ]
    assert len(guards) >= 4, "each chapter guards its main claims (t2i.claims)"
    for cell in guards:
        assert {"remove-cell", "remove-input"} & set(tags(cell)), "".join(
            cell["source"]
        )[:80]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_run_times_typed_into_the_prose(path):
    """Times differ between machines by 1.5x or more: they come from the run."""
    typed = re.compile(
        r"(about|roughly|around|~)\s*\d[\d.,]*\s*(s|sec|seconds|min|minutes)\b", re.I
    )
    for cell in load(path)["cells"]:
        if cell["cell_type"] == "markdown":
            assert not typed.search("".join(cell["source"])), "".join(cell["source"])[
                :120
            ]
