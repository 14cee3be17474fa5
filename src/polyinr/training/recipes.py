"""Training recipes: loss, discriminator, optimiser, batch, EMA, schedule — separate from the model's size.

A *recipe* says how to train; a *model preset* (``models/registry.py``, beside each model) says how big the
generator is. A recipe is made for one size class — ``cpu`` (minutes on two cores) or ``paper`` (the papers'
GPU settings) — and combines with any registered model that has a preset of that size: a model's preset named
``cpu`` is CPU-sized, every other preset is paper-sized. Recipes register themselves with
:func:`register_recipe`; ``polyinr list`` shows them.

A recipe holds the settings of every loss and discriminator it knows (``losses``, ``discs``): choosing another
loss or discriminator than the recipe's own takes the recipe's settings for that one, or its defaults when the
recipe has none — never the settings of the one it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polyinr.discriminators.projected import AUTHORS_BACKBONES
from polyinr.errors import PolyinrError
from polyinr.registry import Registry
from polyinr.training.plateau import PlateauRule

CPU, PAPER = "cpu", "paper"  # size classes of recipes and model presets
AUTHORS_DIFFAUG = "color,translation,cutout"


@dataclass(frozen=True)
class Recipe:
    name: str
    size: str  # CPU or PAPER: the model presets it trains
    summary: str  # one line for `polyinr list`
    loss: str  # the registered loss it trains with
    disc: str  # the registered discriminator it trains with
    options: dict[str, Any] = field(default_factory=dict)  # fields of TrainingOptions (lr, batch, schedule, …)
    losses: dict[str, dict[str, Any]] = field(default_factory=dict)  # loss name → its settings in this recipe
    discs: dict[str, dict[str, Any]] = field(default_factory=dict)  # discriminator name → its settings
    model: dict[str, Any] = field(default_factory=dict)  # generator config fields, for generators that have them
    # Settings that scale with the total batch size, as NVIDIA's train.py derives them: batch → {"losses": {loss
    # name: settings}, "model": generator config fields}. Model fields apply to generators that have them.
    batch_scaled: Callable[[int], dict[str, dict[str, Any]]] | None = None
    notes: tuple[str, ...] = ()  # how it relates to the authors' code (shown by `polyinr train -n`)


RECIPES: Registry[Recipe] = Registry("training recipe", "recipes")


def register_recipe(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to the registry under its name."""
    if recipe.size not in (CPU, PAPER):
        raise PolyinrError(f"recipe {recipe.name!r}: size must be {CPU!r} or {PAPER!r}, got {recipe.size!r}")
    return RECIPES.add(recipe.name, recipe)


list_recipes = RECIPES.names  # recipe names, sorted
get_recipe = RECIPES.lookup  # the recipe of a name; an unknown name is a one-line error


def preset_size(preset: str) -> str:
    """The size class of a model preset: ``cpu`` is CPU-sized, every other preset paper-sized."""
    return CPU if preset == CPU else PAPER


def pair_recipe_and_preset(model: str, recipe: str | None, preset: str | None) -> tuple[str, str]:
    """``(recipe, model preset)`` for ``model`` from either or both names, with one-line errors on a mismatch.

    Only a recipe: the model's preset of the recipe's name, else its only preset of the recipe's size. Only a
    preset: the recipe of the preset's name, else the ``cpu`` recipe for a CPU-sized preset. Neither: ``cpu``.
    """
    from polyinr.models.registry import get_entry

    presets = sorted(get_entry(model).presets)
    if preset is not None and preset not in presets:
        raise PolyinrError(f"unknown preset {preset!r} for {model}; presets: {', '.join(presets) or 'none'}")
    if recipe is None and preset is None:
        recipe = CPU
    if recipe is None:
        if preset in RECIPES:
            recipe = preset
        elif preset_size(preset) == CPU:
            recipe = CPU
        else:
            raise PolyinrError(
                f"no training recipe is named {preset!r}: choose one of the paper-sized recipes "
                f"({', '.join(r for r in list_recipes() if RECIPES[r].size == PAPER)})"
            )
    chosen = get_recipe(recipe)
    same_size = [p for p in presets if preset_size(p) == chosen.size]
    if preset is None:
        if recipe in presets:
            preset = recipe
        elif len(same_size) == 1:
            preset = same_size[0]
        elif not same_size:
            raise PolyinrError(
                f"{model} has no {chosen.size}-sized preset for the {recipe} recipe; "
                f"its presets: {', '.join(presets) or 'none'}"
            )
        else:
            raise PolyinrError(
                f"{model} has several {chosen.size}-sized presets for the {recipe} recipe "
                f"({', '.join(same_size)}): choose one"
            )
    if preset_size(preset) != chosen.size:
        raise PolyinrError(
            f"the {recipe} recipe trains {chosen.size}-sized models, but the {preset} preset of "
            f"{model} is {preset_size(preset)}-sized; {chosen.size}-sized presets of {model}: "
            f"{', '.join(same_size) or 'none'}"
        )
    return recipe, preset


