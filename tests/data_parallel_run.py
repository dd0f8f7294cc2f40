"""Trains a small model through ``get_or_train``: run by tests/test_distributed.py
under ``torchrun --nproc_per_node 2`` (gloo) and as one plain process.

    python tests/data_parallel_run.py MODEL OUT [--crash-at CALL]

Each process uses its own cache folder, ``OUT/cache-rank<r>``, so a file
written by any process other than rank 0 shows up where it does not belong.
Each process saves the weights it ended with to ``OUT/weights-rank<r>.pt``.
With ``--crash-at``, rank 1 (or the single process) dies hard on that call of
the model's loss, as a killed machine would.
"""

import argparse
import os
import sys
from pathlib import Path

import torch

RANK = int(os.environ.get("RANK", "0"))


def experiment(model: str):
    from t2i.configs import Experiment
    from t2i.data import DataConfig
    from t2i.models.vqgan import DiscriminatorConfig, VQGANConfig
    from t2i.models.vqvae import VQVAEConfig
    from t2i.quantize import VQConfig
    from t2i.train import TrainConfig

    train = TrainConfig(
        steps=12, batch_size=8, lr=3e-3, log_every=2, checkpoint_every=4, device="cpu"
    )
    if model == "vqvae":  # an EMA codebook: its statistics must be summed over ranks
        config = VQVAEConfig(
            image_size=16,
            channels=(8, 16),
            residual_blocks=0,
            vq=VQConfig(num_codes=16, code_dim=4, ema=True),
        )
    else:  # two players, two losses backward per step, BatchNorm in the critic
        config = VQGANConfig(
            in_channels=1,
            image_size=16,
            channels=(8, 16),
            residual_blocks=0,
            vq=VQConfig(num_codes=8, code_dim=4),
            discriminator=DiscriminatorConfig(in_channels=1, channels=4, layers=2),
            perceptual_weight=0.0,
        )
    return Experiment(model=config, train=train, data=DataConfig(), scale="tiny")


def build(model: str, crash_at: int | None):
    from t2i.models.vqgan import VQGAN
    from t2i.models.vqvae import VQVAE

    def make(config):
        net = (VQVAE if model == "vqvae" else VQGAN)(config)
        if crash_at is not None and RANK == (1 if "WORLD_SIZE" in os.environ else 0):
            calls = [0]
            loss = net.loss

            def dying_loss(batch):
                calls[0] += 1
                if calls[0] == crash_at:
                    os._exit(3)  # no cleanup, no exception: a killed process
                return loss(batch)

            net.loss = dying_loss
        return net

    return make


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", choices=["vqvae", "vqgan"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--crash-at", type=int)
    args = parser.parse_args()
    os.environ["T2I_CACHE"] = str(args.out / f"cache-rank{RANK}")
    from t2i import distributed
    from t2i.cache import get_or_train

    distributed.init_from_env()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 16, 16, generator=generator)
    model, history = get_or_train(
        "data-parallel",
        experiment(args.model),
        build(args.model, args.crash_at),
        (images,),
    )
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(
        {"weights": state, "history": history}, args.out / f"weights-rank{RANK}.pt"
    )
    distributed.close()


if __name__ == "__main__":
    sys.exit(main())
