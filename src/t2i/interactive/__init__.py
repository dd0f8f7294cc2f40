"""Interactive figures that work in two places.

* On the static website there is no kernel, so every figure precomputes what
  its controls can reach (e.g. the decoded image at each slider position,
  packed into one sprite sheet) and returns HTML with a little JavaScript, from
  the ``js/`` folder, that shows the right part. Nothing is fetched from the
  network; plotly.js comes from the site's own ``_static`` folder.
* In a live kernel (JupyterLab, Colab) the same function returns an ipywidgets
  control that calls the model on every move.

The choice is automatic (:func:`t2i.env.is_book_build`, :func:`t2i.env.in_notebook`)
and can be forced with ``live=True`` / ``live=False``.
"""

from .codebook import codebook_explorer
from .core import png_base64, png_bytes
from .latent import LatentPanel, codes_image, latent_explorer, scatter_image
from .levels import level_mixer
from .masks import mask_viewer
from .plots import loss_curves, plotly_figure
from .steering import live_steering
from .stepper import image_stepper
from .temperature import TemperatureFrame, temperature_explorer, temperature_frame
from .tokens import token_reading

__all__ = [
    "LatentPanel",
    "TemperatureFrame",
    "codebook_explorer",
    "codes_image",
    "image_stepper",
    "latent_explorer",
    "level_mixer",
    "live_steering",
    "loss_curves",
    "mask_viewer",
    "plotly_figure",
    "png_base64",
    "png_bytes",
    "scatter_image",
    "temperature_explorer",
    "temperature_frame",
    "token_reading",
]