# ----------------------------------------------------------------------------------------------- recipes

_AUTHORS_PROJECTED = {"backbones": list(AUTHORS_BACKBONES), "diffaug": AUTHORS_DIFFAUG}
_AUTHORS_HINGE = {"blur_sigma": 2.0, "blur_fade_kimg": 300.0, "cls_weight": 0.0}
# What the Poly-INR authors' train.py / training_loop.py effectively ran: their hard-coded lr G 1e-4, D 2e-4
# with StyleGAN's lazy-regularisation intervals kept (G 4, D 16) although the hinge loss has no regularisation
# phase, so Adam runs at G 8e-5, β2 0.99^0.8 ≈ 0.99196 and D ≈ 1.882e-4, β2 0.99^(16/17) ≈ 0.99059; batch 64
# in micro-batches of 8 (--batch 64 --batch-gpu 8: the discriminator's BatchNorm sees 8 samples).
_AUTHORS_OPTIMISATION = dict(glr=1e-4, dlr=2e-4, g_reg_interval=4, d_reg_interval=16, batch=64, batch_gpu=8)
_AUTHORS_NOTES = (
    "Adam as the authors' code effectively ran: nominal lr G 1e-4, D 2e-4, scaled for the lazy-regularisation "
    "intervals G 4, D 16 their loop keeps although the hinge loss has no regularisation phase",
    "batch 64 in micro-batches of 8 (gradient accumulation): D's BatchNorm statistics cover 8 samples, as theirs",
    "every resolution stage starts as their next run: fresh D, blur restarting, fresh Adam, EMA ramp-up restarting",
    "stage lengths after the 32x32 stem are not published: ours",
    "each stage starts from the previous stage's best G_ema by the first snapshot metric (theirs: FID), else the last",
    "the native frame's input grid is learned as their gridt (an nn.Parameter their loop trains with G's Adam at "
    "G's lr and keeps in G_ema), restarting from the uniform grid at each stage's resolution; other windows and "
    "densities render on uniform coordinates",
)

register_recipe(
    Recipe(
        name="imagenet",
        size=PAPER,
        loss="hinge",
        disc="projected",
        summary="the Poly-INR authors' ImageNet recipe (StyleGAN-XL's): projected D, hinge, blur, 32 → 512",
        # Stage lengths after the 32² stem are not published; these are ours.
        options=dict(
            **_AUTHORS_OPTIMISATION,
            mirror=True,
            schedule="32:10000,64:5000,128:5000,256:2500,512:2500",
            tick_kimg=4.0,
            snap_ticks=50,
            pretrained_classes=True,
            learn_grid=True,
        ),
        losses={"hinge": _AUTHORS_HINGE},
        discs={"projected": _AUTHORS_PROJECTED},
        notes=(
            *_AUTHORS_NOTES,
            "conditional runs start G's and D's class tables from the pretrained 1000x320 "
            "EfficientNet-lite0 class embeddings",
        ),
    )
)

register_recipe(
    Recipe(
        name="ffhq",
        size=PAPER,
        loss="hinge",
        disc="projected",
        summary="the imagenet recipe for unconditional faces, 32 → 256",
        options=dict(
            **_AUTHORS_OPTIMISATION,
            mirror=True,
            schedule="32:10000,64:5000,128:5000,256:5000",
            tick_kimg=4.0,
            snap_ticks=50,
            learn_grid=True,
        ),
        losses={"hinge": _AUTHORS_HINGE},
        discs={"projected": _AUTHORS_PROJECTED},
        notes=_AUTHORS_NOTES,
    )
)

