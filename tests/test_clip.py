from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from t2i import shapes
from t2i.cache import get_or_train
from t2i.checkpoints import sha256_of
from t2i.models import clip as clip_module
from t2i.models.clip import (
    ClipConfig,
    SmallClip,
    best_of,
    clip_data,
    load_pretrained,
    rerank,
    tiny_clip_config,
    zero_shot_accuracy,
)
from t2i.text import CaptionTokenizer
from t2i.train import TrainConfig, fit


@pytest.fixture(scope="module")
def tokenizer():
    return CaptionTokenizer(34)


@pytest.fixture(scope="module")
def scenes():
    return shapes.make_scenes(24, size=32, split="test")


def small(tokenizer) -> ClipConfig:
    return ClipConfig(
        vocab_size=tokenizer.vocab_size,
        context_length=36,
        end_id=tokenizer.end_id,
        embed_dim=16,
        patch_size=8,
        vision_width=32,
        vision_layers=1,
        vision_heads=2,
        text_width=32,
        text_layers=1,
        text_heads=2,
    )


def test_the_loss_is_finite_and_falls_on_a_batch_it_overfits(tokenizer, scenes):
    torch.manual_seed(0)
    model = SmallClip(small(tokenizer))
    data = clip_data(scenes[:8], tokenizer, negatives=2)
    assert [tuple(t.shape) for t in data] == [(8, 3, 32, 32), (8, 36), (8, 2, 36)]
    config = TrainConfig(
        steps=40, batch_size=8, lr=3e-3, log_every=10, checkpoint_every=40
    )
    history = fit(model, data, config)
    first, last = history["loss"][0], history["loss"][-1]
    assert all(torch.isfinite(torch.tensor(history["loss"])))
    assert last < 0.6 * first, (first, last)
    metrics = model.loss(data)
    assert set(metrics) == {"loss", "accuracy", "negative_accuracy", "temperature"}
    assert metrics["accuracy"] >= 0.5  # chance: 1 / 8
    assert set(model.loss(data[:2])) == {"loss", "accuracy", "temperature"}


