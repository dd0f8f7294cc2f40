import pytest
import torch

from t2i import shapes
from t2i.data import DataConfig, load, load_scenes


@pytest.fixture(scope="module")
def scenes():
    return shapes.make_scenes(300, size=32)


def test_a_scene_depends_only_on_its_seed_and_index(scenes):
    again = shapes.make_scenes(15, size=32)
    assert torch.equal(again.images, scenes.images[:15])
    later = shapes.make_scenes(5, size=32, start=10)
    whole = scenes[10:15]
    assert torch.equal(later.images, whole.images)
    assert torch.equal(later.segmentation, whole.segmentation)
    assert torch.equal(later.attributes, whole.attributes)
    assert later.captions == whole.captions
    other = shapes.make_scenes(15, size=32, seed=1)
    assert not torch.equal(other.attributes, scenes.attributes[:15])


def test_scenes_hold_one_to_three_objects_in_their_cells(scenes):
    assert scenes.images.shape == (300, 3, 32, 32)
    assert scenes.images.dtype == torch.float32
    assert 0 <= scenes.images.min() and scenes.images.max() <= 1
    occupied = scenes.attributes[..., 0] >= 0
    counts = occupied.sum(-1)
    assert counts.min() == 1 and counts.max() == shapes.MAX_OBJECTS
    # empty cells are -1 in all four columns, occupied ones in range everywhere
    assert (scenes.attributes[~occupied] == -1).all()
    limits = torch.tensor(
        [len(shapes.SHAPES), len(shapes.COLOURS), len(shapes.SIZES), 3]
    )
    assert (
        (scenes.attributes[occupied] >= 0) & (scenes.attributes[occupied] < limits)
    ).all()


def test_segmentation_agrees_with_the_attributes(scenes):
    size = 32
    centre = (torch.arange(size) + 0.5) * 3 / size  # pixel centres in cell units
    row = centre.floor().long()[:, None].expand(size, size)
    col = centre.floor().long()[None, :].expand(size, size)
    cell_of_pixel = row * 3 + col
    colours = torch.tensor(list(shapes.COLOURS.values()))
    for image, labels, table in zip(
        scenes.images[:100], scenes.segmentation[:100], scenes.attributes[:100]
    ):
        for cell in range(9):
            here = labels[cell_of_pixel == cell]
            if table[cell, 0] < 0:
                assert (here == 0).all(), "an empty cell has object pixels"
                continue
            shape, colour, _, texture = table[cell].tolist()
            assert (here == shape + 1).sum() > 5
            assert ((here == 0) | (here == shape + 1)).all()
            if texture == 0:  # solid: fully covered pixels are the named colour
                mask = (labels == shape + 1) & (cell_of_pixel == cell)
                error = (image[:, mask].T - colours[colour]).abs().max(-1).values
                assert error.min() < 0.01
        # no object pixels outside occupied cells' own shape
        assert set(labels.unique().tolist()) <= {0} | {
            s + 1 for s in table[:, 0].tolist() if s >= 0
        }


def test_the_background_is_never_close_to_an_object_colour(scenes):
    colours = torch.tensor(list(shapes.COLOURS.values()))
    near_object = torch.nn.functional.max_pool2d(
        (scenes.segmentation > 0).float()[:, None], 5, stride=1, padding=2
    )[:, 0]  # object pixels and their anti-aliased edges
    background = scenes.images.permute(0, 2, 3, 1)[near_object == 0]
    nearest = torch.cdist(background[::7], colours).min().item()
    assert nearest > 0.5


def test_held_out_pairs_only_in_the_held_out_split():
    def pairs(split):
        table = shapes.make_scenes(400, size=16, split=split).attributes
        occupied = table[..., 0] >= 0
        colour_names = list(shapes.COLOURS)
        found = [
            {(colour_names[c], shapes.SHAPES[s]) for s, c in t[o][:, :2].tolist()}
            for t, o in zip(table, occupied)
        ]
        return [f & set(shapes.HELD_OUT) for f in found]

    assert not any(pairs("train")) and not any(pairs("test"))
    assert all(pairs("held_out"))
    train = shapes.make_scenes(50, size=16, split="train").attributes
    test = shapes.make_scenes(50, size=16, split="test").attributes
    assert not torch.equal(train, test)


def test_captions_round_trip_in_every_style(scenes):
    for table in scenes.attributes:
        for style in range(shapes.CAPTION_STYLES):
            text = shapes.caption(table, style)
            assert torch.equal(shapes.parse_caption(text), table), text
    for text, table in zip(scenes.captions, scenes.attributes):
        assert torch.equal(shapes.parse_caption(text), table)
    assert len({c.split()[0] for c in scenes.captions}) >= 3  # styles are mixed


def test_a_caption_names_every_object(scenes):
    text = shapes.caption(scenes.attributes[0], 0)
    for cell, row in enumerate(scenes.attributes[0].tolist()):
        if row[0] >= 0:
            assert shapes.POSITIONS[cell] in text
            assert shapes.SHAPES[row[0]] in text


@pytest.mark.parametrize(
    "text, message",
    [
        ("a small red striped hexagon at the top left", "unknown word 'hexagon'"),
        ("a small red striped circle", r"incomplete object \(no position\)"),
        ("a small red striped circle at the top", "unknown word 'top'"),
        ("a small large red striped circle at the top left", "two sizes"),
        ("", "incomplete object"),
    ],
)
def test_bad_captions_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message) as error:
        shapes.parse_caption(text)
    if "unknown" in message:
        assert "circle" in str(error.value) and "top left" in str(error.value)


@pytest.mark.parametrize("size", [8, 0, 32.0, "32"])
def test_bad_sizes_name_the_fix(size):
    with pytest.raises(ValueError, match="size=32"):
        shapes.make_scenes(4, size=size)


def test_unknown_split_lists_the_splits():
    with pytest.raises(ValueError, match="'held_out'"):
        shapes.make_scenes(4, split="validation")


def test_data_config_loads_shapes_world():
    config = DataConfig(name="shapes", n_train=20, n_test=10)
    images, attributes = load(config, "train")
    assert images.shape == (20, 3, 32, 32) and attributes.shape == (20, 9, 4)
    held = load_scenes(config, "held_out")
    assert len(held) == 10 and len(held.captions) == 10
    big = load(DataConfig(name="shapes", image_size=64, n_test=3), "test")[0]
    assert big.shape == (3, 3, 64, 64)
    with pytest.raises(ValueError, match="'held_out'"):
        load(config, "valid")
    with pytest.raises(ValueError, match="use 'train' or 'test'"):
        load(DataConfig(source="sample"), "held_out")
    with pytest.raises(ValueError, match="size=32"):
        DataConfig(name="shapes", image_size=8)
    with pytest.raises(ValueError, match="leave it None"):
        DataConfig(image_size=32)


def test_scenes_index_like_a_batch(scenes):
    one = scenes[3]
    assert len(one) == 1 and one.captions == [scenes.captions[3]]
    picked = scenes[[0, 2]]
    assert torch.equal(picked.attributes, scenes.attributes[[0, 2]])
    assert picked.captions == [scenes.captions[0], scenes.captions[2]]
