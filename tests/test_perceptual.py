import hashlib
import warnings

import pytest
import torch
from torch import nn

from t2i.models.judge import AttributeJudge, JudgeConfig
from t2i.models.perceptual import Perceptual, from_judge, from_lpips, unit_normalise

lpips = pytest.importorskip("lpips")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These networks are tiny: one thread is faster than fighting for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def judge():
    """A small random judge whose BatchNorm statistics are not the defaults, so
    that using them (eval mode) or not (train mode) changes the numbers."""
    judge = AttributeJudge(JudgeConfig(image_size=32, channels=(8, 16), hidden=16))
    for m in judge.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return judge


@pytest.fixture
def images():
    return torch.rand(2, 4, 3, 32, 32)


@pytest.fixture(scope="module")
def alex(tmp_path_factory):
    """lpips' own AlexNet LPIPS with a random trunk (no download), and that
    trunk's weights saved to a file."""
    torch.manual_seed(1)
    with warnings.catch_warnings():  # lpips calls tv.alexnet(pretrained=False)
        warnings.simplefilter("ignore", UserWarning)
        reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    path = tmp_path_factory.mktemp("weights") / "alex.pth"
    torch.save(reference.net.state_dict(), path)
    return reference, path


def test_a_distance_is_zero_to_itself_symmetric_and_positive(judge, images):
    perceptual = from_judge(judge)
    x, y = images
    assert perceptual(x, x).shape == (4,)
    assert torch.equal(perceptual(x, x), torch.zeros(4))
    assert torch.allclose(perceptual(x, y), perceptual(y, x))
    assert (perceptual(x, y) > 0).all()
    assert perceptual.layer_distances(x, y).shape == (4, 4)
    assert perceptual.layers == ("form1", "form2", "colour1", "colour2")
    assert "attribute judge" in perceptual.name


def test_the_gradient_reaches_the_image(judge, images):
    perceptual = from_judge(judge)
    x, y = images
    x.requires_grad_(True)
    perceptual(x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # a pixel whose feature vector is all zero gets a finite gradient, not NaN
    f = torch.zeros(1, 4, 2, 2, requires_grad=True)
    unit_normalise(f).sum().backward()
    assert torch.isfinite(f.grad).all()


def test_it_stays_frozen_and_leaves_the_judge_trainable(judge, images):
    perceptual = from_judge(judge)
    assert not any(p.requires_grad for p in perceptual.parameters())
    before = {k: v.clone() for k, v in perceptual.state_dict().items()}
    perceptual.train()
    assert not any(m.training for m in perceptual.modules())
    perceptual(*images)
    after = perceptual.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats stay
    # the judge is copied, not shared: it still trains, and training it
    # does not change the loss
    assert all(p.requires_grad for p in judge.parameters())
    assert judge.training
    with torch.no_grad():
        judge.form[0].weight.add_(1.0)
    assert torch.equal(
        perceptual.state_dict()["features.form.0.weight"],
        before["features.form.0.weight"],
    )


def test_the_judge_variant_is_normalise_diff_mean(judge, images):
    """LPIPS's baseline by hand: unit vectors per pixel, squared difference
    summed over channels, mean over space, sum over layers."""
    x, y = images
    judge.eval()
    f, c = judge.form, judge.colour

    def maps(image):
        form1 = f[2](f[1](f[0](image)))
        form2 = f[5](f[4](f[3](form1)))
        colour1 = c[1](c[0](image))
        colour2 = c[3](c[2](colour1))
        return [form1, form2, colour1, colour2]

    def unit(t):
        return t / (t.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)

    with torch.no_grad():
        by_hand = torch.stack(
            [
                (unit(a) - unit(b)).pow(2).sum(1).mean((1, 2))
                for a, b in zip(maps(x), maps(y))
            ],
            dim=1,
        )
    perceptual = from_judge(judge)
    assert torch.allclose(perceptual.layer_distances(x, y), by_hand, atol=1e-6)
    assert torch.allclose(perceptual(x, y), by_hand.sum(1), atol=1e-6)


def test_from_lpips_with_a_given_backbone_matches_lpips(alex):
    reference, path = alex
    x, y = torch.rand(2, 3, 3, 64, 64)
    with torch.no_grad():
        expected, per_layer = reference(x, y, retPerLayer=True, normalize=True)
    expected = expected.flatten()
    per_layer = torch.cat([r.flatten(1) for r in per_layer], dim=1)  # (B, 5)

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for short in (digest, digest[:8]):
        perceptual = from_lpips("alex", path, sha256=short)
        assert "alexnet from alex.pth, lpips 0.1 weights" in perceptual.name
        assert not any(p.requires_grad for p in perceptual.parameters())
        assert torch.allclose(perceptual(x, y), expected, rtol=1e-5, atol=1e-7)
    assert torch.allclose(perceptual.layer_distances(x, y), per_layer, rtol=1e-5)

    # torchvision's layout (features.<i>.*, with a classifier) gives the same
    torchvision_layout = {
        "features." + key.split(".", 1)[1]: value
        for key, value in reference.net.state_dict().items()
    } | {"classifier.1.weight": torch.zeros(4096, 9216)}
    perceptual = from_lpips("alex", torchvision_layout)
    assert torch.allclose(perceptual(x, y), expected, rtol=1e-5, atol=1e-7)


def test_without_weights_from_lpips_asks_for_imagenet_and_says_so(monkeypatch):
    """The online path: lpips builds its trunk from torchvision's download. Here
    the download is replaced by a random trunk, the call is what is checked."""
    calls = []

    def offline_lpips(**kwargs):
        calls.append(kwargs)
        return real_lpips(**kwargs | {"pnet_rand": True})

    real_lpips = lpips.LPIPS
    monkeypatch.setattr(lpips, "LPIPS", offline_lpips)
    perceptual = from_lpips("alex")
    assert calls[0]["pnet_rand"] is False and calls[0]["pretrained"] is True
    assert perceptual.name == (
        "LPIPS (alexnet from torchvision ImageNet weights, lpips 0.1 weights)"
    )


def test_from_lpips_says_how_to_fix_bad_weights(alex):
    reference, path = alex
    with pytest.raises(ValueError, match="Delete it and download .*alexnet"):
        from_lpips("alex", path, sha256="0" * 64)
    with pytest.raises(ValueError, match="net='alex'"):
        state = dict(reference.net.state_dict())
        state.pop("slice5.10.weight")
        from_lpips("alex", state)
    with pytest.raises(ValueError, match="pass backbone_weights as a path"):
        from_lpips("alex", reference.net.state_dict(), sha256="0" * 64)
    with pytest.raises(ValueError, match="one of"):
        from_lpips("resnet", path)
    with pytest.raises(FileNotFoundError, match="copy torchvision"):
        from_lpips("alex", path.with_name("missing.pth"))


def test_bad_inputs_and_weights_name_the_fix(judge, images):
    perceptual = from_judge(judge)
    x, y = images
    with pytest.raises(ValueError, match="same shape"):
        perceptual(x, y[:, :, :16])
    with pytest.raises(TypeError, match="255"):
        perceptual((x * 255).byte(), y)
    with pytest.raises(ValueError, match=">= 0"):
        Perceptual(nn.Identity(), {"pixels": -torch.ones(3)}, name="bad")