def test_similarity_and_score_shapes(tokenizer, scenes):
    model = SmallClip(small(tokenizer))
    tokens = tokenizer.clip_tokens(scenes.captions[:5], 36)
    similarity = model.similarity(scenes.images[:3], tokens)
    assert similarity.shape == (3, 5) and similarity.abs().max() <= 1 + 1e-5
    assert torch.allclose(
        model.score(scenes.images[:3], tokens[:3]), similarity.diagonal(), atol=1e-5
    )
    features = model.image_features(scenes.images[:3])
    assert torch.allclose(features.norm(dim=-1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="similarity"):
        model.score(scenes.images[:3], tokens)
    with pytest.raises(ValueError, match="clip_tokens"):
        model.similarity(scenes.images[:3], tokenizer.encode(scenes.captions[:5]))


def test_the_text_is_pooled_at_the_end_token_not_the_largest_id(tokenizer, scenes):
    model = SmallClip(small(tokenizer)).eval()
    tokens = tokenizer.clip_tokens(scenes.captions[:4], 36)
    assert (tokens.max(-1).values > tokenizer.end_id).all()  # pads outrank end
    seen = {}
    model.clip.ln_final.register_forward_hook(lambda m, i, out: seen.update(x=out))
    pooled = model.clip.encode_text(tokens)  # before normalising
    end = (tokens == tokenizer.end_id).int().argmax(-1)
    expected = seen["x"][torch.arange(4), end] @ model.clip.text_projection
    assert torch.allclose(pooled, expected, atol=1e-5)
    # the causal mask hides the padding from the end token: any padding will do
    repadded = tokens.clone()
    repadded[repadded == tokenizer.clip_pad_id] = tokenizer.pad_id(7)
    assert torch.allclose(model.encode_texts(repadded), model.encode_texts(tokens))


def test_rerank_returns_the_argmax():
    scores = torch.tensor([[0.1, 0.9, 0.3], [0.5, -1.0, 0.7]])
    assert rerank(scores).tolist() == [1, 2]
    random = torch.randn(6, 10)
    assert rerank(random).tolist() == [
        max(range(10), key=r.__getitem__) for r in random
    ]
    with pytest.raises(ValueError, match="captions, samples"):
        rerank(torch.randn(10))


def test_best_of_keeps_the_picture_its_caption_matches(tokenizer, monkeypatch):
    model = SmallClip(small(tokenizer))
    # a stand-in CLIP: a picture's features are its corner colour, a caption's
    # the colour channel its first token names, so the best match is known
    monkeypatch.setattr(
        model, "image_features", lambda x: F.normalize(x[:, :, 0, 0], dim=-1)
    )
    monkeypatch.setattr(model, "text_features", lambda t: F.one_hot(t[:, 0], 3).float())
    c, n = 3, 5
    images = torch.rand(c, n, 3, 32, 32) * 0.2
    wanted = torch.tensor([4, 0, 2])
    images[torch.arange(c), wanted, torch.arange(c)] = 1.0  # strong in channel c
    tokens = torch.arange(c)[:, None].repeat(1, 36)
    chosen, index, scores = best_of(model, tokens, images)
    assert index.tolist() == wanted.tolist()
    assert scores.shape == (c, n)
    assert torch.equal(chosen, images[torch.arange(c), wanted])
    with pytest.raises(ValueError, match="samples"):
        best_of(model, tokens, images[0])


def table_embedding(tables: torch.Tensor) -> torch.Tensor:
    """One-hot of every cell's four attributes: equal only for equal tables."""
    one_hot = F.one_hot(tables.flatten(1) + 1, 7).flatten(1).float()
    return F.normalize(one_hot, dim=-1)


def test_zero_shot_accuracy_of_an_oracle_and_of_its_opposite(tokenizer, scenes):
    model = SmallClip(small(tokenizer))
    result = zero_shot_accuracy(model, tokenizer, scenes)
    assert set(result) == {"shape", "colour", "size", "texture", "position"}
    assert all(0 <= v <= 1 for v in result.values())

    def read_captions(tokens):
        tables = [shapes.parse_caption(c) for c in tokenizer.decode(tokens)]
        return table_embedding(torch.stack(tables))

    # an oracle that reads every table exactly: always right
    model.image_features = lambda images: table_embedding(scenes.attributes)
    model.text_features = read_captions
    assert zero_shot_accuracy(model, tokenizer, scenes) == dict.fromkeys(result, 1.0)
    # and one that prefers any wrong caption: never right
    model.text_features = lambda tokens: -read_captions(tokens)
    wrong = zero_shot_accuracy(model, tokenizer, scenes, attributes=("colour", "size"))
    assert wrong == {"colour": 0.0, "size": 0.0}
    with pytest.raises(ValueError, match="attributes must be"):
        zero_shot_accuracy(model, tokenizer, scenes, attributes=("weight",))


def test_hard_negatives_change_exactly_one_thing(scenes):
    wrong = clip_module.hard_negatives(scenes, 3, seed=1)
    for table, caption, negatives in zip(scenes.attributes, scenes.captions, wrong):
        style = clip_module.caption_style(table.numpy(), caption)
        assert shapes.caption(table, style) == caption
        for negative in negatives:
            other = shapes.parse_caption(negative)
            assert shapes.caption(other, style) == negative  # the same style
            differs = (other != table).any(-1).sum().item()
            assert differs in (1, 2)  # an attribute changed, or an object moved


def test_hard_negatives_never_make_a_held_out_pair(scenes):
    """Else CLIP learns that "a blue circle" is always the wrong caption."""
    wrong = clip_module.hard_negatives(scenes, 8, attributes=("shape", "colour"))
    pairs = {
        (shapes.COLOUR_NAMES[row[1]], shapes.SHAPES[row[0]])
        for negatives in wrong
        for caption in negatives
        for row in shapes.parse_caption(caption).tolist()
        if row[0] >= 0
    }
    assert len(pairs) > 20  # most pairs do occur
    assert not pairs & set(shapes.HELD_OUT)


def test_small_clip_trains_through_the_weight_cache(tokenizer, scenes):
    @dataclass(frozen=True)
    class Experiment:
        model: ClipConfig
        train: TrainConfig

    config = tiny_clip_config(tokenizer)
    assert config.end_id == tokenizer.end_id and config.context_length == 36
    experiment = Experiment(small(tokenizer), TrainConfig(steps=2, batch_size=8))
    data = clip_data(scenes, tokenizer)
    model, history = get_or_train("clip", experiment, SmallClip, data)
    again, _ = get_or_train("clip", experiment, SmallClip, data)
    tokens = data[1][:4]
    assert torch.equal(
        model.similarity(scenes.images[:4], tokens),
        again.similarity(scenes.images[:4], tokens),
    )
    assert len(history["loss"]) == 1


def test_bad_configs_name_the_fix(tokenizer):
    with pytest.raises(ValueError, match="tokenizer.end_id"):
        ClipConfig(vocab_size=10, context_length=36, end_id=12)
    with pytest.raises(ValueError, match="divisible by patch_size"):
        ClipConfig(vocab_size=50, context_length=36, end_id=3, patch_size=5)


# ---------------------------------------------------------------- pretrained


@pytest.fixture
def published(tmp_path, monkeypatch, tiny_open_clip):
    """Weights "published" by the test: a tiny registered open_clip architecture,
    its weights in a safetensors file behind a file:// URL, and their SHA-256."""
    import open_clip

    torch.manual_seed(1)
    state = open_clip.create_model("t2i-tiny").state_dict()
    path = tmp_path / "published" / "weights.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    monkeypatch.setattr(
        clip_module,
        "PRETRAINED",
        {("t2i-tiny", "test"): (path.as_uri(), sha256_of(path))},
    )
    return state, path


