"""``polyinr train``: StyleGAN's flags plus --recipe, --model, --preset, --loss, --disc, --schedule.

The choices of --recipe, --loss and --disc come from their registries. Settings of the loss (--gamma,
--blur-sigma, --blur-fade-kimg, --cls-weight, --diversity-weight) and of the discriminator (--backbones,
--features-pretrained, --features-weights) that the chosen one does not use are refused with the flag's name.
"""

from __future__ import annotations

import functools
import json
from contextlib import ExitStack

import click

from polyinr.cli.group import main, resumable
from polyinr.discriminators import list_discriminators
from polyinr.errors import UnusedSetting
from polyinr.models.generator import CapabilityMissing
from polyinr.progress import progress_bar
from polyinr.training.losses import LOSSES, loss_settings
from polyinr.training.options import resolve_options
from polyinr.training.plateau import PlateauRule, plateau_rule
from polyinr.training.recipes import list_recipes

LOSS_FLAGS = {
    "gamma": "--gamma",
    "blur_sigma": "--blur-sigma",
    "blur_fade_kimg": "--blur-fade-kimg",
    "cls_weight": "--cls-weight",
    "diversity_weight": "--diversity-weight",
}
DISC_FLAGS = {"pretrained": "--features-pretrained", "backbones": "--backbones", "weights": "--features-weights"}


