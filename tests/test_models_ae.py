import pytest
import torch

from t2i.models.ae import AEConfig, AutoEncoder, pca_reconstruction


@pytest.fixture
def model():
    return AutoEncoder(AEConfig(channels=(8, 16), latent_dim=3))


def test_shapes_round_trip(model):
    x = torch.rand(5, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (5, 3)
    assert model.decode(z).shape == x.shape == model(x).shape


def test_wrong_input_shape_says_how_to_fix_it(model):
    with pytest.raises(
        ValueError, match=r"expected images of shape \(batch, 1, 28, 28\).*x\[:, None\]"
    ):
        model.encode(torch.rand(5, 28, 28))
    with pytest.raises(ValueError, match="image_size=32"):
        model.encode(torch.rand(5, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        model.decode(torch.rand(5, 2))


def test_image_size_must_survive_the_downsampling():
    with pytest.raises(ValueError, match="divisible"):
        AutoEncoder(AEConfig(image_size=30, channels=(8, 16)))


def test_gradient_reaches_every_encoder_and_decoder_weight(model):
    loss = model.loss((torch.rand(4, 1, 28, 28),))["loss"]
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_decoder_output_is_not_squashed(model):
    """A sigmoid on the output made MSE training collapse to black images."""
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in model.modules())


def test_pca_is_exact_with_all_components_and_improves_with_more():
    train = torch.rand(200, 1, 4, 4)
    test = torch.rand(20, 1, 4, 4)
    assert torch.allclose(pca_reconstruction(train, test, 16), test, atol=1e-4)
    errors = [
        torch.mean((pca_reconstruction(train, test, k) - test) ** 2).item()
        for k in (1, 4, 8, 16)
    ]
    assert errors == sorted(errors, reverse=True)


def test_pca_output_is_not_clamped_so_it_compares_with_the_raw_autoencoder():
    """The AE's test MSE is of its raw output; PCA's must be too (equal settings)."""
    torch.manual_seed(0)
    train = (torch.rand(200, 1, 4, 4) > 0.5).float()
    rebuilt = pca_reconstruction(train, train[:50], 2)
    assert rebuilt.min() < 0 or rebuilt.max() > 1
