"""The authors' released generators by name: ``stylegan3-t-ffhq-1024`` → a polyinr checkpoint, fetched once.

:data:`RELEASES` lists the checkpoints the authors of StyleGAN3, StyleGAN-XL, INR-GAN, Poly-INR and InfinityGAN
publish, each with the URL their own README gives (``source`` names that file), the converter that reads it,
the size and SHA-256 where the authors publish them (None: not published), the licence and the paper's result.
:func:`resolve_network` turns a ``--network`` value (a checkpoint or run directory, a released model's name, or its
URL) into a checkpoint directory. A released model is downloaded once into ``<cache>/pretrained/<name>.pkl``
(:mod:`polyinr.downloads`: resumable, verified, never half-written), converted by the restricted importer into the
checkpoint ``<cache>/pretrained/<name>/`` beside it (nothing in the file is run; a pickle that asks to run code is
refused as it is from disk) and kept: later calls never touch the network. One process fetches and converts while
the others wait for it. A model the authors share only through a page for a browser is listed too, with what to
do by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from polyinr.checkpoint import CONFIG_NAME, CheckpointError, load_generator
from polyinr.downloads import Unreachable, cache_dir, download, file_lock
from polyinr.errors import PolyinrError
from polyinr.importers import convert_checkpoint
from polyinr.models.generator import Generator


@dataclass(frozen=True)
class Release:
    """One released checkpoint of a paper's authors."""

    name: str  # short name: <model>-<dataset>-<resolution>
    converter: str  # the importer that reads the file (polyinr convert --from)
    dataset: str
    resolution: int  # pixels a side of the native frame
    url: str  # the file itself; or, when not direct, the page a browser fetches it from
    source: str  # the authors' file that gives the URL (repository and path)
    licence: str  # as the authors state it
    paper_fid: float | None  # the FID the authors report for this checkpoint (None: not reported)
    size: int | None = None  # bytes, when the authors publish it
    sha256: str | None = None  # when the authors publish it
    direct: bool = True  # False: the authors share it through a page that needs a browser (a Drive folder)

    def by_hand(self) -> str:
        """What to do with the file once fetched by hand."""
        return f"convert it with polyinr convert (format {self.converter}) and use the converted checkpoint"


NVIDIA_LICENCE = "NVIDIA Source Code (non-commercial)"
SG3 = "NVlabs/stylegan3 README.md"
SG3_URL = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
XL = "autonomousvision/stylegan-xl README.md"
XL_URL = "https://s3.eu-central-1.amazonaws.com/avg-projects/stylegan_xl/models/"
INR = "universome/inr-gan README.md"
INR_URL = "https://kaust-cair.s3.amazonaws.com/inr-gan/checkpoints/"
POLY = "Rajhans0/Poly_INR README.md"
INF = "hubert0527/infinityGAN README.md"


# The StyleGAN3 paper's FIDs of the released networks it reports (Karras et al. 2021, results of configs T and R).
SG3_PAPER_FID = {("t", "ffhq"): 2.79, ("r", "ffhq"): 3.07, ("t", "afhqv2"): 4.04, ("r", "afhqv2"): 4.40}


def _stylegan3(config: str, dataset: str, resolution: int) -> Release:
    url = f"{SG3_URL}stylegan3-{config}-{dataset}-{resolution}x{resolution}.pkl"
    return Release(
        f"stylegan3-{config}-{dataset}-{resolution}",
        "stylegan3",
        dataset,
        resolution,
        url,
        SG3,
        NVIDIA_LICENCE,
        SG3_PAPER_FID.get((config, dataset)),
    )


def _stylegan_xl(dataset: str, resolution: int, fid: float) -> Release:
    file = f"{dataset}{resolution}" if dataset != "cifar10" else dataset
    return Release(
        f"stylegan-xl-{dataset}-{resolution}", "stylegan-xl", dataset, resolution, f"{XL_URL}{file}.pkl", XL, "MIT", fid
    )


def _inr_gan(dataset: str, file: str, fid: float) -> Release:
    return Release(
        f"inr-gan-{dataset}-256",
        "inr-gan",
        dataset,
        256,
        f"{INR_URL}{file}.pkl",
        INR,
        f"{NVIDIA_LICENCE}, as the README assumes",
        fid,
    )


def _by_hand(name: str, converter: str, dataset: str, resolution: int, page: str, source: str) -> Release:
    return Release(name, converter, dataset, resolution, page, source, "none stated", None, direct=False)


