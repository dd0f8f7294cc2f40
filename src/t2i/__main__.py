"""Command line: train (or fetch from the cache) the book's models without a notebook.

    python -m t2i train ae --scale small          # chapter 1: latent sizes 2 to 32
    python -m t2i train vae --scale small         # chapter 2: AE, VAEs, beta sweep, moons
    python -m t2i train prior --scale small       # chapter 3: VQ-VAE, then its PixelCNN
    python -m t2i train vqvae2 --scale small      # chapter 4: judge, VQ-VAE-2, its priors
    python -m t2i train vqgan --scale small       # chapter 5: VQGAN, its two priors
    python -m t2i train dalle --scale small       # chapter 6: dVAE, DALL·E, small CLIP
    python -m t2i train dalle --scale full --shards "cc3m/{00000..00331}.tar"
    python -m t2i train dalle_mini --scale small  # chapter 7: the encoder-decoder
    python -m t2i train vqgan_clip --scale small  # chapter 8: VQGAN and small CLIP
    python -m t2i train all --scale small         # every chapter's models, in order
    python -m t2i steer "a big red circle on the left" --out circle.png  # chapter 8
    python -m t2i steer "an oil painting of a lighthouse" --pretrained --out l.png

Useful on a GPU machine: train at ``small`` or ``full`` once, and every chapter
run with the same ``T2I_CACHE`` loads the result. On several GPUs the same
command runs data-parallel under torchrun (rank 0 writes the cache):

    torchrun --standalone --nproc_per_node 4 -m t2i train vqgan --scale full
"""

from __future__ import annotations

import argparse
import contextlib
import os

import torch

from . import configs, data, distributed, sequences, shapes
from .cache import get_or_train, run_dir, weights_fingerprint
from .models.ae import AutoEncoder
from .models.judge import AttributeJudge
from .models.perceptual import from_judge
from .models.pixelcnn import GatedPixelCNN
from .models.transformer import Transformer
from .models.vqgan import VQGAN
from .models.vqvae import VQVAE
from .models.vqvae2 import VQVAE2
from .train import evaluate


def _steps(steps: int | None) -> dict:
    return {} if steps is None else {"steps": steps}


AE_LATENT_SIZES = (2, 4, 8, 16, 32)  # chapter 1's sweep
VAE_BETAS = (0.1, 0.5, 1.0, 4.0, 16.0)  # chapter 2's beta slider


def train_autoencoder(
    scale: str, latent_dims: tuple[int, ...] = AE_LATENT_SIZES, steps: int | None = None
) -> None:
    """Chapter 1's autoencoders, one per latent size, under the chapter's names."""
    data_config = configs.autoencoder(scale).data  # one data set for every size
    train_set = data.load(data_config, "train")
    test_set = data.load(data_config, "test")
    for latent_dim in latent_dims:
        experiment = configs.autoencoder(scale, latent_dim=latent_dim, **_steps(steps))
        name = f"ae-mnist-z{latent_dim}"
        model, _ = get_or_train(
            name, experiment, AutoEncoder, train_set, eval_data=test_set
        )
        print(f"{name}: test MSE {evaluate(model, test_set)['loss']:.4f}")
        folder = run_dir(name, experiment, train_set, test_set)
        print(f"weights: {folder / 'model.safetensors'}")


