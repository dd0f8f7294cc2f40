"""The Colab path, tried as a Colab user would take it.

The library is built as a wheel and every chapter is executed in a fresh
environment that looks like Colab where it matters: a stand-in
``google.colab`` module is imported at start-up (so each chapter's install
cell runs), and Colab's ipywidgets 7.7.1 (with its widgetsnbextension) comes
before everything else. `make test` installs those into ``.colab/site``; the
rest (torch, torchvision, matplotlib, plotly, ipykernel) is what ``.venv``
resolved from the requirements' lower bounds. The chapter's own install cell
installs the wheel (``T2I_INSTALL``; in Colab the repository URL) with pip,
offline, so every dependency must already be satisfied by that environment.

After a chapter ran, one more cell moves every control of every live widget
(a slider to its other end, a selection to its next option, a checkbox to
its other state) and reports which outputs changed. Runs after the book
build, whose cache of trained models it reuses; marked ``book``.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
COLAB_SITE = ROOT / ".colab" / "site"
# the cache the book build filled (conftest gives every test its own otherwise)
BUILD_CACHE = os.environ.get("T2I_CACHE", str(Path("~/.cache/t2i").expanduser()))
# what Colab has that this environment does not need to run: the classic
# notebook server, which Colab's widgetsnbextension 3.6 requires
COLAB_RECORDS = {"notebook": "6.5.7"}

pytestmark = pytest.mark.book

MOVE_EVERY_CONTROL = r"""
import json as _json
import ipywidgets as _widgets
import t2i as _t2i

def _outputs():
    return {
        id(w): w.value
        for w in list(_widgets.Widget.widgets.values())
        if isinstance(w, (_widgets.Image, _widgets.HTML))
    }

def _move(control):
    if isinstance(control, (_widgets.Checkbox, _widgets.ToggleButton)):
        control.value = not control.value
    elif hasattr(control, "options") and hasattr(control, "index"):
        control.index = (control.index + 1) % len(control.options)
    elif hasattr(control, "max") and not isinstance(control.value, tuple):
        control.value = control.max if control.value != control.max else control.min
    else:
        return None
    return type(control).__name__

_before = _outputs()
_controls = [
    w
    for w in list(_widgets.Widget.widgets.values())
    if isinstance(w, _widgets.DOMWidget)
    and not isinstance(w, (_widgets.Image, _widgets.HTML, _widgets.Box))
]
_moved = [name for name in map(_move, _controls) if name]
_after = _outputs()
print("COLAB-REPORT " + _json.dumps({
    "moved": _moved,
    "outputs_changed": sum(_before.get(k) != v for k, v in _after.items()),
    "t2i": _t2i.__file__,
    "ipywidgets": _widgets.__version__,
}))
"""


@pytest.fixture(scope="module")
def colab(tmp_path_factory) -> dict:
    """A fresh environment, the wheel, the stand-in module and a kernel spec."""
    if not (COLAB_SITE / ".installed").exists():
        pytest.fail(
            "Colab's ipywidgets 7.7.1 is not in .colab/site: run `make test`, "
            "which installs it there first"
        )
    base = tmp_path_factory.mktemp("colab")
    source = base / "source"  # built from a copy: the build leaves no files here
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    wheels = base / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("t2i-*.whl")

    env = base / "env"  # pip and setuptools come from .venv, like the rest
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", env],
        check=True,
        capture_output=True,
    )
    stub = base / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab."""\n')
    records = base / "records"
    for name, version in COLAB_RECORDS.items():
        info = records / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
    (site,) = (env / "lib").glob("python3*/site-packages")
    paths = [stub.parent.parent, records, COLAB_SITE, sysconfig.get_paths()["purelib"]]
    (site / "zz_colab.pth").write_text(
        "".join(f"{p}\n" for p in paths) + "import google.colab\n"
    )
    kernel = base / "kernels" / "t2i-colab"
    kernel.mkdir(parents=True)
    python = env / "bin" / "python"
    (kernel / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    str(python),
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "Colab stand-in",
                "language": "python",
            }
        )
    )
    return {"wheel": wheel, "site": site, "jupyter_path": base, "python": python}


def run_in_colab(path: Path, colab: dict, monkeypatch) -> dict:
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(MOVE_EVERY_CONTROL))
    for name, value in {
        "T2I_INSTALL": str(colab["wheel"]),
        "PIP_NO_INDEX": "1",  # everything the wheel needs must be there already
        "JUPYTER_PATH": str(colab["jupyter_path"]),
        "T2I_CACHE": BUILD_CACHE,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("T2I_BOOK_BUILD", raising=False)  # a reader's live kernel
    client = NotebookClient(
        notebook,
        kernel_name="t2i-colab",
        timeout=900,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    text = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    return json.loads(text.split("COLAB-REPORT ", 1)[1])


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_live_in_colab(path, colab, monkeypatch):
    report = run_in_colab(path, colab, monkeypatch)
    print(path.stem, report)
    assert report["ipywidgets"] == "7.7.1"
    # the install cell installed the wheel into the fresh environment
    assert Path(report["t2i"]).is_relative_to(colab["site"]), report["t2i"]
    assert report["moved"], "no live control was built"
    assert report["outputs_changed"] > 0, report
