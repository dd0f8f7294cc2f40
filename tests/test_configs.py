import pytest
import torch

from t2i import configs


def test_unknown_scale_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        configs.autoencoder("huge")
    message = str(error.value)
    assert (
        "'huge'" in message
        and "'tiny'" in message
        and "'small'" in message
        and "'full'" in message
    )


@pytest.mark.parametrize("scale", configs.SCALES)
def test_every_scale_builds_a_consistent_experiment(scale):
    experiment = configs.autoencoder(scale, latent_dim=8)
    assert experiment.model.latent_dim == 8 and experiment.scale == scale
    assert experiment.train.steps > 0


def test_tiny_is_offline_and_bigger_scales_use_full_mnist():
    assert configs.autoencoder("tiny").data.source == "sample"
    assert configs.autoencoder("small").data.source == "auto"
    assert (
        configs.autoencoder("full").train.steps
        > configs.autoencoder("small").train.steps
    )


def test_train_overrides_and_default_scale(monkeypatch):
    assert configs.autoencoder("tiny", lr=1e-4).train.lr == 1e-4
    monkeypatch.setenv("T2I_SCALE", "bogus")
    with pytest.raises(ValueError, match="T2I_SCALE"):
        configs.default_scale()


def assert_trains(capsys, model: str, steps: int, names) -> str:
    """``python -m t2i train MODEL --steps N`` trains each of ``names`` for N
    steps (so under the cache names the chapter looks for); returns the output."""
    from t2i.__main__ import main

    main(["train", model, "--scale", "tiny", "--steps", str(steps)])
    out = capsys.readouterr().out
    for name in names:
        assert f"{name}: {steps} steps" in out, name
    return out


def test_command_line_trains_and_then_loads(capsys):
    from t2i.__main__ import main

    main(["train", "ae", "--scale", "tiny", "--latent-dim", "2"])
    first = capsys.readouterr().out
    assert "test MSE" in first and "model.safetensors" in first
    main(["train", "ae", "--scale", "tiny", "--latent-dim", "2"])
    assert "loaded from the cache" in capsys.readouterr().out


def test_command_line_rejects_unknown_scale():
    from t2i.__main__ import main

    with pytest.raises(SystemExit):
        main(["train", "ae", "--scale", "huge"])


def test_command_line_trains_the_chapter_3_models_under_the_chapters_names(capsys):
    from t2i.__main__ import main

    main(["train", "prior", "--scale", "tiny", "--steps", "20"])
    out = capsys.readouterr().out
    assert "vqvae: test MSE" in out and "bits per code" in out
    assert "pixelcnn-prior-" in out  # the cache folder the chapter looks in


def test_command_line_trains_the_chapter_4_models_under_the_chapters_names(capsys):
    names = ("attribute-judge", "vqvae2", "vqvae2-top-prior", "vqvae2-bottom-prior")
    out = assert_trains(capsys, "vqvae2", 10, names)
    assert "vqvae-one-level-prior: test" in out


def test_command_line_trains_the_chapter_5_models_under_the_chapters_names(capsys):
    names = (
        "vqgan",
        "vqvae-one-level",
        "vqgan-class-prior",
        "segmentation-vq",
        "vqgan-segmentation-prior",
    )
    out = assert_trains(capsys, "vqgan", 4, names)
    assert "vqgan: test L1" in out


@pytest.mark.parametrize("scale", configs.SCALES)
def test_chapter_5_experiments_agree_on_the_grid(scale):
    gan = configs.vqgan(scale, perceptual="judge-test")
    segmentation = configs.segmentation_vq(scale)
    baseline = configs.vqvae_baseline(scale)
    assert segmentation.model.grid_size == gan.model.grid_size
    assert baseline.model.grid_size == gan.model.grid_size
    assert baseline.model.vq.num_codes == gan.model.vq.num_codes
    assert gan.source == "perceptual-judge-test"  # the perceptual net is in the key
    assert configs.vqgan(scale, disc_start=7).model.disc_start == 7
    assert configs.vqgan(scale, steps=7).train.steps == 7


def test_command_line_trains_the_chapter_6_models_under_the_chapters_names(capsys):
    from t2i.__main__ import main

    main(["train", "dalle", "--scale", "tiny", "--steps", "4"])
    out = capsys.readouterr().out
    for name in ("dvae", "dalle", "small-clip"):
        assert f"{name}: 4 steps" in out, name


@pytest.mark.parametrize("scale", configs.SCALES)
def test_chapter_6_experiments_fit_the_dvae_and_the_tokenizer(scale):
    from t2i.models.dalle import attention_masks
    from t2i.text import CaptionTokenizer

    codec = configs.dvae(scale)
    assert codec.model.tau_steps == codec.train.steps  # tau anneals over the run
    assert configs.dvae(scale, sigma=0.1, steps=8).model.sigma == 0.1
    tokenizer = CaptionTokenizer(34)
    model = torch.nn.Linear(1, 1)  # only its weights' fingerprint is used
    dalle = configs.dalle(scale, codec, model, tokenizer.vocab_size, 34)
    assert dalle.model.grid_size == codec.model.grid_size
    assert dalle.model.num_codes == codec.model.num_codes
    assert dalle.source.startswith("dvae-weights-")
    masks = attention_masks(dalle.model)
    assert masks.shape[0] == dalle.model.n_layer
    clip = configs.small_clip(scale, tokenizer)
    assert clip.model.image_size == codec.model.image_size
    assert clip.model.vocab_size == tokenizer.vocab_size


