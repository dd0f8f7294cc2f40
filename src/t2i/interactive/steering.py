"""A live run of a per-picture optimisation (chapter 8): a caption box, a Run
button, and the picture redrawn every few steps while the loop runs."""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np
from IPython.display import HTML

from .core import is_live, png_bytes

Frame = Callable[[np.ndarray, str], None]


def live_steering(
    run: Callable[[str, Frame], None],
    caption: str,
    *,
    width: int = 192,
    live: bool | None = None,
):
    """``run(caption, show)`` steers one picture for ``caption`` and calls
    ``show(picture, line)`` at every recorded step (a uint8 image and a line
    of text, e.g. the step and the CLIP score).

    In a live kernel: a text box, a Run button, the picture and its line,
    updated while the loop runs. A website has no kernel to run the loop, so
    there it returns a note saying what a live notebook shows here."""
    if not is_live(live):
        return HTML(
            "<p><em>In a live notebook (JupyterLab, Colab) a caption box and a "
            "Run button appear here: type a caption and watch the loop draw "
            "it, step by step. The slider above shows a run recorded when "
            "this page was built.</em></p>"
        )
    import ipywidgets as widgets

    box = widgets.Text(value=caption, description="caption", layout={"width": "32em"})
    button = widgets.Button(description="Run")
    picture = widgets.Image(format="png", width=width)
    line = widgets.HTML()

    def show(array: np.ndarray, text: str) -> None:
        picture.value = png_bytes(array)
        line.value = html.escape(text)

    def clicked(_=None) -> None:
        button.disabled = True
        try:
            run(box.value, show)
        except ValueError as error:  # e.g. a caption the tokenizer cannot read
            line.value = html.escape(f"could not steer: {error}")
        finally:
            button.disabled = False

    button.on_click(clicked)
    return widgets.VBox([widgets.HBox([box, button]), picture, line])
