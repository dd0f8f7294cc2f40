"""Command line: train (or fetch from the cache) the book's models without a notebook.

    python -m t2i train ae --scale small --latent-dim 2

Useful on a GPU machine: train at ``small`` or ``full`` once, and every chapter
run with the same ``T2I_CACHE`` loads the result.
"""

from __future__ import annotations

import argparse

from . import configs, data
from .checkpoints import get_or_train, run_dir
from .models.ae import AutoEncoder
from .train import evaluate


def train_autoencoder(scale: str, latent_dim: int) -> None:
    experiment = configs.autoencoder(scale, latent_dim=latent_dim)
    train_set = data.load(experiment.data, "train")
    test_set = data.load(experiment.data, "test")
    name = f"ae-mnist-z{latent_dim}"
    model, _ = get_or_train(
        name, experiment, AutoEncoder, train_set, eval_data=test_set
    )
    print(f"{name}: test MSE {evaluate(model, test_set)['loss']:.4f}")
    print(f"weights: {run_dir(name, experiment) / 'model.safetensors'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m t2i", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model of the book (cached)")
    train.add_argument(
        "model", choices=["ae"], help="which model (more arrive with each chapter)"
    )
    train.add_argument("--scale", default="tiny", choices=configs.SCALES)
    train.add_argument("--latent-dim", type=int, default=2)
    args = parser.parse_args(argv)
    train_autoencoder(args.scale, args.latent_dim)


if __name__ == "__main__":
    main()