register_recipe(
    Recipe(
        name="cpu",
        size=CPU,
        loss="nonsaturating",
        disc="residual",
        summary="minutes on two CPU cores: StyleGAN2's residual D with R1 and a mode-seeking term (projected: one "
        "small backbone)",
        options=dict(glr=0.0025, dlr=0.0025, batch=32, kimg=80.0, tick_kimg=4.0, snap_ticks=5),
        # The mode-seeking term (MSGAN) keeps class-conditional samples as varied as the data: without it the main
        # job's digits were prototypes (within-class diversity 0.54 of the real digits', recall 0.20); with weight
        # 0.85 over 80 kimg, 0.99 and 0.77 at 92 % recognised (benchmarks/RESULTS.md, the demo section).
        losses={"nonsaturating": {"gamma": 0.1, "diversity_weight": 0.85}},
        discs={
            "residual": {"channel_base": 1024, "channel_max": 64},
            # One small backbone (timm's pretrained weights unless a weights file or random features are asked for).
            "projected": {"backbones": ["tf_efficientnet_lite0"], "diffaug": AUTHORS_DIFFAUG, "interp224": False},
        },
    )
)

register_recipe(
    Recipe(
        name="inr-gan",
        size=PAPER,
        loss="nonsaturating",
        disc="residual",
        summary="INR-GAN's (StyleGAN2-ADA's, no augmentation as released): residual D, R1 γ 10, x-flips, batch 64",
        # configs/main.yml + inr-gan.yml over StyleGAN2-ADA's cfg=auto at 256²: lr 0.0025 for both networks, Adam
        # (0, 0.99), EMA 20 kimg with ramp-up 0.05, minibatch-std groups of 4, D fmaps 1, no path length, no mixing.
        options=dict(glr=0.0025, dlr=0.0025, batch=64, mirror=True, kimg=25000.0, tick_kimg=4.0, snap_ticks=100),
        losses={"nonsaturating": {"gamma": 10.0}},
        discs={"residual": {"channel_base": 32768, "channel_max": 512, "mbstd_group": 4}},
    )
)


# StyleGAN3 (NVIDIA's train.py, configs T and R): StyleGAN2's residual D (channel base 32768, at most 512,
# minibatch-std groups of 4), non-saturating loss with lazy R1 every 16 steps, Adam (0, 0.99) at 0.0025 / 0.002
# (scaled for lazy regularisation by the loop), EMA half-life batch·10/32 kimg, ADA toward r_t = 0.6, and each
# synthesis layer's magnitude EMA at beta 0.5^(batch/20000). R1's gamma is left to the stage's resolution R
# (gamma None = 2·(R/256)², NVIDIA's recommended 0.5 / 2 / 8 / 32 at 128² / 256² / 512² / 1024²); set it per
# dataset with --gamma. Config R also blurs D's inputs: sigma 10 fading over batch·200/32 kimg.
def _stylegan3_scaled(batch: int) -> dict[str, dict[str, Any]]:
    return {"model": {"magnitude_ema_beta": 0.5 ** (batch / 20000)}}


def _stylegan3_r_scaled(batch: int) -> dict[str, dict[str, Any]]:
    return {**_stylegan3_scaled(batch), "losses": {"nonsaturating": {"blur_fade_kimg": batch * 200 / 32}}}


_SG3_OPTIONS = dict(
    glr=0.0025,
    dlr=0.002,
    batch=32,
    kimg=25000.0,
    tick_kimg=4.0,
    snap_ticks=50,
    aug="ada",
    ada_target=0.6,
    ada_kimg=500.0,
)
_SG3_DISC = {"residual": {"channel_base": 32768, "channel_max": 512, "mbstd_group": 4}}

