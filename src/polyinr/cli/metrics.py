"""Commands that measure a generator: ``metrics`` (quality and equivariance) and ``cost``."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import click
import torch

from polyinr.cli.group import main
from polyinr.cli.models import network_option
from polyinr.cli.options import device_option, resolve_device
from polyinr.errors import PolyinrError
from polyinr.metrics import (
    append_metric_result,
    compute_metric,
    find_run_dir,
    metric_detector,
    parse_metrics,
)
from polyinr.metrics.sampling import LABEL_SAMPLING
from polyinr.pretrained import load_network, resolve_network
from polyinr.progress import progress_bar


class StageBars:
    """``on_progress(stage, done, total)`` → one progress bar per stage, closed when the next stage (or a new pass
    of the same stage, counting from the start again) starts."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack, self.stage, self.bar = stack, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage or done < self.bar.n:
            if self.bar is not None:
                self.bar.close()
            self.stage, self.bar = stage, self.stack.enter_context(progress_bar(total, stage, unit="img"))
        self.bar.update(done - self.bar.n)


@main.command()
@network_option
@click.option(
    "--metrics",
    "metric_spec",
    default="fid50k_full",
    metavar="LIST",
    help="Comma-separated metrics, e.g. fid50k_full,kid50k_full,pr50k3_full,eqt50k_int,eqr50k,"
    "scaleinv_fid10k_S4,cas (N in thousands: fid0.1k_full = 100 images); in a built-in dataset's "
    "own feature space (no --data needed): fid_digits,kid_digits,pr_digits,div_digits,"
    "cas_digits,scaleinv_fid_S4_digits (also _shapes; _photos, _faces, _textures without cas and "
    "div); against --data, in a small space fitted to those images (trained once, tens of "
    "seconds, cached): fid_data,kid_data,pr_data,fid0.5k_data,scaleinv_fid_S4_data.",
)
@click.option(
    "--data",
    default=None,
    metavar="DATA",
    help="Real images: folder, dataset zip or builtin:NAME (for metrics against real data).",
)
@click.option("--mirror", type=bool, default=False, metavar="BOOL", help="Add x-flipped copies of the real images.")
@click.option(
    "--resolution",
    type=click.IntRange(min=2),
    default=None,
    help="Read real images and render samples at this resolution (default: the generator's).",
)
@click.option(
    "--labels",
    "label_sampling",
    type=click.Choice(LABEL_SAMPLING),
    default="dataset",
    help="Classes of conditional samples: the dataset's label distribution, or uniform.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, help="First seed of the generated samples.")
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=32, help="Images per batch.")
@click.option("--workers", "num_workers", type=click.IntRange(min=0), default=0, help="Data loading processes.")
@device_option
def metrics(network, metric_spec, data, mirror, resolution, label_sampling, seed, batch_size, num_workers, device):
    """Compute quality / equivariance metrics; appended to metric-<name>.jsonl when CKPT is in a run directory."""
    names = parse_metrics(metric_spec)
    if not names:
        raise PolyinrError("no metrics given: use --metrics, e.g. --metrics fid50k_full")
    device = resolve_device(device)
    network = str(resolve_network(network))  # a released model: fetched once, then its cached checkpoint
    G = load_network(network, device)
    dataset = None
    if data is not None:
        from polyinr.data.datasets import open_dataset

        dataset = open_dataset(data, resolution=resolution or G.img_resolution, cond=G.num_classes > 0, mirror=mirror)
    if dataset is None and G.num_classes and label_sampling == "dataset":
        click.echo(f"no --data: the {G.num_classes} classes are sampled uniformly")
    run_dir = find_run_dir(network)
    width = max(len(name) for name in names) + len("_precision")
    click.echo(f"{'metric':<{width}}  {'value':>12}  {'time':>8}  detector")
    for name in names:
        start = time.perf_counter()
        with ExitStack() as stack:
            results = compute_metric(
                name,
                G,
                dataset,
                device,
                batch_size,
                num_workers,
                StageBars(stack),
                label_sampling=label_sampling,
                seed=seed,
            )
        seconds = time.perf_counter() - start
        detector = metric_detector(name, dataset=dataset)
        for key, value in results.items():
            click.echo(f"{key:<{width}}  {value:>12.4f}  {seconds:>7.1f}s  {detector}")
        if run_dir is not None:
            path = append_metric_result(run_dir, name, results, Path(network).name, detector)
            click.echo(f"{'':<{width}}  appended to {path}")


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@main.command()
@click.argument("checkpoint", metavar="NETWORK")
@click.option("--resolution", type=click.IntRange(min=1), default=None, help="Pixels a side (default: native).")
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=8, help="Batch size of the timing.")
@click.option("--iterations", type=click.IntRange(min=1), default=3, help="Timed batches.")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default="float32", help="Autocast dtype of the timing.")
@device_option
def cost(checkpoint, resolution, batch_size, iterations, dtype, device):
    """Parameters, multiply-adds per image, images/s and peak memory of a generator on this device."""
    from polyinr.metrics.cost import measure_cost

    device = resolve_device(device)
    G = load_network(checkpoint, device)
    report = measure_cost(G, resolution, batch_size, device, DTYPES[dtype], iterations)
    width = max(len(label) for label, _ in report.rows())
    for label, value in report.rows():
        click.echo(f"{label:<{width}}  {value}")
