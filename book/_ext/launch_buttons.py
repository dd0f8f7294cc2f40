"""Sphinx extension: launch buttons (Colab, ...) on chapter notebooks only.

The theme adds a launch menu to every page that has a kernel, and the intro
page runs one cell (the road map), so it got a Colab button too. Colab would
open the intro's Markdown source, which it cannot run. This drops the menu
from every page outside ``chapters/``, right after the theme added it.
"""

from __future__ import annotations


def _chapters_only(app, pagename, templatename, context, doctree):
    if pagename.startswith("chapters/"):
        return
    buttons = context.get("header_buttons")
    if buttons:
        buttons[:] = [b for b in buttons if b.get("label") != "launch-buttons"]


def setup(app):
    # the theme adds the menu at priority 501; run just after it
    app.connect("html-page-context", _chapters_only, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
