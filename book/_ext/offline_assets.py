"""Sphinx extension: serve plotly.js and MathJax from the site itself.

A default Jupyter Book page fetches MathJax from a CDN, a plotly figure
inlines 4 MB of plotly.js, and sphinx-thebe points at a CDN too. Here both are copied once into ``_static/vendor``
from the Python packages that ship them (plotly, django-static-mathjax), and
every page loads plotly.js from there, so the site renders with the network off.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def _sources() -> dict[str, Path]:
    import mathjax  # the django-static-mathjax package
    import plotly

    return {
        "plotly.min.js": Path(plotly.__file__).parent
        / "package_data"
        / "plotly.min.js",
        "mathjax": Path(mathjax.__file__).parent / "static" / "mathjax" / "es5",
    }


def _stage(app) -> None:
    """Copy the vendored files into a folder that Sphinx copies into _static."""
    staging = Path(app.doctreedir).parent / "offline-assets"
    vendor = staging / "vendor"
    for name, source in _sources().items():
        if not source.exists():
            raise FileNotFoundError(f"{source} is missing; reinstall with `make book`")
        target = vendor / name
        if target.exists():
            continue
        vendor.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(
                source,
                target,
                ignore=shutil.ignore_patterns("*.map", "sre", "node-main*"),
            )
        else:
            shutil.copy2(source, target)
    app.config.html_static_path.append(str(staging))


def _drop_thebe(app) -> None:
    """Jupyter Book always loads sphinx-thebe, which points pages at thebe on a
    CDN (and on this build declared its config twice, a console error). The
    book runs live in Colab or JupyterLab instead, so thebe is switched off."""
    for event in ("env-before-read-docs", "doctree-resolved"):
        for listener in list(app.events.listeners.get(event, [])):
            if getattr(listener.handler, "__module__", "").startswith("sphinx_thebe"):
                app.disconnect(listener.id)


def setup(app):
    app.connect("builder-inited", _stage)
    app.connect("builder-inited", _drop_thebe)
    app.add_js_file("vendor/plotly.min.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
