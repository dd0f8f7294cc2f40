"""Perceptual distance (chapter 5): compare two pictures through the eyes of a
frozen network instead of pixel by pixel.

    features: image (3, H, W) -> maps f_l (C_l, H_l, W_l), l = 1 .. L
    f_hat = f / (||f||_2 + 1e-10)          each pixel's feature vector, unit length
    d(x, y) = sum_l  mean_{h, w}  sum_c  w_{l,c} (f_hat_x - f_hat_y)^2_{c,h,w}

A one-pixel shift of an edge costs a lot in squared error and little here:
the features say "there is an edge" at almost the same places. Zhang et al.
found that such distances through an ImageNet network agree with people
judging which of two distortions looks closer, and better still with channel
weights w_l >= 0 fitted to those judgements (LPIPS, "lin" layers: a 1 x 1
convolution without bias). With all w = 1 the distance is their "baseline".
VQGAN trains its decoder through LPIPS-VGG16 (taming-transformers'
``LPIPS``), so the gradient must reach x while the network itself stays
frozen: no parameter learns, and BatchNorm statistics never move.

Two backbones:

* :func:`from_lpips`: the real one (VGG16 or AlexNet with the lpips package's
  lin weights). The backbone comes from torchvision's ImageNet download, or,
  offline, from a checkpoint file you bring, checked by SHA-256.
* :func:`from_judge`: the book's own attribute judge as backbone, uniform
  weights: the tiny build has no internet and no ImageNet network. It is a
  much weaker eye (trained on shapes world, not on photos), and
  :attr:`Perceptual.name` says which one produced the numbers.

References: Zhang, Isola, Efros, Shechtman and Wang, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric", arXiv:1801.03924;
Johnson, Alahi and Fei-Fei, "Perceptual Losses for Real-Time Style Transfer
and Super-Resolution", arXiv:1603.08155; Esser, Rombach and Ommer, "Taming
Transformers for High-Resolution Image Synthesis", arXiv:2012.09841.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from pathlib import Path

import torch
from einops import reduce
from torch import nn

from ..checkpoints import sha256_of
from .judge import AttributeJudge

EPS = 1e-10  # LPIPS's, keeps an all-zero feature vector at zero
BACKBONES = {"vgg": "vgg16", "alex": "alexnet"}  # lpips' names -> torchvision's
IMAGENET = {  # the weights lpips' tv.vgg16(pretrained=True) asks torchvision for
    "vgg": "VGG16_Weights.IMAGENET1K_V1",  # .../vgg16-397923af.pth
    "alex": "AlexNet_Weights.IMAGENET1K_V1",  # .../alexnet-owt-7be5be79.pth
}


def unit_normalise(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> each pixel's C-vector divided by its length.

    ``vector_norm`` rather than lpips' ``sqrt(sum f^2)``: at a zero vector (a
    pixel where every ReLU is off) its gradient is finite, sqrt's is NaN.
    """
    norm = torch.linalg.vector_norm(features, dim=1, keepdim=True)
    return features / (norm + EPS)


