"""The comparisons: ours against each reference on the same configuration.

Every case builds both sides from the same random weights where the
architectures share them (the VQ layer, the transformer, LPIPS) and checks
that they compute the same thing before it times anything: the same codes,
the same sampled tokens, the same perceptual distance. Where the
architectures differ (taming's VQGAN against chapter 5's, openai's dVAE
against chapter 6's) the configuration is matched (resolution, widths,
codebook, discriminator) and each side's parameter count is reported.

``Options.quick`` shrinks every size so the whole suite runs in seconds: the
test suite runs it that way, with or without the references installed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from t2i import configs
from t2i.models.dvae import DVAE, DVAEConfig, kl_to_uniform
from t2i.models.perceptual import from_lpips
from t2i.models.transformer import Transformer, TransformerConfig
from t2i.models.vqgan import VQGAN
from t2i.quantize import DISTANCE_CHUNK, VectorQuantizer, VQConfig
from t2i.train import TrainConfig, optimizer_groups, train_step

from . import references
from .harness import Comparison, Row, cpu_memory_of, time_interleaved
from .references import Missing

OURS = "ours (t2i)"


@dataclass(frozen=True)
class Options:
    device: str = "cpu"
    quick: bool = False  # tiny sizes: the whole suite in seconds (the tests)
    repeats: int = 5
    # on a GPU: bf16 autocast and channels-last for both sides, and
    # torch.compile on the training steps
    fast: bool = False

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def gpu(self) -> bool:
        return self.device.startswith("cuda")

    def autocast(self) -> torch.autocast:
        device = self.torch_device.type
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.fast)


def parameter_count(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def _missing_row(name: str, error: Missing) -> Row:
    return Row(implementation=name, figure=None, note=str(error))


# --- 1. the VQ layer ------------------------------------------------------


def compare_codes(
    z: torch.Tensor, codebook: torch.Tensor, ours: torch.Tensor, theirs: torch.Tensor
) -> tuple[int, int, int]:
    """(identical, ties, wrong): codes that differ are ties when both codes are
    equally near in float64 (to 1e-5, relative), i.e. float32 rounding chose."""
    ours, theirs = ours.flatten().cpu(), theirs.flatten().cpu()
    differ = (ours != theirs).nonzero().flatten()
    flat = rearrange(z.detach().cpu(), "b d h w -> (b h w) d").double()[differ]
    book = codebook.detach().cpu().double()
    near_ours = (flat - book[ours[differ]]).pow(2).sum(1)
    near_theirs = (flat - book[theirs[differ]]).pow(2).sum(1)
    ties = ((near_ours - near_theirs).abs() <= 1e-5 * near_theirs).sum().item()
    return len(ours) - len(differ), int(ties), len(differ) - int(ties)


def code_check(name: str, counts: tuple[int, int, int]) -> str:
    identical, ties, wrong = counts
    total = identical + ties + wrong
    sentence = f"{name}: {identical:,} of {total:,} codes identical"
    if ties:
        sentence += (
            f"; the other {ties} are ties (both codes equally near in float64, "
            "to 1e-5 relative)"
        )
    if wrong:
        sentence += f"; FAILED: {wrong} codes differ and are not ties"
    return sentence


TAMING_VQ = "taming-transformers VectorQuantizer2"
LUCIDRAINS_VQ = "vector-quantize-pytorch VectorQuantize"


def vq_calls(
    options: Options, size: tuple[int, int, int], only: str | None = None
) -> dict:
    """Each side's forward-and-backward call (returning its codes), on the
    same codebook and input; ``only`` builds one side (benchmarks.memory)."""
    vectors, dim, codes = size
    device = options.torch_device
    side = 32 if vectors >= 1024 else 8
    generator = torch.Generator().manual_seed(0)
    codebook = torch.randn(codes, dim, generator=generator)
    z = torch.randn(vectors // side**2, dim, side, side, generator=generator)
    z = z.to(device).requires_grad_()
    built = {"z": z, "codebook": codebook, "steps": {}, "missing": []}

    if only in (None, OURS):
        ours = VectorQuantizer(VQConfig(num_codes=codes, code_dim=dim)).to(device)
        ours.codebook.data.copy_(codebook)

        def run_ours():
            z.grad = None
            out = ours(z)
            (out.vectors.square().mean() + out.loss).backward()
            return out.indices

        built["steps"][OURS] = run_ours
    try:
        if only in (None, TAMING_VQ):
            taming = references.taming_quantizer()(codes, dim, beta=0.25, legacy=False)
            taming.to(device).embedding.weight.data.copy_(codebook)

            def run_taming():
                z.grad = None
                quantised, loss, (_, _, indices) = taming(z)
                (quantised.square().mean() + loss).backward()
                return indices

            built["steps"][TAMING_VQ] = run_taming
    except Missing as error:
        built["missing"].append(_missing_row(TAMING_VQ, error))
    try:
        if only in (None, LUCIDRAINS_VQ):
            lucidrains = references.lucidrains_quantizer()(
                dim=dim,
                codebook_size=codes,
                commitment_weight=0.25,
                ema_update=False,  # trained by its loss, as ours and taming's here
                learnable_codebook=True,
                rotation_trick=False,  # the straight-through estimator, as the others
                channel_last=False,
                accept_image_fmap=True,
            ).to(device)
            lucidrains._codebook.embed.data.copy_(codebook[None])

            def run_lucidrains():
                z.grad = None
                quantised, indices, loss = lucidrains(z)
                (quantised.square().mean() + loss.sum()).backward()
                return indices

            built["steps"][LUCIDRAINS_VQ] = run_lucidrains
    except Missing as error:
        built["missing"].append(_missing_row(LUCIDRAINS_VQ, error))
    return built


def vq_layer(
    options: Options, size: tuple[int, int, int], large: bool = False
) -> Comparison:
    """Forward and backward through the quantiser; the same codebook in each."""
    vectors, dim, codes = size
    built = vq_calls(options, size)
    calls, checks = built["steps"], []
    reference_codes = {name: call() for name, call in calls.items()}
    for name, indices in reference_codes.items():
        if name != OURS:
            z, codebook = built["z"], built["codebook"]
            counts = compare_codes(z, codebook, reference_codes[OURS], indices)
            checks.append(code_check(name, counts))
    del reference_codes
    # the calls above were the warm-up; a large size takes seconds a call
    repeats = min(options.repeats, 3) if large else options.repeats
    timings = time_interleaved(calls, repeats, options.torch_device, warmup=0)
    rows = [
        Row(
            name,
            t.milliseconds(),
            memory_mb=peak_memory(options, "vq", name, calls[name], size)
            if large
            else None,
        )
        for name, t in timings.items()
    ]
    return Comparison(
        key=f"vq-{vectors}-{dim}-{codes}",
        title="VQ layer: forward and backward",
        configuration=(
            f"{vectors:,} vectors of size D = {dim} against K = {codes:,} codes, "
            "random, the same codebook loaded into each"
        ),
        unit="ms per batch",
        higher_is_better=False,
        rows=rows + built["missing"],
        checks=checks,
        note=(
            "Each side is trained by its loss (no EMA) with the straight-through "
            "estimator (lucidrains' `rotation_trick` off). One (N × K) float32 "
            f"distance matrix is {vectors * codes * 4 / 2**20:,.0f} MiB here. taming and "
            "lucidrains build it whole, and more than one of it; ours builds it "
            f"{DISTANCE_CHUNK * 4 // 2**20} MiB of rows at a time and counts the codes "
            "with `bincount`, where it first built an (N × K) one-hot matrix as well "
            "(profiling found that it was slower than taming's)."
        ),
    )


# --- 2. a VQGAN training step ---------------------------------------------


def vqgan_setting(options: Options):
    """Chapter 5's VQGAN at the small scale (tiny sizes when quick), with
    LPIPS on a randomly initialised VGG16 as the perceptual loss."""
    experiment = configs.vqgan("small")
    model = experiment.model
    batch = 8
    if options.quick:
        model = replace(
            model,
            image_size=16,
            channels=(32, 32),  # taming's GroupNorm needs multiples of 32
            residual_blocks=1,
            vq=replace(model.vq, num_codes=16, code_dim=8),
            discriminator=replace(model.discriminator, channels=8, layers=2),
        )
        batch = 2
    elif options.gpu:
        batch = experiment.train.batch_size
    return model, replace(experiment.train, grad_clip=None), batch


def random_vgg16_features() -> dict[str, torch.Tensor]:
    """VGG16's convolutional weights, randomly initialised (torchvision's layout)."""
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.vgg16(weights=None).features
    return {f"features.{k}": v for k, v in features.state_dict().items()}


class TamingVQGANStep:
    """taming-transformers' VQGAN trained as its ``VQModel.training_step``
    runs under PyTorch Lightning with two optimisers: for each optimiser the
    batch goes through the autoencoder again, the other optimiser's
    parameters are frozen (Lightning's ``toggle_optimizer``), the loss module
    gives that optimiser's loss, and it takes its step."""

    def __init__(self, config, device: torch.device, perceptual_state, lin_weights):
        encoder_class, decoder_class = references.taming_autoencoder()
        with contextlib.redirect_stdout(None):  # it prints the shape of z
            self._build(config, encoder_class, decoder_class)
        self._load_lpips(perceptual_state, lin_weights)
        self._optimisers(config, device)

    def _build(self, config, encoder_class, decoder_class) -> None:
        c0 = config.channels[0]
        shape = {
            "ch": c0,
            "out_ch": config.in_channels,
            "ch_mult": tuple(c // c0 for c in config.channels),
            "num_res_blocks": config.residual_blocks,
            "attn_resolutions": [config.grid_size],
            "dropout": 0.0,
            "in_channels": config.in_channels,
            "resolution": config.image_size,
            "z_channels": config.vq.code_dim,
        }
        d, k = config.vq.code_dim, config.vq.num_codes
        self.encoder = encoder_class(double_z=False, **shape)
        self.decoder = decoder_class(**shape)
        self.quantize = references.taming_quantizer()(k, d, beta=config.vq.beta)
        self.quant_conv = nn.Conv2d(d, d, 1)
        self.post_quant_conv = nn.Conv2d(d, d, 1)
        self.loss = references.taming_loss(
            disc_start=0,
            codebook_weight=1.0,
            disc_num_layers=config.discriminator.layers,
            disc_in_channels=config.in_channels,
            disc_weight=config.disc_weight,
            perceptual_weight=config.perceptual_weight,
            disc_ndf=config.discriminator.channels,
        )

    def _load_lpips(self, perceptual_state, lin_weights) -> None:
        self.loss.perceptual_loss.net.load_state_dict(perceptual_state)
        lins = [getattr(self.loss.perceptual_loss, f"lin{i}") for i in range(5)]
        for lin, weight in zip(lins, lin_weights):
            lin.model[-1].weight.data.copy_(weight.view(1, -1, 1, 1))

    def _optimisers(self, config, device: torch.device) -> None:
        self.autoencoder = nn.ModuleList(
            [
                self.encoder,
                self.decoder,
                self.quantize,
                self.quant_conv,
                self.post_quant_conv,
            ]
        ).to(device)
        self.loss.to(device)
        betas = config.betas
        self.optimizers = [
            torch.optim.Adam(self.autoencoder.parameters(), lr=1e-4, betas=betas),
            torch.optim.Adam(
                self.loss.discriminator.parameters(), lr=1e-4, betas=betas
            ),
        ]
        self.players = [self.autoencoder, self.loss.discriminator]
        self.loss_fn = self.loss  # torch.compile'd in place with --fast
        self.global_step = 0

    def forward(self, x: torch.Tensor):
        quantised, qloss, _ = self.quantize(self.quant_conv(self.encoder(x)))
        return self.decoder(self.post_quant_conv(quantised)), qloss

    def step(self, x: torch.Tensor, autocast: torch.autocast) -> None:
        """One batch, both optimisers; ``x`` in [-1, 1] as taming reads it."""
        for index, optimizer in enumerate(self.optimizers):
            for i, player in enumerate(self.players):  # toggle_optimizer
                player.requires_grad_(i == index)
            with autocast:
                reconstruction, qloss = self.forward(x)
                loss, _ = self.loss_fn(
                    qloss,
                    x,
                    reconstruction,
                    index,
                    self.global_step,
                    last_layer=self.decoder.conv_out.weight,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        for player in self.players:  # untoggle_optimizer
            player.requires_grad_(True)
        self.global_step += 1


def vqgan_steps(options: Options, only: str | None = None) -> dict:
    """Each side's step function, parameter count, and the LPIPS check."""
    device = options.torch_device
    config, train, batch = vqgan_setting(options)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(
        batch,
        config.in_channels,
        config.image_size,
        config.image_size,
        generator=generator,
    )
    images = images.to(device)
    layout = torch.channels_last
    perceptual = from_lpips("vgg", backbone_weights=random_vgg16_features())
    built = {"checks": [], "steps": {}, "parameters": {}, "missing": []}

    if only in (None, OURS):
        model = VQGAN(config, perceptual=perceptual)
        # as t2i.train.fit trains it: channels-last, one AdamW per player
        model.to(device, memory_format=layout).train()
        groups = optimizer_groups(model)
        optimizers = {
            key: torch.optim.AdamW(
                [group], lr=train.lr, weight_decay=train.weight_decay
            )
            for key, group in groups.items()
        }
        forward = torch.compile(model.loss) if options.fast else model.loss
        ours_x = images.contiguous(memory_format=layout)
        count = iter(range(10**9))

        def step_ours():
            train_step(
                forward,
                (ours_x,),
                groups,
                optimizers,
                options.autocast(),
                train,
                next(count),
            )

        built["steps"][OURS] = step_ours
        built["parameters"][OURS] = parameter_count(model) - parameter_count(
            model.discriminator
        )

    name = "taming-transformers VQModel + VQLPIPSWithDiscriminator"
    if only is None or only.startswith(name):  # and its channels-last row
        try:
            weights = perceptual.weights()
            taming = TamingVQGANStep(
                config, device, perceptual.features.net.state_dict(), weights
            )
            taming_x = 2 * images - 1
            if options.fast:
                taming_x = taming_x.contiguous(memory_format=layout)
                taming.autoencoder.to(memory_format=layout)
                taming.loss.to(memory_format=layout)
                # compiled as ours is: the forward pass and the loss module
                taming.forward = torch.compile(taming.forward)
                taming.loss_fn = torch.compile(taming.loss)
            built["steps"][name] = lambda: taming.step(taming_x, options.autocast())
            built["parameters"][name] = parameter_count(taming.autoencoder)
            if not options.fast:  # with --fast both sides are channels-last anyway
                built["steps"][name + ", channels-last"] = taming_in_layout(
                    taming, taming_x, options
                )
                built["parameters"][name + ", channels-last"] = built["parameters"][
                    name
                ]
            with torch.no_grad():
                probe = images.flip(-1)
                ours_lpips = perceptual.to(device)(images, probe)
                taming_lpips = taming.loss.perceptual_loss(
                    2 * images - 1, 2 * probe - 1
                )
                gap = (ours_lpips - taming_lpips.flatten()).abs().max().item()
            built["checks"].append(
                f"LPIPS: ours and taming's give the same distance on the same "
                f"weights (largest gap {gap:.1e}; mean distance {ours_lpips.mean():.3f})"
                + ("" if gap < 1e-4 else " FAILED")
            )
        except Missing as error:
            built["missing"].append(_missing_row(name, error))
    built["config"] = config
    built["batch"] = batch
    return built


def taming_in_layout(taming: TamingVQGANStep, x: torch.Tensor, options: Options):
    """A copy of taming's step with its modules and input channels-last, as
    ours trains: the layout's share of the difference, apart from the rest."""
    layout = torch.channels_last
    twin = copy.deepcopy(taming)  # the optimisers follow their parameters
    for module in (twin.autoencoder, twin.loss):
        module.to(memory_format=layout)
    x_last = x.contiguous(memory_format=layout)
    return lambda: twin.step(x_last, options.autocast())


def vqgan_step(options: Options) -> Comparison:
    device = options.torch_device
    built = vqgan_steps(options)
    timings = time_interleaved(built["steps"], options.repeats, device)
    rows = []
    for name, timing in timings.items():
        rows.append(
            Row(
                name,
                timing.rate(built["batch"]),
                parameters=built["parameters"][name],
                memory_mb=peak_memory(options, "vqgan", name, built["steps"][name]),
            )
        )
    config = built["config"]
    return Comparison(
        key="vqgan-step",
        title="VQGAN training step (generator and discriminator)",
        configuration=(
            f"chapter 5's {'small-scale ' if not options.quick else ''}VQGAN: "
            f"{config.image_size} × {config.image_size} pictures, batch "
            f"{built['batch']}, widths {config.channels}, {config.residual_blocks} "
            f"residual blocks per level, K = {config.vq.num_codes} codes of D = "
            f"{config.vq.code_dim}, a {config.discriminator.layers}-layer PatchGAN of "
            f"width {config.discriminator.channels}, LPIPS on a random VGG16 as the "
            "perceptual loss, random pictures"
        ),
        unit="images/s",
        higher_is_better=True,
        rows=rows + built["missing"],
        checks=built["checks"],
        note=(
            "This compares two codebases' training steps, networks included, not one "
            "network in two implementations. taming's step runs the encoder, quantiser "
            "and decoder once per optimiser, twice a step, because Lightning calls its "
            "`training_step` once per optimiser (Lightning itself is not timed: its "
            "loop is rebuilt here); ours runs them once and sends each loss backward "
            "into the parameters it trains. taming's decoder has one more residual "
            "block per level than its encoder and attention after every block at the "
            "lowest resolution; ours has the same blocks in both and attention only in "
            "the middle. Parameters: the autoencoder's (encoder, quantiser, decoder), "
            "not the discriminator's or LPIPS'. Ours trains channels-last "
            "(`t2i.train.fit` does); the channels-last row gives taming's the same "
            "memory layout. The check covers the loss network: there are no shared "
            "weights to compare elsewhere."
        ),
    )


def peak_memory(
    options: Options, case: str, name: str, step: Callable, size=None
) -> float | None:
    """MiB a training step adds at its peak: CUDA's counter on a GPU; on a CPU a
    fresh process (harness.cpu_memory_of)."""
    if options.gpu:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    settings = {"quick": options.quick, "fast": options.fast}
    return cpu_memory_of(case, name, settings, size)


# --- 3. sampling from the transformer prior --------------------------------


def to_taming_gpt(ours: Transformer, gpt: nn.Module) -> None:
    """Copy our weights into taming's minGPT (the same architecture: pre-norm
    blocks, GELU MLP of width 4 n_embd, learned positions)."""
    state = {
        "tok_emb.weight": ours.token_embedding.weight,
        "pos_emb": ours.position_embedding.weight[None],
        "ln_f.weight": ours.norm.weight,
        "ln_f.bias": ours.norm.bias,
        "head.weight": ours.head.weight,
    }
    for i, block in enumerate(ours.blocks):
        parts = {
            "ln1": block.norm_attention,
            "ln2": block.norm_mlp,
            "attn.query": block.attention.query,
            "attn.proj": block.attention.out,
            "mlp.0": block.mlp[0],
            "mlp.2": block.mlp[2],
        }
        for name, module in parts.items():
            state[f"blocks.{i}.{name}.weight"] = module.weight
            state[f"blocks.{i}.{name}.bias"] = module.bias
        weight, bias = block.attention.key_value.weight, block.attention.key_value.bias
        n = weight.shape[0] // 2
        state[f"blocks.{i}.attn.key.weight"], state[f"blocks.{i}.attn.value.weight"] = (
            weight[:n],
            weight[n:],
        )
        state[f"blocks.{i}.attn.key.bias"], state[f"blocks.{i}.attn.value.bias"] = (
            bias[:n],
            bias[n:],
        )
    missing, unexpected = gpt.load_state_dict(
        {k: v.detach() for k, v in state.items()}, strict=False
    )
    if unexpected or any(not k.endswith("attn.mask") for k in missing):
        raise RuntimeError(
            f"weights do not fit taming's GPT: missing {missing}, unexpected {unexpected}"
        )


def transformer_setting(options: Options) -> dict:
    if options.quick:
        return {"n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 64, "batch": 1}
    if options.gpu:
        return {
            "n_layer": 12,
            "n_head": 8,
            "n_embd": 512,
            "vocab_size": 1024,
            "batch": 8,
        }
    return {"n_layer": 4, "n_head": 4, "n_embd": 128, "vocab_size": 1024, "batch": 1}


def sampling(options: Options, tokens: int) -> Comparison:
    """Greedy sampling of ``tokens`` tokens after one start token."""
    device = options.torch_device
    setting = transformer_setting(options)
    batch = setting.pop("batch")
    torch.manual_seed(0)
    ours = (
        Transformer(TransformerConfig(block_size=tokens + 1, **setting))
        .to(device)
        .eval()
    )
    start = torch.zeros(batch, 1, dtype=torch.long, device=device)

    def run_ours():
        with options.autocast():
            return ours.generate(start, tokens, temperature=0.0)[:, 1:]  # greedy

    calls = {f"{OURS}, KV cache": run_ours}
    checks, missing = [], []
    try:
        mingpt = references.taming_gpt()
        gpt = mingpt.GPT(block_size=tokens + 1, **setting)
        to_taming_gpt(ours, gpt)
        gpt.to(device).eval()
        probe = torch.randint(
            setting["vocab_size"],
            (2, tokens + 1),
            generator=torch.Generator().manual_seed(2),
        ).to(device)
        with torch.no_grad():
            gap = (ours(probe) - gpt(probe)[0]).abs().max().item()
        checks.append(
            f"logits: ours and taming's GPT with the same weights agree to {gap:.1e} "
            f"on {tokens + 1:,} tokens (largest difference)"
            + ("" if gap < 1e-3 else " FAILED")
        )

        def run_taming():
            with options.autocast():
                return mingpt.sample(gpt, start, tokens, sample=False)[:, 1:]

        def run_taming_past():
            with options.autocast():
                return mingpt.sample_with_past(start, gpt, tokens, sample_logits=False)

        calls["taming-transformers sample (no cache)"] = run_taming
        calls["taming-transformers sample_with_past"] = run_taming_past
    except Missing as error:
        missing.append(_missing_row("taming-transformers sample", error))

    outputs = {name: call() for name, call in calls.items()}  # the warm-up
    mine = outputs.pop(next(iter(calls)))
    for name, theirs in outputs.items():
        same = (mine == theirs).float().mean().item()
        checks.append(
            f"{name}: {same:.1%} of the {mine.numel():,} greedy tokens the same as ours"
            + (
                ""
                if same == 1.0
                else " (a different token early changes all later ones)"
            )
        )
    # taming's loop without a cache takes minutes at 1,024 tokens on a CPU
    repeats = 1 if tokens > 256 and not options.gpu else options.repeats
    timings = time_interleaved(calls, repeats, device, warmup=0)
    rows = [
        Row(name, t.rate(batch * tokens), parameters=parameter_count(ours))
        for name, t in timings.items()
    ]
    described = ", ".join(f"{k} {v}" for k, v in setting.items())
    return Comparison(
        key=f"sampling-{tokens}",
        title=f"Sampling {tokens:,} tokens from the transformer prior",
        configuration=(
            f"{described}, random weights (an untrained model samples as fast as a "
            f"trained one), batch {batch}, greedy (always the most likely token), "
            "after one start token"
        ),
        unit="tokens/s",
        higher_is_better=True,
        rows=rows + missing,
        checks=checks,
        note=(
            "taming's `sample()` runs the whole sequence through the model for every "
            "new token: it is the baseline the cache is measured against, a "
            "different algorithm, not a competing implementation of ours. Its "
            "`sample_with_past()` keeps keys and values as ours does but concatenates "
            "the whole cache into one tensor at every step; ours writes each token's "
            "keys and values into per-layer buffers that double in size when full "
            "(it used to concatenate too, and build a mask for every new token, which "
            "profiling showed; both went). Parameters include one position embedding "
            "per token of the sequence, so they grow with it. Chapter 5 times the "
            "cache on its own tiny prior's short sequences, where it gains less."
        ),
    )


# --- 4. a dVAE training step -----------------------------------------------


class OpenAIDVAE(nn.Module):
    """openai's dVAE encoder and decoder, trained with the loss of ours
    (Gumbel-softmax sample, Gaussian reconstruction, KL to uniform), so that
    the two steps differ only in the networks."""

    def __init__(self, ours: DVAEConfig, n_hid: int):
        super().__init__()
        encoder_class, decoder_class = references.openai_dvae()
        # its constructor fails with requires_grad=True (an in-place init on a
        # leaf that requires grad), so it is built frozen and thawed after
        self.encoder = encoder_class(
            n_hid=n_hid, vocab_size=ours.num_codes, input_channels=ours.in_channels
        )
        self.decoder = decoder_class(
            n_hid=n_hid, vocab_size=ours.num_codes, output_channels=ours.in_channels
        )
        self.requires_grad_(True)
        self.config = ours

    def loss(self, batch):
        x = batch[0]
        logits = self.encoder(x)
        soft = F.gumbel_softmax(logits, tau=1.0, dim=1)
        stats = self.decoder(soft.float())  # it refuses anything but float32
        reconstruction = torch.sigmoid(stats[:, : x.shape[1]])
        squared = F.mse_loss(reconstruction, x) / (2 * self.config.sigma**2)
        kl = kl_to_uniform(logits).sum(dim=(1, 2)).mean() / x[0].numel()
        return {"loss": squared + kl}


def dvae_step(options: Options) -> Comparison:
    device = options.torch_device
    size, batch, n_hid = (
        (16, 2, 64) if options.quick else (64, 64 if options.gpu else 8, 64)
    )
    config = DVAEConfig(
        image_size=size,
        channels=(64, 128, 256),
        residual_blocks=2,
        num_codes=512,
        code_dim=64,
    )
    train = TrainConfig(steps=10**9, batch_size=batch, grad_clip=None)
    images = torch.rand(
        batch, 3, size, size, generator=torch.Generator().manual_seed(3)
    ).to(device)
    models = {OURS: DVAE(config)}
    missing = []
    name = f"openai DALL-E dVAE (n_hid {n_hid})"
    try:
        models[name] = OpenAIDVAE(config, n_hid)
    except Missing as error:
        missing.append(_missing_row(name, error))
    calls, parameters = {}, {}
    for key, model in models.items():
        model.to(device, memory_format=torch.channels_last).train()
        groups = optimizer_groups(model)
        optimizers = {k: torch.optim.AdamW([g], lr=1e-4) for k, g in groups.items()}
        forward = torch.compile(model.loss) if options.fast else model.loss
        x = images.contiguous(memory_format=torch.channels_last)

        def step(forward=forward, groups=groups, optimizers=optimizers, x=x):
            train_step(forward, (x,), groups, optimizers, options.autocast(), train, 0)

        calls[key] = step
        parameters[key] = parameter_count(model)
    timings = time_interleaved(calls, options.repeats, device)
    rows = [Row(k, t.rate(batch), parameters=parameters[k]) for k, t in timings.items()]
    return Comparison(
        key="dvae-step",
        title="dVAE training step",
        configuration=(
            f"{size} × {size} pictures, batch {batch}, K = 512 codes, one code per 8 × 8 "
            f"pixels; openai's with n_hid {n_hid}, ours with widths (64, 128, 256) and "
            "2 residual blocks, random pictures"
        ),
        unit="images/s",
        higher_is_better=True,
        rows=rows + missing,
        note=(
            "This compares two networks, not two implementations of one: both run "
            "the same loss in the same training step (`t2i.train.train_step`), and "
            "only the encoder and decoder differ. openai's has four groups of "
            "bottleneck residual blocks with a 7 × 7 input and 1 × 1 output "
            "convolution and max-pooling between groups; ours stride-2 convolutions "
            "with residual blocks. K = 512 and n_hid = 64 are the smallest its code "
            "accepts (the released dVAE has K = 8,192 and n_hid = 256). There are no "
            "shared weights, so no check."
        ),
    )


# 65,536 vectors against 16,384 codes: a (65,536 x 16,384) distance matrix of
# 4 GiB, of which the references make several (more than the 24 GiB of the CPU
# machine this book is built on); half the size on a CPU
LARGE_VQ_GPU = (65536, 256, 16384)
LARGE_VQ_CPU = (32768, 256, 8192)


def all_cases(options: Options) -> list[tuple[str, Callable[[], Comparison]]]:
    """The suite in order: (name, a call that runs one comparison)."""
    if options.quick:
        small, large = (256, 8, 16), (1024, 256, 256)
        sequence_lengths = [16, 32]
    else:
        small, large = (4096, 64, 512), LARGE_VQ_GPU if options.gpu else LARGE_VQ_CPU
        sequence_lengths = [256, 1024]
    return [
        ("vq", lambda: vq_layer(options, small)),
        ("vq", lambda: vq_layer(options, large, True)),
        ("vqgan", lambda: vqgan_step(options)),
        *[("sampling", lambda t=t: sampling(options, t)) for t in sequence_lengths],
        ("dvae", lambda: dvae_step(options)),
    ]