def train_vae(scale: str, steps: int | None = None) -> None:
    """Chapter 2's models under the chapter's cache names: the AE on binarised
    digits, the conv VAEs with 2-D and 16-D codes, the MLP VAEs of the beta
    slider, and the AE and VAE of the moon demo."""
    from .models.vae import VAE

    vae_exp = configs.vae(scale, latent_dim=2, **_steps(steps))
    train_set = data.load(vae_exp.data, "train")
    test_set = data.load(vae_exp.data, "test")
    ae_exp = configs.autoencoder(scale, latent_dim=2, binarize=True, **_steps(steps))
    runs = [
        ("ae-mnist-bin-z2", ae_exp, AutoEncoder),
        ("vae-mnist-z2", vae_exp, VAE),
        ("vae-mnist-z16", configs.vae(scale, latent_dim=16, **_steps(steps)), VAE),
    ]
    for beta in VAE_BETAS:
        exp = configs.vae(scale, latent_dim=2, body="mlp", beta=beta, **_steps(steps))
        runs.append((f"vae-mlp-z2-beta{beta}", exp, VAE))
    for name, experiment, build in runs:
        model, _ = get_or_train(name, experiment, build, train_set, eval_data=test_set)
        print(f"{name}: test loss {evaluate(model, test_set)['loss']:.4f}")
    moons = {
        name: configs.moons(scale, model=name, **_steps(steps))
        for name in ("ae", "vae")
    }
    moons_train = data.load(moons["vae"].data, "train")
    get_or_train("moons-ae", moons["ae"], AutoEncoder, moons_train)
    get_or_train("moons-vae", moons["vae"], VAE, moons_train)


def train_vqvae(scale: str, with_prior: bool, steps: int | None = None) -> None:
    """Chapter 3's VQ-VAE (EMA + restarts) and, if asked, its PixelCNN prior;
    the same cache names as the chapter, so the notebook loads them."""
    experiment = configs.vqvae(scale, **_steps(steps))
    train_set = data.load(experiment.data, "train")
    test_set = data.load(experiment.data, "test")
    vqvae, _ = get_or_train("vqvae", experiment, VQVAE, train_set)
    print(f"vqvae: test MSE {evaluate(vqvae, test_set)['reconstruction']:.4f}")
    if not with_prior:
        return
    prior_exp = configs.pixelcnn_prior(scale, experiment, vqvae, **_steps(steps))
    codes_train = (vqvae.codes(train_set[0]), train_set[1])
    codes_test = (vqvae.codes(test_set[0]), test_set[1])
    prior, _ = get_or_train(
        "pixelcnn-prior", prior_exp, GatedPixelCNN, codes_train, eval_data=codes_test
    )
    bits = evaluate(prior, codes_test)["bits_per_code"]
    print(f"pixelcnn-prior: test {bits:.3f} bits per code")
    folder = run_dir("pixelcnn-prior", prior_exp, codes_train, codes_test)
    print(f"weights: {folder / 'model.safetensors'}")


def train_vqvae2(scale: str, steps: int | None = None) -> None:
    """Chapter 4's models under the chapter's cache names: the attribute judge,
    the VQ-VAE-2 and its two priors, and the one-level model with its prior."""
    judge_exp = configs.attribute_judge(scale, **_steps(steps))
    judge, _ = get_or_train(
        "attribute-judge", judge_exp, AttributeJudge, data.load(judge_exp.data, "train")
    )
    scores = judge.accuracy(*data.load(judge_exp.data, "test"))
    print(f"attribute-judge: {scores['object']:.2%} of test objects read right")
    experiment = configs.vqvae2(scale, **_steps(steps))
    images = data.load(experiment.data, "train")[0]
    x_test = data.load(experiment.data, "test")[0]
    vqvae2, _ = get_or_train("vqvae2", experiment, VQVAE2, (images,))
    print(f"vqvae2: test MSE {evaluate(vqvae2, (x_test,))['reconstruction']:.5f}")
    (bottom, top), (bottom_test, top_test) = vqvae2.codes(images), vqvae2.codes(x_test)
    for level, codes, codes_test in (
        ("top", (top,), (top_test,)),
        ("bottom", (bottom, top), (bottom_test, top_test)),
    ):
        prior_exp = configs.vqvae2_prior(
            scale, level, experiment, vqvae2, **_steps(steps)
        )
        prior, _ = get_or_train(
            f"vqvae2-{level}-prior",
            prior_exp,
            GatedPixelCNN,
            codes,
            eval_data=codes_test,
        )
        bits = evaluate(prior, codes_test)["bits_per_code"]
        print(f"vqvae2-{level}-prior: test {bits:.3f} bits per code")
    one_exp = configs.vqvae_one_level(scale, **_steps(steps))
    vqvae1, _ = get_or_train("vqvae-one-level", one_exp, VQVAE, (images,))
    one_prior_exp = configs.one_level_prior(scale, one_exp, vqvae1, **_steps(steps))
    one_test = (vqvae1.codes(x_test),)
    one_prior, _ = get_or_train(
        "vqvae-one-level-prior",
        one_prior_exp,
        GatedPixelCNN,
        (vqvae1.codes(images),),
        eval_data=one_test,
    )
    bits = evaluate(one_prior, one_test)["bits_per_code"]
    print(f"vqvae-one-level-prior: test {bits:.3f} bits per code")


