"""What every interactive figure shares: the static-or-live choice, PNG
encoding, and the builder of a no-kernel figure (markup + JSON + script)."""

from __future__ import annotations

import base64
import functools
import io
import json
import uuid
from importlib import resources

import numpy as np
from IPython.display import HTML
from PIL import Image

from ..env import in_notebook, is_book_build

# each file in js/ defines one function that takes the figure's root element
SCRIPT_FUNCTIONS = {
    "latent_explorer.js": "t2iLatentExplorer",
    "stepper.js": "t2iStepper",
    "codebook.js": "t2iCodebook",
    "levels.js": "t2iLevelMixer",
    "tokens.js": "t2iTokens",
    "temperature.js": "t2iTemperature",
    "masks.js": "t2iMasks",
    "plotly_figure.js": "t2iPlotlyFigure",
}


def is_live(live: bool | None) -> bool:
    """Whether to return a live widget: ``live`` if given, otherwise only in a
    kernel a reader drives (a notebook that is not the website build)."""
    return (in_notebook() and not is_book_build()) if live is None else live


def png_bytes(
    array: np.ndarray, width: int | None = None, optimize: bool = False
) -> bytes:
    """PNG file bytes of a uint8 image, optionally resized (nearest) to ``width``."""
    if width is not None:
        height = round(array.shape[0] * width / array.shape[1])
        array = np.asarray(
            Image.fromarray(array).resize((width, height), Image.NEAREST)
        )
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=optimize)
    return buffer.getvalue()


def png_base64(array: np.ndarray) -> str:
    """A compact PNG as base64 text, for data URLs in the static website."""
    return base64.b64encode(png_bytes(array, optimize=True)).decode()


def json_for_script(value, encoder: type[json.JSONEncoder] | None = None) -> str:
    """Compact JSON that cannot close the <script> element it sits in."""
    return json.dumps(value, separators=(",", ":"), cls=encoder).replace("</", "<\\/")


@functools.cache
def _script_text(name: str) -> str:
    return (resources.files(__package__) / "js" / name).read_text(encoding="utf-8")


def script_element(name: str, uid: str) -> str:
    """A <script> with the file ``js/<name>`` and a call of its function on the
    element ``uid``; it runs as the page reaches it, after that element."""
    call = f'{SCRIPT_FUNCTIONS[name]}(document.getElementById("{uid}"));'
    return f"<script>{_script_text(name)}\n{call}</script>"


def new_uid(css_class: str) -> str:
    """A page-unique element id, so several copies of a figure stay apart."""
    return f"{css_class}-{uuid.uuid4().hex[:8]}"


def static_figure(
    css_class: str, spec_class: str, body: str, spec: dict, script: str
) -> HTML:
    """A no-kernel figure: its markup, its precomputed data as JSON, and the
    script ``js/<script>`` that brings it to life."""
    uid = new_uid(css_class)
    return HTML(f"""
<div class="{css_class}" id="{uid}" style="font-family:sans-serif;font-size:14px">{body}
  <script type="application/json" class="{spec_class}">{json_for_script(spec)}</script>
</div>
{script_element(script, uid)}
""")