def test_pretrained_weights_load_strictly_when_the_checksum_matches(
    published, tmp_path
):
    state, _ = published
    torch.manual_seed(2)  # the model built before loading differs from the file
    model, tokenize = load_pretrained("t2i-tiny", "test", cache_dir=tmp_path / "c")
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not model.training
    assert tokenize(["a red circle"]).shape == (1, 77)


def test_a_wrong_checksum_or_a_wrong_architecture_is_refused(
    published, tmp_path, monkeypatch
):
    _, path = published
    monkeypatch.setattr(
        clip_module, "PRETRAINED", {("t2i-tiny", "test"): (path.as_uri(), "0" * 64)}
    )
    with pytest.raises(ValueError, match="SHA-256"):
        load_pretrained("t2i-tiny", "test", cache_dir=tmp_path / "c")
    assert not (tmp_path / "c" / "t2i-tiny-test.safetensors").exists()
    # the right file for another architecture: strict loading refuses it
    extra = path.with_name("extra.safetensors")
    weights = load_file(str(path)) | {"unexpected": torch.zeros(1)}
    save_file(weights, str(extra))
    monkeypatch.setattr(
        clip_module,
        "PRETRAINED",
        {("t2i-tiny", "test"): (extra.as_uri(), sha256_of(extra))},
    )
    with pytest.raises(RuntimeError, match="unexpected"):
        load_pretrained("t2i-tiny", "test", cache_dir=tmp_path / "d")


def test_offline_the_loader_says_to_use_the_small_clip(tmp_path, monkeypatch):
    missing = (tmp_path / "nowhere.safetensors").as_uri()  # unreachable, no network
    monkeypatch.setattr(
        clip_module,
        "PRETRAINED",
        {("ViT-B-32", "laion2b_s34b_b79k"): (missing, "a" * 64)},
    )
    with pytest.raises(ConnectionError, match="small CLIP"):
        load_pretrained(cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="ViT-B-32 / laion2b_s34b_b79k"):
        load_pretrained("ViT-B-32", "openai", cache_dir=tmp_path / "c")


def test_the_real_entry_points_at_open_clips_weights():
    url, sha256 = clip_module.PRETRAINED["ViT-B-32", "laion2b_s34b_b79k"]
    from open_clip.pretrained import get_pretrained_cfg

    hub = get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")["hf_hub"]
    assert url.startswith(f"https://huggingface.co/{hub}resolve/main/")
    assert url.endswith("open_clip_model.safetensors")
    assert len(sha256) == 64 and int(sha256, 16) >= 0