RELEASES: dict[str, Release] = {
    r.name: r
    for r in [
        *(
            _stylegan3(config, dataset, res)
            for config in "tr"
            for dataset, res in [
                ("ffhq", 1024),
                ("ffhqu", 1024),
                ("ffhqu", 256),
                ("metfaces", 1024),
                ("metfacesu", 1024),
                ("afhqv2", 512),
            ]
        ),
        *(
            _stylegan_xl("imagenet", res, fid)
            for res, fid in [(16, 0.73), (32, 1.11), (64, 1.52), (128, 1.77), (256, 2.26), (512, 2.42), (1024, 2.51)]
        ),
        _stylegan_xl("cifar10", 32, 1.85),
        *(_stylegan_xl("ffhq", res, fid) for res, fid in [(256, 2.19), (512, 2.23), (1024, 2.02)]),
        *(_stylegan_xl("pokemon", res, fid) for res, fid in [(256, 23.97), (512, 23.82), (1024, 25.47)]),
        _inr_gan("lsun-church", "churches", 4.45),
        _inr_gan("lsun-bedroom", "bedrooms", 5.71),
        _inr_gan("ffhq", "ffhq", 9.57),
        _inr_gan("lsun-church-bil", "churches-bil", 4.04),
        _inr_gan("lsun-bedroom-bil", "bedrooms-bil", 3.43),
        _inr_gan("ffhq-bil", "ffhq-bil", 4.95),
        _by_hand(
            "poly-inr-imagenet-128",
            "poly-inr",
            "imagenet",
            128,
            "https://drive.google.com/file/d/18_Y0-Sadyfs0WibgGc29FrX9iDnWyb26/view?usp=share_link",
            POLY,
        ),
        _by_hand(
            "poly-inr-imagenet-256",
            "poly-inr",
            "imagenet",
            256,
            "https://drive.google.com/file/d/1aYbsRpOHh0_ruBrRZz03GxQ7EvwVfudK/view?usp=share_link",
            POLY,
        ),
        _by_hand(
            "poly-inr-imagenet-512",
            "poly-inr",
            "imagenet",
            512,
            "https://drive.google.com/file/d/1GV9qCEplMC8Je1aOL2cYJfoJa0adfqdz/view?usp=share_link",
            POLY,
        ),
        _by_hand(
            "infinitygan-flickr-landscape-197",
            "infinitygan",
            "flickr-landscape",
            197,
            "https://drive.google.com/drive/folders/1RPWgCeO_yAeQCdDbH_owYIGWOt0SHL6M?usp=sharing",
            INF,
        ),
        _by_hand(
            "infinitygan-inout-flickr-scenery-197",
            "infinitygan",
            "inout-flickr-scenery",
            197,
            "https://drive.google.com/drive/folders/1F43zYnLSlqaWIcv6s_Ru0yH7EacVICMl?usp=sharing",
            INF,
        ),
        _by_hand(
            "infinitygan-inout-places2-scenery-197",
            "infinitygan",
            "inout-places2-scenery",
            197,
            "https://drive.google.com/drive/folders/11JFpgVCMhV7RN8BqqXs8KNBtE2UX0YBi?usp=sharing",
            INF,
        ),
    ]
}


# ---------------------------------------------------------------------------- the cache


def checkpoint_path(release: Release) -> Path:
    """``<cache>/pretrained/<name>/``: where the converted checkpoint of ``release`` is kept."""
    return cache_dir() / "pretrained" / release.name


def download_path(release: Release) -> Path:
    """``<cache>/pretrained/<name>.<suffix>``: the authors' file, beside its converted checkpoint."""
    return checkpoint_path(release).with_name(release.name + Path(release.url).suffix)


def cached_checkpoint(release: Release) -> Path | None:
    """The converted checkpoint of ``release`` when it is in the cache, else None (nothing is fetched)."""
    path = checkpoint_path(release)
    return path if (path / CONFIG_NAME).is_file() else None


def find_release(spec: str) -> Release | None:
    """The release named ``spec``, or whose URL is ``spec``; None when it is neither."""
    if spec in RELEASES:
        return RELEASES[spec]
    return next((r for r in RELEASES.values() if r.url == spec), None)


def fetch(release: Release) -> Path:
    """The converted checkpoint of ``release``: from the cache, or downloaded, verified and converted into it.

    Concurrent callers (other processes included) wait for the first one and then use its result.
    """
    found = cached_checkpoint(release)
    if found is not None:
        return found
    if not release.direct:
        raise PolyinrError(
            f"{release.name} is shared by its authors through {release.url}, a page for a "
            f"browser: download it there, then {release.by_hand()}"
        )
    target = checkpoint_path(release)
    with file_lock(target.with_name(f"{release.name}.lock")):
        found = cached_checkpoint(release)  # another process may have finished while this one waited
        if found is not None:
            return found
        source = download_path(release)
        if not source.is_file():
            try:
                download(release.url, source, release.size, release.sha256, desc=release.name)
            except Unreachable as e:
                raise PolyinrError(
                    f"{release.name} is not in the cache and {e}; download {release.url} on a "
                    f"machine with a connection, then {release.by_hand()}"
                ) from None
        convert_checkpoint(release.converter, source, target)
    return target


def resolve_network(spec: str | Path) -> Path:
    """A ``--network`` value → a checkpoint (or run) directory: a released model's name or URL through
    :func:`fetch`, any other path as it is (loading it says what is wrong with it); a bare name that is neither a
    directory nor a released model, or an unknown URL, is a one-line error."""
    path = Path(spec)
    release = None if path.exists() else find_release(str(spec))
    if release is not None:
        return fetch(release)
    if str(spec).startswith(("https://", "http://")):
        raise PolyinrError(
            f"{spec} is not the URL of a released model polyinr knows (polyinr pretrained "
            "list); download it, then convert it with polyinr convert"
        )
    if not path.exists() and len(path.parts) == 1:
        raise CheckpointError(
            f"checkpoint not found: {spec} (nor is it the name of a released model: polyinr pretrained list)"
        )
    return path


def load_network(network: str | Path, device: torch.device | str = "cpu", expect_model: str | None = None) -> Generator:
    """A generator from a checkpoint or run directory, or a released model's name or URL (fetched once).

    ``polyinr.load("stylegan3-t-ffhq-1024")`` downloads NVIDIA's file on first use, converts it without running
    anything from it, and returns the generator in eval mode.
    """
    return load_generator(resolve_network(network), device, expect_model)
