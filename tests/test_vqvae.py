import math

import pytest
import torch

from t2i import configs
from t2i.models.vqvae import VQVAE, VQVAEConfig, bits_per_image
from t2i.quantize import VQConfig, kmeans, nearest_codes

SMALL = VQVAEConfig(channels=(8, 16), vq=VQConfig(num_codes=16, code_dim=4))


def test_an_image_becomes_a_grid_of_indices_and_back():
    torch.manual_seed(0)
    model = VQVAE(SMALL).eval()
    x = torch.rand(3, 1, 28, 28)
    quantized = model.encode(x)
    assert (
        quantized.indices.shape == (3, 7, 7) and quantized.indices.dtype == torch.long
    )
    assert model(x).shape == x.shape
    # decoding the indices gives exactly what the forward pass decodes
    assert torch.allclose(model.decode_indices(quantized.indices), model(x), atol=1e-6)
    assert bits_per_image(SMALL) == 49 * math.log2(16)


def test_reconstruction_gradient_reaches_the_encoder_through_the_quantiser():
    torch.manual_seed(0)
    model = VQVAE(SMALL).train()
    x = torch.rand(4, 1, 28, 28)
    out = model.loss((x,))
    model.zero_grad()
    out["reconstruction"].backward()
    first_conv = model.encoder[0].weight.grad
    assert first_conv is not None and first_conv.abs().sum() > 0
    # the reconstruction term alone does not train the codebook (only the VQ loss does)
    assert (
        model.quantizer.codebook.grad is None
        or model.quantizer.codebook.grad.abs().sum() == 0
    )


def test_codes_of_a_data_set_do_not_update_the_codebook():
    torch.manual_seed(0)
    config = VQVAEConfig(
        channels=(8, 16),
        vq=VQConfig(num_codes=16, code_dim=4, ema=True, restart_dead=True),
    )
    model = VQVAE(config).train()
    before = model.quantizer.codebook.detach().clone()
    grids = model.codes(torch.rand(10, 1, 28, 28), batch_size=4)
    assert grids.shape == (10, 7, 7) and model.training
    assert torch.equal(model.quantizer.codebook, before)


def test_bad_inputs_name_the_fix():
    model = VQVAE(SMALL)
    with pytest.raises(ValueError, match=r"\(batch, 1, 28, 28\)"):
        model.encode(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        model.decode_indices(torch.full((1, 7, 7), 16))
    with pytest.raises(ValueError, match=r"\(batch, 7, 7\)"):
        model.decode_indices(torch.zeros(1, 49, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        VQVAE(VQVAEConfig(image_size=30, channels=(8, 16)))


def test_kmeans_lowers_distortion_every_round_and_assigns_to_the_nearest_centre():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    points = torch.cat([torch.randn(50, 2) + c for c in centres])
    steps = kmeans(points, k=3, iterations=6, seed=1)
    distortion = [((points - c[a]) ** 2).sum(1).mean().item() for c, a in steps]
    assert all(b <= a + 1e-6 for a, b in zip(distortion, distortion[1:]))
    centres, assignment = steps[-1]
    assert torch.equal(assignment, nearest_codes(points, centres))
    assert distortion[-1] < 2.5  # three unit blobs found: about 2 per point
    with pytest.raises(ValueError, match="k must lie"):
        kmeans(points, k=0, iterations=1)


def test_prior_cache_key_follows_the_weights_of_the_vqvae_it_learns_from():
    """A VQ-VAE retrained under the same settings gets a new prior too."""
    from t2i.cache import run_dir

    vq = configs.vqvae("tiny")
    first, retrained = VQVAE(vq.model), VQVAE(vq.model)
    a = configs.pixelcnn_prior("tiny", vq, first)
    b = configs.pixelcnn_prior("tiny", vq, retrained)
    assert a.model == b.model and a.train == b.train
    codes = (torch.zeros(4, 7, 7, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    assert run_dir("prior", a, codes) != run_dir("prior", b, codes)
    assert a == configs.pixelcnn_prior("tiny", vq, first)
    assert a.model.num_codes == vq.model.vq.num_codes and a.model.grid_size == 7


def test_small_scale_is_cifar_with_the_papers_settings():
    small = configs.vqvae("small")
    assert small.data.name == "cifar10"
    assert (small.model.in_channels, small.model.image_size, small.model.grid_size) == (
        3,
        32,
        8,
    )
    assert (small.model.vq.num_codes, small.model.vq.code_dim, small.model.vq.beta) == (
        512,
        64,
        0.25,
    )


def test_small_scale_models_run_on_colour_images_and_their_code_grids():
    from t2i.models.pixelcnn import GatedPixelCNN

    vq_exp = configs.vqvae("small")
    model = VQVAE(vq_exp.model).eval()
    x = torch.rand(2, 3, 32, 32)
    grids = model.codes(x)
    assert grids.shape == (2, 8, 8) and model(x).shape == x.shape
    prior_exp = configs.pixelcnn_prior("small", vq_exp, model)
    prior = GatedPixelCNN(prior_exp.model).eval()
    assert prior.logits(grids, torch.tensor([0, 9])).shape == (2, 512, 8, 8)