class Perceptual(nn.Module):
    """A frozen feature extractor and per-layer channel weights.

    ``features`` maps images in [0, 1] ``(B, 3, H, W)`` to a list of feature
    maps, one per entry of ``weights`` (layer name -> ``(C_l,)``, all >= 0).
    ``name`` says which network this is, for the run info.
    """

    def __init__(
        self, features: nn.Module, weights: dict[str, torch.Tensor], name: str
    ):
        super().__init__()
        if not weights:
            raise ValueError("Perceptual needs at least one layer in weights")
        self.features = features
        self.layers = tuple(weights)
        for layer, w in weights.items():
            w = torch.as_tensor(w, dtype=torch.float32).detach().flatten()
            if (w < 0).any():
                raise ValueError(
                    f"channel weights of layer {layer!r} must be >= 0 (a negative "
                    f"weight makes distances negative); clamp them with "
                    f"w.clamp(min=0) as LPIPS does"
                )
            self.register_buffer(f"weight_{layer}", w.clone())
        self.name = name
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Perceptual:
        """Always eval mode: a loss must not move BatchNorm statistics or drop out
        features, even inside a model that calls ``.train()`` on its children."""
        return super().train(False)

    def weights(self) -> list[torch.Tensor]:
        """The channel weights, one ``(C_l,)`` tensor per layer."""
        return [getattr(self, f"weight_{layer}") for layer in self.layers]

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1], twice -> (B, L): each layer's share."""
        check_pair(x, y)
        fx, fy = self.features(x), self.features(y)
        if len(fx) != len(self.layers):
            raise ValueError(
                f"the feature extractor returned {len(fx)} maps for "
                f"{len(self.layers)} weighted layers {self.layers}; give one "
                f"weight vector per returned map"
            )
        per_layer = []
        for layer, a, b, w in zip(self.layers, fx, fy, self.weights()):
            if a.shape[1] != len(w):
                raise ValueError(
                    f"layer {layer!r} has {a.shape[1]} channels but {len(w)} "
                    f"weights; give one weight per channel"
                )
            diff = (unit_normalise(a) - unit_normalise(b)) ** 2  # (B, C, H, W)
            per_channel = reduce(diff, "b c h w -> b c", "mean")  # mean over space
            per_layer.append(per_channel @ w)  # (B,): weighted sum over channels
        return torch.stack(per_layer, dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1], twice -> (B,) distances, summed over
        layers; differentiable in both images."""
        return self.layer_distances(x, y).sum(dim=1)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layers={self.layers}"


def check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise an error that says how to fix two batches that cannot be compared."""
    for which, t in (("x", x), ("y", y)):
        if not torch.is_tensor(t) or not t.is_floating_point():
            raise TypeError(
                f"{which} must be a floating-point tensor of images in [0, 1], got "
                f"{getattr(t, 'dtype', type(t).__name__)}; convert 8-bit images "
                f"with x.float() / 255"
            )
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(
                f"{which} must have shape (batch, 3, height, width), got "
                f"{tuple(t.shape)}; add the batch axis with x[None] or repeat a "
                f"grey channel with x.expand(-1, 3, -1, -1)"
            )
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape to be compared, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}; resize one to the other"
        )


# --- the real thing: LPIPS -------------------------------------------------


class LpipsTrunk(nn.Module):
    """lpips' input scaling and backbone: images in [0, 1] -> its 5 ReLU maps."""

    def __init__(self, scaling: nn.Module, net: nn.Module):
        super().__init__()
        self.scaling, self.net = scaling, net

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        # [0, 1] -> [-1, 1] (what lpips expects), then lpips 0.1's shift and scale
        return list(self.net(self.scaling(2 * images - 1)))


def backbone_state(
    backbone_weights: str | Path | dict[str, torch.Tensor],
    sha256: str | None,
    net: str,
) -> tuple[dict[str, torch.Tensor], str]:
    """A backbone state dict and where it came from, from a file or a dict."""
    if isinstance(backbone_weights, dict):
        if sha256 is not None:
            raise ValueError(
                "sha256 checks a file; pass backbone_weights as a path, or drop sha256"
            )
        return backbone_weights, "given state dict"
    path = Path(backbone_weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"no backbone weights at {path}; copy torchvision's {BACKBONES[net]} "
            f"checkpoint there (online, torchvision keeps it in "
            f"~/.cache/torch/hub/checkpoints)"
        )
    if sha256 is not None:
        expected = sha256.lower()
        if len(expected) < 8:
            raise ValueError(
                f"sha256 {sha256!r} is too short to check anything; give at least "
                f"the 8 hex digits in torchvision's file name, better all 64"
            )
        # torchvision checks only at download time, and only the 8 hex digits
        # in the file name (vgg16-397923af.pth: load_state_dict_from_url with
        # check_hash=True compares the SHA-256's prefix; a cached file is never
        # checked again, and is read with weights_only=False). We check the file
        # every time it is loaded, and read only tensors.
        digest = sha256_of(path)
        if not digest.startswith(expected):
            import torchvision

            url = torchvision.models.get_weight(IMAGENET[net]).url
            raise ValueError(
                f"backbone weights {path} have SHA-256 {digest}, expected "
                f"{expected}: the file is damaged or a different checkpoint. "
                f"Delete it and download {url} again, or pass the sha256 of "
                f"the file you mean to use"
            )
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state, path.name