class TrainingProgress:
    """The training progress bar (kimg, images/s, ETA, losses): it moves with every step, and each tick adds
    the losses. It never runs past 100 % or backwards, whatever the batch and ``--kimg``."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar = None

    def on_step(self, cur_nimg: int, total_nimg: int) -> None:
        total, kimg = round(total_nimg / 1000, 3), round(min(cur_nimg, total_nimg) / 1000, 3)
        if self.bar is None:  # rate and ETA are measured from the first step this process makes
            self.bar = progress_bar(total=total, initial=kimg, desc=self.desc, unit="kimg")
        self.bar.total = total
        if kimg > self.bar.n:
            self.bar.update(kimg - self.bar.n)
            self.bar.n = kimg  # exact: float increments must not drift past the total

    def on_tick(self, tick) -> None:
        self.on_step(tick.cur_nimg, tick.total_nimg)
        losses = {k.removeprefix("Loss/"): f"{v:.3g}" for k, v in tick.stats.items() if k.startswith("Loss/")}
        ips = tick.stats.get("Timing/images_per_sec", 0.0)
        self.bar.set_postfix({"res": tick.stage.resolution, "img/s": f"{ips:.0f}", **losses})

    def on_message(self, text: str) -> None:
        (self.bar.write if self.bar is not None else click.echo)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@main.command()
@click.option("--outdir", default=None, metavar="DIR", help="Where run directories go.  [default: runs]")
@click.option("--data", default=None, metavar="PATH", help="Image folder, dataset zip or builtin:NAME.")
@click.option(
    "--cond", type=click.BOOL, default=None, metavar="BOOL", help="Train class-conditional on the dataset's labels."
)
@click.option("--mirror", type=click.BOOL, default=None, metavar="BOOL", help="Add x-flipped copies of the images.")
@click.option(
    "--recipe",
    default=None,
    type=click.Choice(list_recipes()),
    help="Training recipe (polyinr list).  [default: the preset's, else cpu]",
)
@click.option("--model", default=None, help="Registered generator.  [default: poly-inr]")
@click.option(
    "--preset",
    default=None,
    metavar="NAME",
    help="The model's preset (its size), matching the recipe's size.  [default: the recipe's]",
)
@click.option("--loss", default=None, type=click.Choice(sorted(LOSSES)), help="Loss.  [default: the recipe's]")
@click.option(
    "--disc", default=None, type=click.Choice(list_discriminators()), help="Discriminator.  [default: the recipe's]"
)
@click.option("--schedule", default=None, metavar="R:KIMG,…", help="Progressive grids, e.g. 32:2000,64:1000.")
@click.option("--kimg", type=float, default=None, help="Duration in thousands of images (without --schedule).")
@click.option(
    "--stage-plateau/--no-stage-plateau",
    default=None,
    help="End each stage but the last when its first metric at snapshots stops improving (its kimg the "
    "most).  [default: on with the stylegan-xl recipe and --metrics]",
)
@click.option(
    "--plateau-margin",
    type=float,
    default=None,
    help=f"Improvement that still counts, as a fraction of the stage's best value so far (turns "
    f"--stage-plateau on).  [default: {PlateauRule.margin}]",
)
@click.option(
    "--plateau-snapshots",
    type=int,
    default=None,
    help=f"Snapshots that must bring no more than the margin to end a stage (turns --stage-plateau "
    f"on).  [default: {PlateauRule.patience}]",
)
@click.option("--resolution", type=int, default=None, help="Training resolution (without --schedule).")
@click.option("--batch", type=int, default=None, help="Total batch size.")
@click.option("--batch-gpu", type=int, default=None, help="Micro-batch per process (gradient accumulation).")
@click.option("--glr", type=float, default=None, help="Generator learning rate (nominal; -n shows Adam's).")
@click.option("--dlr", type=float, default=None, help="Discriminator learning rate (nominal; -n shows Adam's).")
@click.option(
    "--g-reg-interval",
    type=click.IntRange(min=1),
    default=None,
    help="Scale G's Adam lr/beta2 for lazy regularisation every N steps (authors' recipe: 4).",
)
@click.option(
    "--d-reg-interval",
    type=click.IntRange(min=1),
    default=None,
    help="Scale D's Adam lr/beta2 for lazy regularisation every N steps (authors' recipe: 16).",
)
@click.option("--gamma", type=float, default=None, help="R1 weight (nonsaturating loss).")
@click.option(
    "--diversity-weight",
    type=float,
    default=None,
    help="Mode-seeking term's weight (nonsaturating: MSGAN on same-class pairs; infinitygan); 0 = off.",
)
@click.option("--ema-kimg", type=float, default=None, help="G EMA half-life in kimg.  [default: batch·10/32]")
@click.option("--blur-sigma", type=float, default=None, help="Initial sigma of the D-input blur.")
@click.option("--blur-fade-kimg", type=float, default=None, help="kimg over which the blur fades out.")
@click.option("--aug", default=None, type=click.Choice(["noaug", "ada", "fixed"]), help="D-input augmentation (ADA).")
@click.option("--p", "aug_p", type=float, default=None, help="Augmentation probability (initial for ada).")
@click.option("--target", "ada_target", type=float, default=None, help="ADA target for E[sign D(real)].")
@click.option("--augpipe", default=None, type=click.Choice(["bgc", "bg", "c"]), help="Augmentation transforms.")
@click.option(
    "--cls-weight",
    type=float,
    default=None,
    help="Guidance as StyleGAN-XL's cls_weight, after the first stage; 0 = off (hinge).",
)
@click.option(
    "--class-embeddings",
    default=None,
    metavar="FILE",
    help="Pretrained class table (embed-classes), or a converted conditional checkpoint.",
)
@click.option(
    "--pretrained-classes",
    type=click.BOOL,
    default=None,
    metavar="BOOL",
    help="Require --class-embeddings when conditional (imagenet recipe: true).",
)
@click.option(
    "--learn-grid/--no-learn-grid",
    default=None,
    help="Learn the native frame's input coordinates with G, anew each stage (poly-inr; imagenet and "
    "ffhq recipes: on).",
)
@click.option(
    "--features-pretrained", type=click.BOOL, default=None, metavar="BOOL", help="Projected D: pretrained backbones."
)
@click.option("--backbones", default=None, metavar="A,B", help="Projected D: timm feature networks.")
@click.option(
    "--features-weights",
    default=None,
    metavar="NAME=FILE,…",
    help="Projected D: local weights file per backbone (safetensors or a state dict).",
)
@click.option("--tick", "tick_kimg", type=float, default=None, help="Progress report interval in kimg.")
@click.option("--snap", "snap_ticks", type=int, default=None, help="Snapshot interval in ticks.")
@click.option("--keep", "keep_snapshots", type=int, default=None, help="Snapshots kept.")
@click.option("--metrics", default=None, metavar="LIST", help="Metrics at each snapshot, or none.")
@click.option("--seed", type=int, default=None, help="Random seed.  [default: 0]")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Data-loading worker processes (0 = the training process).  [default: 2]",
)
@click.option("--resume", default="auto", help="auto (continue the matching run), new, or a run directory.")
@click.option("--device", default=None, help="cpu, cuda, cuda:N or auto.")
@click.option("--bf16", is_flag=True, default=None, help="bf16 autocast of G and D (CUDA).")
@click.option("--tf32", is_flag=True, default=None, help="TF32 matmuls and convolutions (CUDA).")
@click.option("--compile", is_flag=True, default=None, help="torch.compile G's synthesis and D (CUDA).")
@click.option("--desc", default=None, help="Extra words for the run directory name.")
@click.option("--channels", type=int, default=None, help="Generator width n (overrides the preset).")
@click.option(
    "--head-only/--no-head-only",
    default=None,
    help="Grown models (stylegan-xl): each stage after the first trains only its new layers and the "
    "Fourier input.  [default: on with the stylegan-xl recipe]",
)
@click.option(
    "--head-layers",
    type=int,
    default=None,
    help="Grown models (stylegan-xl): layers each growth stage adds, ToRGB aside.  [default: the preset's, 7]",
)
@click.option("-n", "--dry-run", is_flag=True, help="Print the resolved configuration and exit.")
@resumable
def train(
    cond,
    mirror,
    recipe,
    preset,
    gamma,
    blur_sigma,
    blur_fade_kimg,
    cls_weight,
    diversity_weight,
    features_pretrained,
    backbones,
    features_weights,
    metrics,
    resume,
    channels,
    head_only,
    head_layers,
    stage_plateau,
    plateau_margin,
    plateau_snapshots,
    dry_run,
    **flags,
):
    """Train a generator; running the same command again resumes it."""
    if plateau_margin is not None or plateau_snapshots is not None:
        if stage_plateau is False:
            raise click.ClickException("--plateau-margin and --plateau-snapshots do not apply with --no-stage-plateau")
        stage_plateau = plateau_rule(plateau_margin, plateau_snapshots)
    loss_options = {
        "gamma": gamma,
        "blur_sigma": blur_sigma,
        "blur_fade_kimg": blur_fade_kimg,
        "cls_weight": cls_weight,
        "diversity_weight": diversity_weight,
    }
    disc_options = {"pretrained": features_pretrained}
    if backbones is not None:
        disc_options["backbones"] = [b.strip() for b in backbones.split(",") if b.strip()]
    if features_weights is not None:
        pairs = [item.partition("=") for item in features_weights.split(",") if item.strip()]
        if any(not sep or not name or not path for name, sep, path in pairs):
            raise click.BadParameter("expected NAME=FILE[,NAME=FILE…]", param_hint="--features-weights")
        disc_options["weights"] = {name.strip(): path.strip() for name, _, path in pairs}
    if metrics is not None:
        from polyinr.metrics import parse_metrics

        flags["metrics"] = tuple(parse_metrics(metrics))
    try:
        options = resolve_options(
            recipe,
            preset=preset,
            cond=cond,
            mirror=mirror,
            loss_options=loss_options,
            disc_options=disc_options,
            stage_plateau=stage_plateau,
            model_overrides=_model_overrides(channels, head_only, head_layers),
            **flags,
        )
    except UnusedSetting as e:
        raise click.ClickException(_unused_flag_message(e)) from None
    except CapabilityMissing as e:  # the only capability the options ask of the model: a learned grid
        raise click.ClickException(f"--learn-grid does not apply: {e}") from None
    from polyinr.training.setup import ClassTableMissing

    if dry_run:
        from polyinr.training.setup import resolved_run

        try:
            from polyinr.metrics import metric_goal

            resolved = resolved_run(options, metric_goal)
        except ClassTableMissing as e:
            raise click.ClickException(_class_table_message(e)) from None
        click.echo(json.dumps({"training": options.to_json(), **resolved}, indent=2, sort_keys=True))
        return
    from polyinr.cli.metrics import StageBars
    from polyinr.discriminators.feature_networks import WeightsUnavailable
    from polyinr.metrics import evaluate_snapshot, metric_goal
    from polyinr.training.loop import training_loop

    progress = TrainingProgress("train")
    try:
        with ExitStack() as metric_bars:  # a bar per metric pass at each snapshot
            run_dir = training_loop(
                options,
                resume=resume,
                on_tick=progress.on_tick,
                on_message=progress.on_message,
                evaluate=functools.partial(evaluate_snapshot, on_progress=StageBars(metric_bars)),
                on_step=progress.on_step,
                goal=metric_goal,
            )
    except ClassTableMissing as e:
        raise click.ClickException(_class_table_message(e)) from None
    except WeightsUnavailable as e:
        if e.name not in options.disc_options.get("backbones", ()):
            raise
        raise click.ClickException(f"{e} (--features-pretrained false, or --features-weights {e.name}=FILE)") from None
    finally:
        progress.close()
    click.echo(f"run directory: {run_dir}")


def _class_table_message(error: Exception) -> str:
    """The missing-class-table error with both ways of getting one, in the command line's words."""
    return (
        f"{error}: run `polyinr embed-classes --data DATA --out TABLE.safetensors`, or `polyinr convert` an "
        f"authors' checkpoint and give its directory, then --class-embeddings TABLE (--pretrained-classes false "
        f"trains randomly initialised tables)"
    )


def _model_overrides(channels: int | None, head_only: bool | None, head_layers: int | None) -> dict | None:
    """The generator settings given as flags (None: none)."""
    given = {"channels": channels, "train_head_only": head_only, "head_layers": head_layers}
    return {name: value for name, value in given.items() if value is not None} or None


def _unused_flag_message(error: UnusedSetting) -> str:
    """The library's 'X does not use S' in the command line's words: the flag, and what it applies to."""
    flag = LOSS_FLAGS.get(error.setting) or DISC_FLAGS.get(error.setting)
    if flag is None:
        return str(error)
    if error.setting in LOSS_FLAGS:
        users = [f"--loss {name}" for name in sorted(LOSSES) if error.setting in loss_settings(name)]
    else:
        from polyinr.discriminators import discriminator_settings

        users = [f"--disc {name}" for name in list_discriminators() if error.setting in discriminator_settings(name)]
    return f"{flag} does not apply to {error.owner}; it applies with {' or '.join(users)}"
