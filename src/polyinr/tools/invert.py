"""Inversion: optimise a latent so the generator reproduces a real image, then outpaint around it.

The projector of StyleGAN2 (Karras et al. 2020, ``projector.py``), made noise-free: Poly-INR has no per-pixel
noise inputs to regularise, and the projector's decaying noise on ``w`` is left out so an inversion is
deterministic. ``w`` starts at the class's ``w_avg``; Adam (betas 0.9, 0.999) follows the projector's learning
rate: linear ramp-up over the first 5 % of the steps, cosine ramp-down over the last 25 %, peak 0.1. The
latent is one ``w`` shared by every level (space ``w``) or one per level (``w+``, the paper's "affine
parameter space", which reaches a closer reconstruction).

Loss = pixel MSE + a perceptual distance:

- ``lpips``: LPIPS with VGG16 (Zhang et al. 2018), used when the ``lpips`` package and torchvision's VGG16
  weights are both present locally (nothing is downloaded); images larger than 256 are area-downsampled to 256
  first, as in the projector.
- ``laplacian``: the fallback that needs no weights: the L1 distance between Laplacian pyramids of the two
  images (the "Lap1" loss of Bojanowski et al. 2018), each band's mean absolute difference weighted equally.
  It weighs edges and textures at every scale, which plain MSE blurs.

Pivotal tuning (PTI; Roich et al. 2022, as StyleGAN-XL's ``run_inversion.py --run-pti`` runs it): the inverted
latent is the pivot, kept fixed, and a copy of the generator is fine-tuned so that the pivot renders the target:
Adam (betas 0.9, 0.999) at lr 3·10⁻⁴ on every parameter for 350 steps, loss = MSE in the authors' 0–255 pixel
units + the perceptual distance + a locality regulariser: a latent ``w`` mapped from a random ``z`` (and class)
at truncation 0.5 is moved to distance 30 from the pivot along ``w − pivot``, and the tuned generator's image
there is kept close to the original's (``locality_weight`` × the perceptual distance, 10 in XL; 0 = off).
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from polyinr.atomic import atomic_write_json
from polyinr.checkpoint import check_checkpoint_target, save_generator
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import check_new_outputs, from_uint8, save_image, to_uint8
from polyinr.models.generator import Generator
from polyinr.sampling import labels_for, save_latents
from polyinr.tools.render import render_tiled
from polyinr.tools.video import write_video

SPACES = ("w", "w+")
PERCEPTUAL = ("auto", "lpips", "laplacian")
PROGRESS_FPS = 60  # the projector's progress video rate
VGG16_WEIGHTS = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16 file, as cached by torch.hub

INVERSION_FILES = {
    "latent": "latent.safetensors",
    "target": "target.png",
    "reconstruction": "reconstruction.png",
    "video": "progress.mp4",
    "summary": "inversion.json",
}  # role → file name in the output directory
PTI_FILES = {
    "tuned": "tuned",  # the fine-tuned generator, a checkpoint directory
    "tuned_reconstruction": "reconstruction_tuned.png",
}  # written beside the latent when pivotal tuning runs
OUTPAINT_FILE = "outpaint.png"  # written beside the inversion by outpaint
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # images [B, 3, H, W] ×2 → [B]


class ImageFileError(PolyinrError):
    """An input image is missing or is not an image."""


# ---------------------------------------------------------------------------- images


def load_image(path: str | Path, size: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """An image file as ``[1, 3, H, W]`` in ``[-1, 1]`` at ``size`` (H, W): centre-cropped to the aspect
    ratio, then resized with Lanczos (like the StyleGAN projector); alpha and grey become RGB."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ImageFileError(f"{path} is not an image Pillow can read ({type(e).__name__})") from None
    H, W = size
    w, h = img.size
    crop_w, crop_h = min(w, round(h * W / H)), min(h, round(w * H / W))
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    img = img.crop((left, top, left + crop_w, top + crop_h)).resize((W, H), Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())  # [H, W, 3]
    return from_uint8(pixels.permute(2, 0, 1).unsqueeze(0)).to(device)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in ``[-1, 1]`` (clamped), over all their pixels."""
    mse = float((a.clamp(-1, 1) - b.clamp(-1, 1)).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


# ---------------------------------------------------------------------------- perceptual distances


def laplacian_pyramid(x: torch.Tensor, num_levels: int = 5) -> list[torch.Tensor]:
    """Band-pass levels of ``x [B, C, H, W]`` (fine to coarse) and the low-pass residual last.

    Each band is the image minus its 2×-downsampled (area) and bilinearly upsampled copy; the pyramid stops
    early when the image is smaller than 4 pixels.
    """
    bands = []
    for _ in range(num_levels - 1):
        if min(x.shape[-2:]) < 4:
            break
        low = F.avg_pool2d(x, 2, ceil_mode=True)
        bands.append(x - F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = low
    return [*bands, x]


def laplacian_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Laplacian-pyramid L1 distance of images ``[B, C, H, W]`` → ``[B]`` (bands weighted equally)."""
    bands = [(pa - pb).abs().mean(dim=(1, 2, 3)) for pa, pb in zip(laplacian_pyramid(a), laplacian_pyramid(b))]
    return torch.stack(bands).mean(dim=0)