def _judged_vqgan(scale: str, steps: int | None):
    """Chapter 5's VQGAN with the attribute judge's features as its perceptual
    network (the chapter's default): (experiment, model, training scenes)."""
    judge_exp = configs.attribute_judge(scale, **_steps(steps))
    world = data.load_scenes(judge_exp.data, "train")
    judge, _ = get_or_train(
        "attribute-judge", judge_exp, AttributeJudge, (world.images, world.attributes)
    )
    perceptual = from_judge(judge)
    gan_exp = configs.vqgan(
        scale, perceptual=f"judge-{weights_fingerprint(judge)[:16]}", **_steps(steps)
    )
    gan, _ = get_or_train(
        "vqgan",
        gan_exp,
        lambda config: VQGAN(config, perceptual=perceptual),
        (world.images,),
    )
    return gan_exp, gan, world


def train_vqgan(scale: str, steps: int | None = None) -> None:
    """Chapter 5's models under the chapter's cache names, with the judge's
    features as the perceptual network (the chapter's default): the VQGAN, the
    VQ-VAE baseline, the class prior, the segmentation VQ and its prior."""
    gan_exp, gan, world = _judged_vqgan(scale, steps)
    x_test = data.load_scenes(gan_exp.data, "test").images
    print(f"vqgan: test L1 {evaluate(gan, (x_test,))['l1']:.4f}")
    baseline_exp = configs.vqvae_baseline(scale, **_steps(steps))
    get_or_train("vqvae-one-level", baseline_exp, VQVAE, (world.images,))
    num_codes = gan.config.vq.num_codes
    class_exp = configs.vqgan_prior(scale, "class", gan_exp, gan, **_steps(steps))
    codes = gan.codes(world.images)  # once, for both priors
    tokens = sequences.class_sequences(codes, world.attributes, num_codes)
    get_or_train("vqgan-class-prior", class_exp, Transformer, (tokens,))
    seg_exp = configs.segmentation_vq(scale, **_steps(steps))
    seg_vq, _ = get_or_train(
        "segmentation-vq",
        seg_exp,
        VQVAE,
        (shapes.one_hot_segmentation(world.segmentation),),
    )
    prior_exp = configs.vqgan_prior(
        scale, "segmentation", gan_exp, gan, condition_model=seg_vq, **_steps(steps)
    )
    windows = sequences.segmentation_sequences(
        codes,
        sequences.condition_tokens(seg_vq, world.segmentation, num_codes),
        window=gan.config.grid_size,
    )
    get_or_train("vqgan-segmentation-prior", prior_exp, Transformer, (windows,))


def _train_dalle(name, scale, dvae_exp, dvae, tokenizer, text, images, steps):
    """Chapter 6's transformer over caption tokens ``text`` and the dVAE's
    codes of ``images``, cached as ``name``."""
    from .models.dalle import Dalle

    dalle_exp = configs.dalle(
        scale,
        dvae_exp,
        dvae,
        tokenizer.vocab_size,
        tokenizer.text_length,
        **_steps(steps),
    )
    tokens = Dalle(dalle_exp.model).sequences(text, dvae.codes(images))
    return get_or_train(name, dalle_exp, Dalle, (tokens,))[0]


