import pytest
import torch

from t2i import metrics, sequences, shapes
from t2i.models.vqvae import VQVAE, VQVAEConfig
from t2i.quantize import VQConfig


@pytest.fixture(scope="module")
def scenes():
    return shapes.make_scenes(16, 32, "train")


def test_the_class_token_is_the_first_objects_colour_after_the_image_codes(scenes):
    codes = torch.randint(0, 8, (16, 4, 4))
    tokens = sequences.class_sequences(codes, scenes.attributes, num_codes=8)
    assert tokens.shape == (16, 17)
    assert torch.equal(tokens[:, 1:], codes.flatten(1))
    for table, token in zip(scenes.attributes, tokens[:, 0]):
        first_object = table[table[:, 0] >= 0][0]  # the first occupied cell
        assert token == 8 + first_object[1]


def test_an_empty_scene_has_no_first_object_and_no_class():
    empty = torch.full((1, 9, 4), -1)
    assert shapes.first_object(empty, "shape").tolist() == [-1]
    with pytest.raises(ValueError, match="needs an object"):
        sequences.class_sequences(torch.zeros(1, 2, 2, dtype=torch.long), empty, 8)


def test_tiles_put_four_scenes_side_by_side_and_come_apart_again(scenes):
    tiled = shapes.tile(scenes.images[:8])
    assert tiled.shape == (2, 3, 64, 64)
    assert torch.equal(tiled[0, :, :32, 32:], scenes.images[1])  # row-major
    assert torch.equal(tiled[1, :, 32:, :32], scenes.images[6])
    assert torch.equal(shapes.untile(tiled), scenes.images[:8])
    with pytest.raises(ValueError, match="multiple of 4"):
        shapes.tile(scenes.images[:6])


def test_windows_are_cut_at_the_same_place_from_every_grid():
    rows, cols = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    position = (100 * rows + cols).expand(3, 10, 10)
    shifted = position + 10_000
    a, b = sequences.random_windows(
        (position, shifted), 4, per_grid=5, generator=torch.Generator().manual_seed(0)
    )
    assert a.shape == (15, 4, 4) and torch.equal(b - a, torch.full_like(a, 10_000))
    steps_right = a[:, :, 1:] - a[:, :, :-1]
    steps_down = a[:, 1:, :] - a[:, :-1, :]
    assert (steps_right == 1).all() and (steps_down == 100).all()  # contiguous
    assert len(set(a[:, 0, 0].tolist())) > 3  # windows start in several places
    with pytest.raises(ValueError, match="does not fit"):
        sequences.random_windows((position,), 11, 1, torch.Generator())


def test_segmentation_sequences_hold_map_codes_then_image_codes(scenes):
    torch.manual_seed(0)
    image_vq = VQVAE(
        VQVAEConfig(
            in_channels=3,
            image_size=32,
            channels=(8, 8),
            vq=VQConfig(num_codes=8, code_dim=4),
        )
    )
    map_vq = VQVAE(
        VQVAEConfig(
            in_channels=6,
            image_size=32,
            channels=(8, 8),
            vq=VQConfig(num_codes=5, code_dim=4),
        )
    )
    tokens = sequences.segmentation_sequences(
        image_vq.codes(scenes.images),
        sequences.condition_tokens(map_vq, scenes.segmentation, num_codes=8),
        window=8,
    )
    assert tokens.shape == (16 // 4 * 4, 2 * 64)
    assert (tokens[:, :64] >= 8).all() and (tokens[:, :64] < 13).all()
    assert (tokens[:, 64:] < 8).all()


def test_foreground_iou_follows_the_map_of_the_picture(scenes):
    own = metrics.foreground_iou(scenes.images, scenes.segmentation)
    other = metrics.foreground_iou(scenes.images, scenes.segmentation.roll(1, 0))
    assert own.mean() > 0.8 and own.mean() > other.mean() + 0.3
    assert metrics.foreground_iou(scenes.images, scenes.segmentation)[0] <= 1
