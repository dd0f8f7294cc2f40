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