def train_dalle(scale: str, steps: int | None = None) -> None:
    """Chapter 6's models under the chapter's cache names: the dVAE, the
    transformer over caption tokens and codes, and the small CLIP."""
    from .models.clip import SmallClip, clip_data
    from .models.dvae import DVAE
    from .text import fitted_tokenizer

    dvae_exp = configs.dvae(scale, **_steps(steps))
    world = data.load_scenes(dvae_exp.data, "train")
    dvae, _ = get_or_train("dvae", dvae_exp, DVAE, (world.images,))
    splits = [data.load_scenes(dvae_exp.data, s) for s in ("test", "held_out")]
    tokenizer = fitted_tokenizer([world, *splits])
    text = tokenizer.encode(world.captions)
    _train_dalle("dalle", scale, dvae_exp, dvae, tokenizer, text, world.images, steps)
    clip_exp = configs.small_clip(scale, tokenizer, **_steps(steps))
    get_or_train(
        "small-clip",
        clip_exp,
        SmallClip,
        clip_data(world, tokenizer, **configs.clip_data_options(scale)),
    )


SHARD_PIECES = 8192  # the vocabulary of a tokenizer fitted to web captions
SHARD_TEXT_LENGTH = 64  # longer captions are cut (DALL·E cut at 256 tokens)
SHARD_SAMPLES = 8  # captions drawn into the PNG after training


def train_dalle_on_shards(
    scale: str,
    pattern: str,
    limit: int | None = None,
    steps: int | None = None,
    out: str = "dalle_shards.png",
) -> None:
    """Chapter 6's dVAE and transformer on captioned pictures from webdataset
    shards (img2dataset's layout), with a tokenizer fitted to their captions.

    The first ``limit`` samples train (without a limit, all but the last
    ``SHARD_SAMPLES``); the ``SHARD_SAMPLES`` read after them are kept out of
    training and drawn from their captions, beside their real pictures, into ``out``. Everything is held in
    memory (N x 3 x s x s floats): at 64 x 64, 100,000 pictures take 4.9 GB."""
    from dataclasses import replace

    from PIL import Image

    from .models.dvae import DVAE
    from .shards import load_shards
    from .text import fitted_tokenizer
    from .viz import tile

    base = configs.dvae(scale, output_offset=0.5, **_steps(steps))
    size = base.model.image_size
    wanted = None if limit is None else limit + SHARD_SAMPLES
    pictures, captions = load_shards(pattern, image_size=size, limit=wanted)
    if len(captions) <= SHARD_SAMPLES:
        raise ValueError(
            f"the shards {pattern!r} hold {len(captions)} samples; training needs "
            f"more than the {SHARD_SAMPLES} kept out to be drawn"
        )
    kept = SHARD_SAMPLES  # the last samples read
    pictures, held_pictures = pictures[:-kept], pictures[-kept:]
    captions, held_captions = captions[:-kept], captions[-kept:]
    print(
        f"{len(captions):,} captioned pictures from {pattern} to train on "
        f"({size} x {size}), {kept} kept out to be drawn"
    )
    dvae_exp = replace(
        base,
        data=data.DataConfig(name="shards", image_size=size),
        source=f"shards {pattern} limit {limit}",
    )
    dvae, _ = get_or_train("dvae-shards", dvae_exp, DVAE, (pictures,))
    tokenizer = fitted_tokenizer(
        [captions], max_pieces=SHARD_PIECES, max_length=SHARD_TEXT_LENGTH
    )
    print(tokenizer)
    text = tokenizer.encode(captions, truncate=True)
    dalle = _train_dalle(
        "dalle-shards", scale, dvae_exp, dvae, tokenizer, text, pictures, steps
    )
    if not distributed.is_main():
        return
    grids = dalle.generate(
        tokenizer.encode(held_captions, truncate=True),
        generator=torch.Generator().manual_seed(0),
    )
    drawn = dvae.decode_indices(grids).clamp(0, 1)
    rows = torch.stack([held_pictures, drawn], 1).flatten(0, 1)  # real, drawn
    zoom = max(1, 128 // size)
    picture = Image.fromarray(tile(rows, ncols=2, pad=2))
    picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST).save(
        out
    )
    print(
        f"{out}: captions not trained on; left their real picture, right the "
        f"picture drawn for the caption"
    )
    for i, caption in enumerate(held_captions):
        print(f"  row {i + 1}: {caption}")


