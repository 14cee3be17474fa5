"""``polyinr embed-classes``: pretrained class embeddings of a labelled dataset."""

from __future__ import annotations

import click

from polyinr.cli.group import main
from polyinr.cli.options import device_option, resolve_device
from polyinr.data.class_embeddings import compute_class_embeddings, save_class_embeddings
from polyinr.progress import progress_bar


@main.command("embed-classes")
@click.option("--data", required=True, metavar="PATH", help="Labelled dataset (folder, zip or built-in name).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Output .safetensors file.")
@click.option(
    "--feature-network",
    default="tf_efficientnet_lite0",
    metavar="NAME",
    help="timm network whose pooled last-stage features are averaged per class.",
)
@click.option(
    "--features-pretrained",
    type=click.BOOL,
    default=True,
    metavar="BOOL",
    help="Download the network's pretrained weights (false: random weights).",
)
@click.option(
    "--features-weights",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Local weights file for the network (safetensors or a PyTorch state dict).",
)
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, help="Images per forward pass.")
@device_option
def embed_classes(data, out_path, feature_network, features_pretrained, features_weights, batch_size, device):
    """Per-class mean features of a labelled dataset, the class tables' starting point (StyleGAN-XL)."""
    from polyinr.data.datasets import open_dataset

    dataset = open_dataset(data, cond=True)
    with progress_bar(len(dataset), "embed-classes", unit="img") as bar:
        table = compute_class_embeddings(
            dataset,
            feature_network,
            pretrained=features_pretrained,
            device=resolve_device(device),
            batch_size=batch_size,
            on_progress=lambda done, _total: bar.update(done - bar.n),
            weights=features_weights,
        )
    path = save_class_embeddings(table, out_path, feature_network)
    click.echo(f"wrote {path} ({table.shape[0]} classes × {table.shape[1]})")