register_recipe(
    Recipe(
        name="stylegan3",
        size=PAPER,
        loss="nonsaturating",
        disc="residual",
        summary="StyleGAN3-T's (NVIDIA): residual D, non-saturating + lazy R1 (gamma by resolution), ADA, batch 32",
        options=_SG3_OPTIONS,
        losses={"nonsaturating": {"gamma": None}},
        discs=_SG3_DISC,
        batch_scaled=_stylegan3_scaled,
    )
)

register_recipe(
    Recipe(
        name="stylegan3-r",
        size=PAPER,
        loss="nonsaturating",
        disc="residual",
        summary="StyleGAN3-R's: the stylegan3 recipe plus D-input blur sigma 10 fading over batch·200/32 kimg",
        options=_SG3_OPTIONS,
        losses={"nonsaturating": {"gamma": None, "blur_sigma": 10.0}},
        discs=_SG3_DISC,
        batch_scaled=_stylegan3_r_scaled,
    )
)

# StyleGAN2 as NVIDIA's stylegan3 repository trains it (train.py --cfg=stylegan2, training/loss.py StyleGAN2Loss):
# the stylegan3 recipe's D, lazy R1, ADA and EMA, with G's lr 0.002, path length regularisation (weight 2, every 4
# G steps on half the batch, decay 0.01; the loop scales G's Adam for that interval) and style mixing 0.9.
register_recipe(
    Recipe(
        name="stylegan2",
        size=PAPER,
        loss="nonsaturating",
        disc="residual",
        summary=(
            "StyleGAN2's (NVIDIA's --cfg=stylegan2; model stylegan2): path length 2, style mixing 0.9, lazy R1, ADA"
        ),
        options={**_SG3_OPTIONS, "glr": 0.002},
        losses={"nonsaturating": {"gamma": None, "pl_weight": 2.0, "style_mixing": 0.9}},
        discs=_SG3_DISC,
        notes=(
            "their train.py requires --gamma; without it R1's gamma follows the resolution, 2·(R/256)², as the "
            "stylegan3 recipe's",
            "their FP16 in the 4 highest resolutions runs on CUDA only; here every layer computes in float32 (or AMP "
            "when asked), with their conv_clamp 256",
        ),
    )
)

# StyleGAN-XL's own recipe, as their train.py sets the stem run and each super-resolution run: the projected
# recipe above (hinge loss, two frozen backbones, DiffAugment, blur 2 over 300 kimg, no R1) with XL's learning
# rates as their loop applies them: nominal G 0.0025, D 0.002 scaled for the lazy-regularisation intervals G 4,
# D 16 (lr 0.002 / ≈ 0.00188, β2 0.99^0.8 / 0.99^(16/17)). A 16² stem grown stage by stage, each doubling a
# stage of the model's growth with heads of 7 layers (their --head_layers default; the model's preset).
# Stem: path length 2.0 from 1 M images shown, every 4 G steps on half of each micro-batch (pl_decay 0.01).
# Super-resolution stages: path length 0, only the new head trains (their train_head_only), classifier guidance
# when asked for (their --cls_weight defaults to 0). Batch 2048 (the paper's at 16² and 32²) in micro-batches
# of 8 (their README's --batch-gpu). Stage lengths are not published; these are ours, and each is the most a
# stage trains: with metrics at snapshots, a stage ends once its FID has reached a plateau, as the authors did.
_XL_NOTES = (
    "Adam as their loop runs it: nominal lr G 0.0025, D 0.002, scaled for the lazy-regularisation intervals G 4 "
    "(their path-length phase) and D 16 (kept although the hinge loss has no D regularisation)",
    "batch 2048, the paper's at 16x16 and 32x32, for every stage: the paper does not state the later stages' "
    "batch (their README's commands use 64), and a run has one batch size for all its stages",
    "micro-batches of 8 (their README's --batch-gpu 8): D's BatchNorm statistics cover 8 samples, as theirs",
    "path length as their loss.py computes it on the stem: weight 2.0 from 1 M images shown (the paper says "
    "after 200k; the code's 1 M is kept), Greg every 4 G steps, half of each micro-batch, pl_decay 0.01, "
    "gradients taken with respect to w only; their pl_no_weight_grad flag changes nothing in their code, whose "
    "conv2d_gradfix always calls the plain convolution",
    "super-resolution stages train only the new head and the Fourier input (mapping and earlier layers frozen), "
    "as their train_head_only; --no-head-only trains everything",
    "classifier guidance (deit_small_distilled_patch16_224) in super-resolution stages only, off unless "
    "--cls-weight is given (their default 0); the classifier is built when the first such stage starts",
    "with --metrics (FID first), each stage but the last ends when its own snapshots' FID has reached a plateau "
    "(--plateau-margin, --plateau-snapshots), as the paper trains each stage until FID stops improving, at the "
    "latest after its kimg, and the next starts from its best snapshot; without metrics, stages end after their "
    "kimg (--no-stage-plateau: always)",
    "stage lengths are not published: ours",
    "every resolution stage starts as their next run: fresh D, blur restarting, fresh Adam, EMA ramp-up "
    "restarting, G from the previous stage's G_ema",
    "conditional runs start G's and D's class tables from the pretrained 1000x320 EfficientNet-lite0 class "
    "embeddings (--class-embeddings), as their mapping and discriminator load them",
)