def train_dalle_mini(scale: str, steps: int | None = None) -> None:
    """Chapter 7's encoder-decoder on chapter 5's VQGAN codes (the VQGAN, and
    the judge behind its perceptual loss, are trained first if missing)."""
    from .models.seq2seq import Seq2Seq
    from .text import fitted_tokenizer

    gan_exp, gan, world = _judged_vqgan(scale, steps)
    splits = [data.load_scenes(gan_exp.data, s) for s in ("test", "held_out")]
    tokenizer = fitted_tokenizer([world, *splits])
    mini_exp = configs.dalle_mini(scale, gan_exp, gan, tokenizer, **_steps(steps))
    get_or_train(
        "dalle-mini",
        mini_exp,
        Seq2Seq,
        (tokenizer.encode(world.captions), gan.codes(world.images)),
    )


def _book_pair(scale: str, steps: int | None = None):
    """Chapter 8's models at ``scale``: the judged VQGAN and the small CLIP
    (trained first if missing), as ``(gan, encode_images, encode_texts)``."""
    from .models.clip import SmallClip, clip_data
    from .text import fitted_tokenizer

    gan_exp, gan, world = _judged_vqgan(scale, steps)
    splits = [data.load_scenes(gan_exp.data, s) for s in ("test", "held_out")]
    tokenizer = fitted_tokenizer([world, *splits])
    clip, _ = get_or_train(
        "small-clip",
        configs.small_clip(scale, tokenizer, **_steps(steps)),
        SmallClip,
        clip_data(world, tokenizer, **configs.clip_data_options(scale)),
    )
    clip.requires_grad_(False)

    @torch.no_grad()
    def encode_texts(captions: list[str]) -> torch.Tensor:
        return clip.encode_texts(tokenizer.clip_tokens(captions))

    return gan, clip.encode_images, encode_texts