def lpips_available() -> bool:
    """True when LPIPS can run without a download: the ``lpips`` package and torchvision's cached VGG16."""
    if importlib.util.find_spec("lpips") is None or importlib.util.find_spec("torchvision") is None:
        return False
    return (Path(torch.hub.get_dir()) / "checkpoints" / VGG16_WEIGHTS).is_file()


def _lpips(device: torch.device | str) -> Distance:
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lpips asks torchvision for VGG16 with its deprecated `pretrained` flag
        net = lpips.LPIPS(net="vgg", verbose=False).to(device).eval().requires_grad_(False)

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[-2] > 256:
            a, b = (F.interpolate(x, size=(256, 256 * x.shape[-1] // x.shape[-2]), mode="area") for x in (a, b))
        return net(a, b).flatten()

    return distance


def perceptual_distance(kind: str = "auto", device: torch.device | str = "cpu") -> tuple[str, Distance]:
    """``(name, distance)``: LPIPS for ``'lpips'`` (an error when unavailable), the Laplacian-pyramid L1 for
    ``'laplacian'``, and LPIPS when available else the Laplacian for ``'auto'``."""
    if kind not in PERCEPTUAL:
        raise PolyinrError(f"unknown perceptual distance {kind!r}; use one of {', '.join(PERCEPTUAL)}")
    if kind == "lpips" or (kind == "auto" and lpips_available()):
        if not lpips_available():
            raise PolyinrError(
                f"LPIPS needs the lpips package (pip install lpips) and torchvision's VGG16 weights "
                f"in {Path(torch.hub.get_dir()) / 'checkpoints' / VGG16_WEIGHTS}; "
                f"or use the Laplacian-pyramid distance (laplacian)"
            )
        return "lpips", _lpips(device)
    return "laplacian", laplacian_l1


# ---------------------------------------------------------------------------- projection


def projector_lr(
    step: int, num_steps: int, initial_lr: float = 0.1, rampup: float = 0.05, rampdown: float = 0.25
) -> float:
    """The StyleGAN2 projector's learning rate at ``step`` of ``num_steps``: linear ramp-up over the first
    ``rampup`` fraction, cosine ramp-down over the last ``rampdown`` fraction, ``initial_lr`` in between."""
    t = step / num_steps
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return initial_lr * ramp * min(1.0, t / rampup)


@dataclass(frozen=True)
class ProjectionStep:
    """The state before update ``step`` (the final state when ``step == num_steps``).

    ``ws [1, num_ws, w_dim]``, ``image [1, 3, H, W]`` its render, ``loss`` and ``psnr`` (dB) against the target.
    """

    step: int
    ws: torch.Tensor
    image: torch.Tensor
    loss: float
    psnr: float


def project(
    G: Generator,
    target: torch.Tensor,
    class_idx: int | None = None,
    space: str = "w+",
    num_steps: int = 1000,
    initial_lr: float = 0.1,
    distance: Distance = laplacian_l1,
    perceptual_weight: float = 1.0,
) -> Iterator[ProjectionStep]:
    """Optimise a latent so ``G`` renders ``target [1, 3, H, W]`` (in ``[-1, 1]``) on the frame at ``H × W``.

    Returns an iterator over ``num_steps + 1`` :class:`ProjectionStep`: the state before each update, then the
    final one. The settings are checked at the call, before any step runs.
    """
    if space not in SPACES:
        raise PolyinrError(f"unknown latent space {space!r}; use one of {', '.join(SPACES)}")
    if num_steps < 1:
        raise PolyinrError(f"inversion needs at least 1 step, got {num_steps}")
    if target.ndim != 4 or target.shape[:2] != (1, 3):
        raise PolyinrError(f"target must be one RGB image [1, 3, H, W], got {tuple(target.shape)}")
    labels = labels_for(G, class_idx, 1, target.device)
    w_avg = G.mapping.w_avg[0 if labels is None else int(labels[0])].detach()  # [w_dim]
    w_opt = w_avg.view(1, 1, -1).repeat(1, G.num_ws if space == "w+" else 1, 1)  # [1, 1 or num_ws, w_dim]
    return _optimise(G, target, w_opt.requires_grad_(True), num_steps, initial_lr, distance, perceptual_weight)


def _optimise(
    G: Generator,
    target: torch.Tensor,
    w_opt: torch.Tensor,
    num_steps: int,
    initial_lr: float,
    distance: Distance,
    perceptual_weight: float,
) -> Iterator[ProjectionStep]:
    grid = Grid.frame(tuple(target.shape[-2:]))
    optimizer = torch.optim.Adam([w_opt], lr=initial_lr, betas=(0.9, 0.999))
    for step in range(num_steps + 1):
        ws = w_opt.expand(1, G.num_ws, -1)  # [1, num_ws, w_dim]
        image = G.synthesize(ws, grid)
        loss = F.mse_loss(image, target) + perceptual_weight * distance(image, target).sum()
        yield ProjectionStep(
            step, ws.detach().clone(), image.detach(), float(loss.detach()), psnr(image.detach(), target)
        )
        if step == num_steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = projector_lr(step, num_steps, initial_lr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[w_opt])
        optimizer.step()


# ---------------------------------------------------------------------------- pivotal tuning

PTI_LR = 3e-4  # StyleGAN-XL's pivotal-tuning learning rate
PTI_MSE_SCALE = 127.5**2  # their MSE is taken on 0–255 pixels: 127.5² × the MSE of [-1, 1] images
LOCALITY_DISTANCE = 30.0  # how far from the pivot the locality regulariser's latents are placed
LOCALITY_PSI = 0.5  # truncation of the locality regulariser's random latents


def _locality_ws(G: Generator, pivot: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A latent ``[1, num_ws, w_dim]`` at distance 30 from ``pivot`` toward a random truncated ``w``."""
    z = torch.randn(1, G.z_dim, generator=rng).to(pivot.device)
    c = torch.randint(G.num_classes, (1,), generator=rng).to(pivot.device) if G.num_classes else None
    w = G.mapping(z, c, truncation_psi=LOCALITY_PSI)  # [1, num_ws, w_dim]
    direction = w - pivot
    return pivot + LOCALITY_DISTANCE * direction / direction.norm()


def pivotal_tuning(
    G: Generator,
    pivot: torch.Tensor,
    target: torch.Tensor,
    num_steps: int = 350,
    lr: float = PTI_LR,
    distance: Distance = laplacian_l1,
    locality_weight: float = 10.0,
    seed: int = 0,
) -> tuple[Generator, Iterator[ProjectionStep]]:
    """Fine-tune a copy of ``G`` so the fixed ``pivot [1, num_ws, w_dim]`` renders ``target [1, 3, H, W]``.

    Returns the copy (trained in place as the iterator runs) and an iterator over ``num_steps + 1``
    :class:`ProjectionStep`: the state before each update, then the final one. ``G`` itself is not changed.
    ``locality_weight`` 0 turns the locality regulariser off; ``seed`` draws its latents.
    """
    if num_steps < 1:
        raise PolyinrError(f"pivotal tuning needs at least 1 step, got {num_steps}")
    if pivot.ndim != 3 or pivot.shape[0] != 1 or pivot.shape[1:] != (G.num_ws, G.w_dim):
        raise PolyinrError(f"the pivot must be one latent [1, {G.num_ws}, {G.w_dim}], got {tuple(pivot.shape)}")
    G_original = copy.deepcopy(G).eval().requires_grad_(False)
    G_tuned = copy.deepcopy(G).train().requires_grad_(True)
    return G_tuned, _tune(
        G_original,
        G_tuned,
        pivot.detach(),
        target,
        num_steps,
        lr,
        distance,
        locality_weight,
        torch.Generator().manual_seed(seed),
    )


def _tune(
    G_original: Generator,
    G_tuned: Generator,
    pivot: torch.Tensor,
    target: torch.Tensor,
    num_steps: int,
    lr: float,
    distance: Distance,
    locality_weight: float,
    rng: torch.Generator,
) -> Iterator[ProjectionStep]:
    grid = Grid.frame(tuple(target.shape[-2:]))
    optimizer = torch.optim.Adam(G_tuned.parameters(), lr=lr, betas=(0.9, 0.999))
    for step in range(num_steps + 1):
        image = G_tuned.synthesize(pivot, grid)
        loss = PTI_MSE_SCALE * F.mse_loss(image, target) + distance(image, target).sum()
        if locality_weight > 0 and step < num_steps:
            ws = _locality_ws(G_original, pivot, rng)
            with torch.no_grad():
                before = G_original.synthesize(ws, grid)
            loss = loss + locality_weight * distance(G_tuned.synthesize(ws, grid), before).sum()
        yield ProjectionStep(step, pivot, image.detach(), float(loss.detach()), psnr(image.detach(), target))
        if step == num_steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    G_tuned.eval().requires_grad_(False)


# ---------------------------------------------------------------------------- the tools


@dataclass(frozen=True)
class Inversion:
    """An inversion written to ``out_dir``: the latent ``ws [1, num_ws, w_dim]``, its PSNR (dB) against the
    target, the perceptual distance that ran, and the files written (by role)."""

    ws: torch.Tensor
    psnr: float
    perceptual: str
    files: dict[str, Path]
    tuned_psnr: float | None = None  # after pivotal tuning (None: not run)


def invert_image(
    G: Generator,
    image_path: str | Path,
    out_dir: str | Path,
    class_idx: int | None = None,
    space: str = "w+",
    num_steps: int = 1000,
    perceptual: str = "auto",
    device: torch.device | str = "cpu",
    on_step: Callable[[ProjectionStep], None] | None = None,
    pti_steps: int = 0,
    overwrite: bool = False,
) -> Inversion:
    """Invert the image file at the generator's native resolution and write to ``out_dir``:
    ``latent.safetensors``, ``target.png``, ``reconstruction.png``, ``progress.mp4`` (target | reconstruction
    at every step) and ``inversion.json`` (PSNR, perceptual distance, settings).

    ``pti_steps`` > 0 then runs pivotal tuning around the latent for that many steps and also writes the tuned
    generator (``tuned/``, a checkpoint that renders the latent as the target) and its
    ``reconstruction_tuned.png``; the video continues through the tuning.

    Files of these names already in ``out_dir`` are replaced only when ``overwrite`` (else
    :class:`~polyinr.image_io.OutputExists`), and a ``tuned/`` that is not a polyinr checkpoint never is: both
    are checked before any work.
    """
    if pti_steps < 0:
        raise PolyinrError(f"pivotal tuning steps must be ≥ 0, got {pti_steps}")
    out_dir = Path(out_dir)
    files = {role: out_dir / file_name for role, file_name in INVERSION_FILES.items()}
    if pti_steps:
        files.update({role: out_dir / file_name for role, file_name in PTI_FILES.items()})
    if pti_steps:
        check_checkpoint_target(files["tuned"], overwrite)
    check_new_outputs(out_dir, [path.name for path in files.values()], overwrite)
    target = load_image(image_path, (G.img_resolution, G.img_resolution), device)
    name, distance = perceptual_distance(perceptual, device)
    steps = project(G, target, class_idx, space, num_steps, distance=distance)
    target_u8 = to_uint8(target)[0]  # [H, W, 3]
    save_image(target_u8, files["target"])
    last: list[ProjectionStep] = []
    tuned: list[tuple[Generator, ProjectionStep]] = []

    def states() -> Iterator[ProjectionStep]:
        yield from steps
        if pti_steps:
            G_tuned, tuning = pivotal_tuning(G, last[0].ws, target, pti_steps, distance=distance)
            tuned.append((G_tuned, last[0]))
            yield from itertools.islice(tuning, 1, None)  # its step 0 is the projection's final state

    def frames() -> Iterator[np.ndarray]:
        for state in states():
            last[:] = [state]
            if on_step is not None:
                on_step(state)
            yield np.concatenate([target_u8, to_uint8(state.image)[0]], axis=1)

    write_video(frames(), files["video"], fps=PROGRESS_FPS)
    projection = tuned[0][1] if tuned else last[0]
    save_latents(files["latent"], projection.ws, G, class_idx)
    save_image(to_uint8(projection.image)[0], files["reconstruction"])
    summary = {
        "psnr_db": projection.psnr,
        "perceptual": name,
        "space": space,
        "steps": num_steps,
        "class": class_idx,
        "image": str(image_path),
        "loss": projection.loss,
    }
    tuned_psnr = None
    if tuned:
        final = last[0]
        save_generator(
            tuned[0][0],
            files["tuned"],
            extra={"pivotal_tuning": {"steps": pti_steps, "lr": PTI_LR}},
            overwrite=overwrite,
        )
        save_image(to_uint8(final.image)[0], files["tuned_reconstruction"])
        tuned_psnr = final.psnr
        summary.update(pti_steps=pti_steps, pti_psnr_db=final.psnr, pti_loss=final.loss)
    atomic_write_json(files["summary"], summary)
    return Inversion(projection.ws, projection.psnr, name, files, tuned_psnr)


def outpaint(
    G: Generator,
    image_path: str | Path,
    out_dir: str | Path,
    window: tuple[float, float, float, float],
    size: tuple[int, int] | None = None,
    class_idx: int | None = None,
    space: str = "w+",
    num_steps: int = 1000,
    perceptual: str = "auto",
    device: torch.device | str = "cpu",
    on_step: Callable[[ProjectionStep], None] | None = None,
    overwrite: bool = False,
) -> Inversion:
    """Invert the image (see :func:`invert_image`), then render ``window`` of the plane around it at ``size``
    into ``out_dir/outpaint.png``: the image is the frame ``[0, 1]²``, the rest continues it.

    ``size`` defaults to the pixel spacing of the inverted image, so the frame keeps its resolution.
    """
    check_new_outputs(out_dir, [OUTPAINT_FILE], overwrite)
    top, left, bottom, right = window
    if size is None:
        step = 1 / (G.img_resolution - 1)
        size = (round((bottom - top) / step) + 1, round((right - left) / step) + 1)
    grid = Grid.window(top, left, bottom, right, *size)
    inversion = invert_image(
        G, image_path, out_dir, class_idx, space, num_steps, perceptual, device, on_step, overwrite=overwrite
    )
    path = render_tiled(G, inversion.ws, grid, Path(out_dir) / OUTPAINT_FILE)
    return Inversion(inversion.ws, inversion.psnr, inversion.perceptual, {**inversion.files, "outpaint": path})