register_recipe(
    Recipe(
        name="stylegan-xl",
        size=PAPER,
        loss="hinge",
        disc="projected",
        summary="StyleGAN-XL's: projected D, hinge, blur, path length on a 16² stem, heads grown 16 → 256 "
        "(grown models: stylegan-xl)",
        options=dict(
            glr=0.0025,
            dlr=0.002,
            g_reg_interval=4,
            d_reg_interval=16,
            batch=2048,
            batch_gpu=8,
            mirror=True,
            schedule="16:10000,32:5000,64:5000,128:5000,256:5000",
            tick_kimg=4.0,
            snap_ticks=50,
            pretrained_classes=True,
            stage_plateau=PlateauRule(),
        ),
        losses={"hinge": {**_AUTHORS_HINGE, "pl_weight": 2.0, "pl_start_kimg": 1000.0}},
        discs={"projected": _AUTHORS_PROJECTED},
        model={"train_head_only": True},
        notes=_XL_NOTES,
    )
)

# InfinityGAN (Lin et al. 2022): the authors' InfinityGAN.yaml. Patches of the generator's size are cut from the
# images (resized to 128, upsampled to 197 in the loss); non-saturating + lazy R1 10, path length 2 every 4, the
# vertical-position loss through the discriminator's position output, mode-seeking diversity, mixing 0.9,
# lr 0.002 (the loop applies the lazy-regularisation scaling), batch 16, G EMA 0.5^(32/10000) a step (5 kimg).
_INFINITYGAN_LOSS = {
    "gamma": 10.0,
    "pl_weight": 2.0,
    "coord_weight": 1.0,
    "diversity_weight": 1.0,
    "mixing": 0.9,
    "upsample": 197 / 128,
}

register_recipe(
    Recipe(
        name="infinitygan",
        size=PAPER,
        loss="infinitygan",
        disc="residual",
        summary="the InfinityGAN authors' recipe: 101² patches of 197² upsampled photos, position + diversity losses",
        options=dict(
            model="infinitygan",
            glr=0.002,
            dlr=0.002,
            batch=16,
            resolution=128,
            kimg=12800.0,
            ema_kimg=5.0,
            ema_rampup=None,
            tick_kimg=4.0,
            snap_ticks=50,
        ),
        losses={"infinitygan": _INFINITYGAN_LOSS},
        discs={"residual": {"channel_base": 32768, "channel_max": 512, "aux_outputs": 1}},
    )
)

register_recipe(
    Recipe(
        name="infinitygan-cpu",
        size=CPU,
        loss="infinitygan",
        disc="residual",
        summary="InfinityGAN in minutes on two CPU cores: 37² patches of the built-in photographs",
        options=dict(
            model="infinitygan",
            data="builtin:photos",
            glr=0.002,
            dlr=0.002,
            batch=8,
            resolution=48,
            kimg=20.0,
            ema_kimg=1.0,
            ema_rampup=None,
            tick_kimg=1.0,
            snap_ticks=5,
        ),
        losses={"infinitygan": _INFINITYGAN_LOSS},
        discs={"residual": {"channel_base": 1024, "channel_max": 64, "aux_outputs": 1}},
    )
)