def test_command_line_trains_the_chapter_7_model_under_the_chapters_name(capsys):
    from t2i.__main__ import main

    main(["train", "dalle_mini", "--scale", "tiny", "--steps", "4"])
    out = capsys.readouterr().out
    assert "dalle-mini: 4 steps" in out


@pytest.mark.parametrize("scale", configs.SCALES)
def test_chapter_7_experiment_fits_the_vqgan_and_the_tokenizer(scale):
    from t2i.text import CaptionTokenizer

    gan = configs.vqgan(scale, perceptual="judge-test")
    tokenizer = CaptionTokenizer(34)
    model = torch.nn.Linear(1, 1)
    mini = configs.dalle_mini(scale, gan, model, tokenizer, caption_dropout=0.2)
    assert mini.model.grid_size == gan.model.grid_size
    assert mini.model.num_codes == gan.model.vq.num_codes
    assert mini.model.text_vocab == tokenizer.vocab_size
    assert mini.model.first_pad_id == tokenizer.first_pad_id
    assert mini.model.caption_dropout == 0.2
    assert mini.source.startswith("codes-weights-")
    assert configs.dalle_mini(scale, gan, model, tokenizer, steps=9).train.steps == 9
    codec = configs.dvae(scale)  # the chapter's exercise: the dVAE's codes
    on_dvae = configs.dalle_mini(scale, codec, model, tokenizer)
    assert on_dvae.model.num_codes == codec.model.num_codes
    assert on_dvae.model.grid_size == codec.model.grid_size


def test_dalle_and_dalle_mini_cost_the_same_per_training_step_at_tiny():
    """Chapter 7 compares the two at equal training compute: equal steps and
    batch, and (checked here) FLOPs per step within 10% of each other."""
    from torch.utils.flop_counter import FlopCounterMode

    from t2i.models.dalle import Dalle
    from t2i.models.seq2seq import Seq2Seq
    from t2i.text import CaptionTokenizer

    tokenizer = CaptionTokenizer(34)
    gan = configs.vqgan("tiny", perceptual="judge-test")
    model = torch.nn.Linear(1, 1)
    mini = configs.dalle_mini("tiny", gan, model, tokenizer)
    dalle = configs.dalle("tiny", configs.dvae("tiny"), model, tokenizer.vocab_size, 34)
    assert dalle.model.grid_size == mini.model.grid_size
    assert dalle.model.num_codes == mini.model.num_codes
    assert (dalle.train.steps, dalle.train.batch_size) == (
        mini.train.steps,
        mini.train.batch_size,
    )
    b = mini.train.batch_size
    text = torch.randint(0, tokenizer.first_pad_id, (b, 34))
    codes = torch.randint(0, 64, (b, 8, 8))
    flops = []
    for model_, batch in (
        (Seq2Seq(mini.model), (text, codes)),
        (Dalle(dalle.model), None),
    ):
        batch = batch or (model_.sequences(text, codes),)
        with FlopCounterMode(display=False) as counter:
            model_.loss(batch)["loss"].backward()
        flops.append(counter.get_total_flops())
    assert abs(flops[0] / flops[1] - 1) < 0.1, flops


def test_command_line_trains_the_chapter_1_sweep_under_the_chapters_names(capsys):
    from t2i.__main__ import AE_LATENT_SIZES, main

    main(["train", "ae", "--scale", "tiny", "--steps", "4"])
    out = capsys.readouterr().out
    for latent_dim in AE_LATENT_SIZES:
        assert f"ae-mnist-z{latent_dim}: 4 steps" in out, latent_dim


def test_command_line_trains_the_chapter_2_models_under_the_chapters_names(capsys):
    names = (
        "ae-mnist-bin-z2",
        "vae-mnist-z2",
        "vae-mnist-z16",
        "vae-mlp-z2-beta0.1",
        "vae-mlp-z2-beta16.0",
        "moons-ae",
        "moons-vae",
    )
    assert_trains(capsys, "vae", 4, names)


def test_command_line_trains_what_chapter_8_steers_with(capsys):
    assert_trains(capsys, "vqgan_clip", 4, ("attribute-judge", "vqgan", "small-clip"))


def test_command_line_all_trains_every_chapter_in_order(monkeypatch, capsys):
    import t2i.__main__ as cli

    called = []
    for name in cli.TRAINERS:
        if name != "all":
            monkeypatch.setitem(
                cli.TRAINERS,
                name,
                lambda scale, steps, name=name: called.append((name, scale, steps)),
            )
    cli.main(["train", "all", "--scale", "small", "--steps", "7"])
    assert called == [
        (name, "small", 7)
        for name in (
            "ae",
            "vae",
            "prior",
            "vqvae2",
            "vqgan",
            "dalle",
            "dalle_mini",
            "vqgan_clip",
        )
    ]