def steer_caption(
    caption: str,
    scale: str,
    out: str,
    steps: int | None = None,
    pretrained: bool = False,
) -> None:
    """Chapter 8's loop for one caption, saved as a PNG: the book's VQGAN and
    small CLIP, or with ``pretrained`` taming's ImageNet VQGAN and open_clip's
    ViT-B/32 (online only)."""
    from PIL import Image

    from .models.vqgan_clip import pretrained_encoders, steer

    config = configs.vqgan_clip(scale, pretrained, **_steps(steps))
    clip_size = None
    if pretrained:
        from .models.clip import load_pretrained
        from .models.taming import load_taming_vqgan

        gan = load_taming_vqgan()
        encode_images, encode_texts, clip_size = pretrained_encoders(*load_pretrained())
    else:
        gan, encode_images, encode_texts = _book_pair(scale)
    history = steer(
        gan.requires_grad_(False),
        encode_images,
        encode_texts([caption]),
        config,
        clip_size=clip_size,
    )
    picture = (history["final"][0].permute(1, 2, 0) * 255).round().byte().numpy()
    side = picture.shape[0]
    zoom = max(1, 256 // side)  # small pictures are saved enlarged, pixels kept sharp
    Image.fromarray(picture).resize((side * zoom,) * 2, Image.NEAREST).save(out)
    print(f"{out}: {config.steps} steps in {history['seconds']:.0f} s")


def train_vqgan_clip(scale: str, steps: int | None = None) -> None:
    """What chapter 8 steers with: the judged VQGAN and the small CLIP."""
    _book_pair(scale, steps)
    print("vqgan and small-clip are in the cache: python -m t2i steer CAPTION")


def train_vqvae_only(scale: str, steps: int | None = None) -> None:
    train_vqvae(scale, with_prior=False, steps=steps)


def train_prior(scale: str, steps: int | None = None) -> None:
    train_vqvae(scale, with_prior=True, steps=steps)


def train_all(scale: str, steps: int | None = None) -> None:
    """Every chapter's models, chapter by chapter."""
    for name, train in TRAINERS.items():
        if name not in ("all", "vqvae"):  # "prior" trains the VQ-VAE too
            print(f"== {name}")
            train(scale, steps=steps)


# command-line name -> what it trains (chapter order)
TRAINERS = {
    "ae": train_autoencoder,
    "vae": train_vae,
    "vqvae": train_vqvae_only,
    "prior": train_prior,
    "vqvae2": train_vqvae2,
    "vqgan": train_vqgan,
    "dalle": train_dalle,
    "dalle_mini": train_dalle_mini,
    "vqgan_clip": train_vqgan_clip,
    "all": train_all,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m t2i", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model of the book (cached)")
    train.add_argument(
        "model",
        choices=list(TRAINERS),
        help="ae (chapter 1), vae (chapter 2), vqvae or prior (chapter 3: the "
        "VQ-VAE and its PixelCNN), vqvae2 (chapter 4: the judge, VQ-VAE-2, priors, "
        "one-level model), vqgan (chapter 5: VQGAN, VQ-VAE baseline, the two "
        "priors), dalle (chapter 6: dVAE, transformer, small CLIP), dalle_mini "
        "(chapter 7: the encoder-decoder on the VQGAN's codes), vqgan_clip "
        "(chapter 8: the VQGAN and small CLIP it steers with), all",
    )
    train.add_argument("--scale", default="tiny", choices=configs.SCALES)
    train.add_argument(
        "--latent-dim",
        type=int,
        nargs="+",
        default=AE_LATENT_SIZES,
        help="ae only: the latent sizes to train (default: the chapter's)",
    )
    train.add_argument(
        "--steps", type=int, default=None, help="override the scale's training steps"
    )
    train.add_argument(
        "--shards",
        metavar="PATTERN",
        help="dalle only: train on webdataset shards (.jpg + .txt per sample), "
        "e.g. 'cc3m/{00000..00331}.tar' or an https:// pattern",
    )
    train.add_argument(
        "--limit",
        type=int,
        default=None,
        help="with --shards: use the first LIMIT samples (they are held in memory)",
    )
    train.add_argument(
        "--out",
        default="dalle_shards.png",
        help="with --shards: the PNG of drawn captions written after training",
    )
    train.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile every model's loss (GPU; the cache key is unchanged)",
    )
    steer = commands.add_parser(
        "steer", help="chapter 8: draw a caption with VQGAN-CLIP (no training)"
    )
    steer.add_argument("caption")
    steer.add_argument("--scale", default="tiny", choices=configs.SCALES)
    steer.add_argument("--out", default="vqgan_clip.png", help="the PNG to write")
    steer.add_argument("--steps", type=int, default=None, help="Adam steps on z")
    steer.add_argument(
        "--pretrained",
        action="store_true",
        help="taming's ImageNet VQGAN and open_clip's ViT-B/32 (downloads, online)",
    )
    args = parser.parse_args(argv)
    if args.command == "steer":
        if distributed.launched_by_torchrun():
            parser.error(
                "steer draws one picture in one process; run it without torchrun"
            )
        steer_caption(args.caption, args.scale, args.out, args.steps, args.pretrained)
        return
    if args.compile:
        os.environ["T2I_COMPILE"] = "1"
    distributed.init_from_env()  # under torchrun: join the other processes
    # one process speaks: the others' output would repeat rank 0's
    with contextlib.ExitStack() as stack:
        if not distributed.is_main():
            stack.enter_context(
                contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w")))
            )
        try:
            if args.shards is not None:
                if args.model != "dalle":
                    parser.error("--shards trains chapter 6's models: use train dalle")
                train_dalle_on_shards(
                    args.scale, args.shards, args.limit, args.steps, args.out
                )
            elif args.model == "ae":
                train_autoencoder(args.scale, tuple(args.latent_dim), args.steps)
            else:
                TRAINERS[args.model](args.scale, steps=args.steps)
        finally:
            distributed.close()


if __name__ == "__main__":
    main()