def from_lpips(
    net: str = "vgg",
    backbone_weights: str | Path | dict[str, torch.Tensor] | None = None,
    sha256: str | None = None,
) -> Perceptual:
    """LPIPS with the lpips package's 0.1 lin weights (they ship inside it).

    Without ``backbone_weights`` the backbone's ImageNet weights come from
    torchvision's download (needs internet once; cached after). Offline, pass
    a checkpoint: a file (read with ``weights_only=True``) or a state dict, in
    torchvision's layout (``features.0.weight``, as in vgg16-397923af.pth) or
    lpips' (``slice1.0.weight``). ``sha256`` (all 64 hex digits, or at least
    the 8 in torchvision's file name) is checked against the file first.
    """
    if net not in BACKBONES:
        raise ValueError(
            f"net must be one of {sorted(BACKBONES)} (the backbones lpips has lin "
            f"weights for), got {net!r}"
        )
    try:
        import lpips
    except ImportError as error:
        raise ImportError(
            "from_lpips needs the lpips package: pip install lpips"
        ) from error
    offline = backbone_weights is not None
    state, source = None, "torchvision ImageNet weights"
    if offline:
        state, source = backbone_state(backbone_weights, sha256, net)
    with warnings.catch_warnings():  # lpips still calls tv.vgg16(pretrained=...)
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(
            net=net, version="0.1", pretrained=True, pnet_rand=offline, verbose=False
        )
    if offline:
        try:
            model.net.load_state_dict(to_lpips_layout(state, model.net))
        except RuntimeError as error:
            raise ValueError(
                f"backbone weights from {source} do not fit lpips' {BACKBONES[net]} "
                f"trunk; pass the net they belong to (net='vgg' for vgg16-*.pth, "
                f"net='alex' for alexnet-*.pth). torch says: {error}"
            ) from error
    weights = {
        f"lpips{i}": lin.model[-1].weight.detach().flatten()  # (1, C, 1, 1) -> (C,)
        for i, lin in enumerate(model.lins)
    }
    return Perceptual(
        LpipsTrunk(model.scaling_layer, model.net),
        weights,
        name=f"LPIPS ({BACKBONES[net]} from {source}, lpips 0.1 weights)",
    )


def to_lpips_layout(
    state: dict[str, torch.Tensor], trunk: nn.Module
) -> dict[str, torch.Tensor]:
    """torchvision keys ``features.<i>.<p>`` -> lpips' ``slice<k>.<i>.<p>``.

    lpips keeps torchvision's layer numbers inside its slices, so the layer
    number says which slice; the classifier's weights are not needed.
    """
    if not any(key.startswith("features.") for key in state):
        return state  # already lpips' layout
    slice_of = {key.split(".")[1]: key.split(".")[0] for key in trunk.state_dict()}
    converted = {}
    for key, value in state.items():
        part, index, *rest = key.split(".")
        if part == "features" and index in slice_of:
            converted[".".join([slice_of[index], index, *rest])] = value
    return converted


# --- offline: the book's attribute judge as the eye ------------------------


class JudgeFeatures(nn.Module):
    """Copies of the judge's convolutional layers, applied to the whole image;
    returns every ReLU's output: the form path's, then the colour path's."""

    def __init__(self, judge: AttributeJudge):
        super().__init__()

        def convolutional(path: nn.Sequential) -> nn.Sequential:
            kinds = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU)
            leading = itertools.takewhile(lambda m: isinstance(m, kinds), path)
            # copies: freezing them must not freeze the judge someone else trains
            return nn.Sequential(*(copy.deepcopy(m) for m in leading))

        self.form, self.colour = convolutional(judge.form), convolutional(judge.colour)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for path in (self.form, self.colour):
            h = images
            for layer in path:
                h = layer(h)
                if isinstance(layer, nn.ReLU):
                    maps.append(h)
        return maps


def from_judge(judge: AttributeJudge) -> Perceptual:
    """Perceptual distance through a (trained) attribute judge's conv features,
    all channel weights 1 (LPIPS's baseline); the judge itself is not touched."""
    features = JudgeFeatures(judge)
    weights = {}
    for path_name, path in (("form", features.form), ("colour", features.colour)):
        convs = [m for m in path if isinstance(m, nn.Conv2d)]
        for i, conv in enumerate(convs, start=1):
            weights[f"{path_name}{i}"] = torch.ones(conv.out_channels)
    return Perceptual(
        features,
        weights,
        name="judge features (book-trained attribute judge, uniform weights)",
    )
