"""Built-in datasets that need no download: ``builtin:digits``, ``shapes``, ``photos``, ``faces`` and ``textures``.

All are small and render at any resolution, so a model trains on CPU in minutes (sizes, licences and provenance:
``docs/datasets.md``):

- ``digits``: scikit-learn's ``load_digits()``: 1,797 real 8×8 scans of handwritten digits (16 grey levels,
  classes 0–9), white strokes on black as in the data, upscaled smoothly (bicubic) and repeated to RGB.
- ``shapes``: 2,000 procedural images of one coloured shape (disc, square, triangle, ring or cross) on a
  gradient background. Each image is a continuous function of the plane, defined analytically in frame units
  with smooth anti-aliased edges; :func:`render_shape` samples it on any :class:`~polyinr.grid.Grid`, so the
  item at resolution R is exactly ``render_shape(i, Grid.frame(R))``.
- ``photos``: 156 overlapping square crops of the two real photographs scikit-learn ships (a Chinese temple
  in a landscape, a flower), for models such as InfinityGAN that train on patches of photographs.
- ``faces``: the 100 real faces of Labeled Faces in the Wild that scikit-image ships (25×25 grey), unlabelled,
  upscaled smoothly and repeated to RGB as the digits are: the small stand-in for the papers' FFHQ experiments.
- ``textures``: 900 crops of nine real photographs and textures that scikit-image ships (a 10×10 lattice of
  128-pixel crops over each), labelled by source image: InfinityGAN's natural case, for extrapolation and
  ScaleInv FID.

The scikit-image files are read straight from the installed package (its wheel carries them), never fetched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from polyinr.errors import PolyinrError
from polyinr.grid import Grid

DEFAULT_RESOLUTION = 32

# ---------------------------------------------------------------------------- digits


class Digits:
    """scikit-learn's 1,797 handwritten 8×8 digits (white strokes on black), labels 0–9."""

    name = "digits"
    version = 1
    num_classes = 10

    def __init__(self) -> None:
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

        data = load_digits()
        self._images = (data.images / 16.0).astype(np.float32)  # [N, 8, 8], ink 0..1
        self.labels = data.target.astype(np.int64)  # [N]

    def __len__(self) -> int:
        return len(self._images)

    def render(self, index: int, resolution: int) -> np.ndarray:
        """Digit ``index`` upscaled (bicubic, in float) to uint8 ``[R, R, 3]``."""
        return _grey_to_rgb(self._images[index], resolution)


def _grey_to_rgb(image: np.ndarray, resolution: int) -> np.ndarray:
    """A float grey image ``[h, w]`` in 0..1 resized (bicubic, in float) to uint8 RGB ``[R, R, 3]``, grey repeated."""
    img = Image.fromarray(image.astype(np.float32)).resize((resolution, resolution), Image.BICUBIC)
    grey = np.clip(np.rint(np.asarray(img) * 255), 0, 255).astype(np.uint8)  # [R, R]
    return np.repeat(grey[:, :, None], 3, axis=2)


# ---------------------------------------------------------------------------- shapes

SHAPE_CLASSES = ("disc", "square", "triangle", "ring", "cross")
NUM_SHAPES = 2000
_SHAPES_SEED = 20230617
_EDGE = 0.02  # half-width of the anti-aliased edge ramp, frame units (≈ 0.6 px at 32²)


@dataclass(frozen=True)
class ShapeParams:
    """One shape image: class, centre (row, col) and radius in frame units, rotation, colours in [0, 1]."""

    label: int
    center: tuple[float, float]
    radius: float
    angle: float
    color: tuple[float, float, float]
    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    gradient_angle: float


def shape_params(index: int) -> ShapeParams:
    """The parameters of shape image ``index``, drawn from its own seeded random generator."""
    rng = np.random.default_rng((_SHAPES_SEED, index))
    return ShapeParams(
        label=int(rng.integers(len(SHAPE_CLASSES))),
        center=tuple(rng.uniform(0.3, 0.7, size=2)),
        radius=float(rng.uniform(0.14, 0.26)),
        angle=float(rng.uniform(0, 2 * math.pi)),
        color=tuple(rng.uniform(0.35, 1.0, size=3)),
        background=(tuple(rng.uniform(0.0, 0.3, size=3)), tuple(rng.uniform(0.0, 0.3, size=3))),
        gradient_angle=float(rng.uniform(0, 2 * math.pi)),
    )


def _box(p: np.ndarray, half: tuple[float, float]) -> np.ndarray:
    """Signed distance from points ``p [..., 2]`` to an axis-aligned box of half-sizes ``half``."""
    q = np.abs(p) - np.asarray(half)
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    return outside + np.minimum(np.max(q, axis=-1), 0.0)


def _triangle(p: np.ndarray) -> np.ndarray:
    """Signed distance to an equilateral triangle of circumradius 1 (Inigo Quilez's formula)."""
    k = math.sqrt(3.0)
    x, y = np.abs(p[..., 1]) - k / 2, p[..., 0] + 0.5
    fold = x + k * y > 0
    x, y = np.where(fold, (x - k * y) / 2, x), np.where(fold, (-k * x - y) / 2, y)
    x = x - np.clip(x, -k, 0.0)
    return -np.hypot(x, y) * np.sign(y)


_SDF = {
    "disc": lambda p: np.linalg.norm(p, axis=-1) - 1.0,
    "square": lambda p: _box(p, (0.8, 0.8)),
    "triangle": _triangle,
    "ring": lambda p: np.abs(np.linalg.norm(p, axis=-1) - 0.72) - 0.28,
    "cross": lambda p: np.minimum(_box(p, (1.0, 0.3)), _box(p, (0.3, 1.0))),
}


def render_shape(index: int, grid: Grid) -> np.ndarray:
    """Shape image ``index`` sampled on ``grid``: uint8 ``[H, W, 3]``.

    The image is a continuous function of the plane (frame units, ``[0, 1]²`` is the training frame), so any
    window, density or affine map of the grid is a valid view of the same picture.
    """
    return _paint(shape_params(index), grid)


def _paint(params: ShapeParams, grid: Grid) -> np.ndarray:
    p = grid.coords(dtype=torch.float64).numpy()  # [H, W, 2], (row, col)
    cos, sin = math.cos(params.angle), math.sin(params.angle)
    d = p - np.asarray(params.center)
    local = np.stack([cos * d[..., 0] + sin * d[..., 1], -sin * d[..., 0] + cos * d[..., 1]], axis=-1)
    sdf = _SDF[SHAPE_CLASSES[params.label]](local / params.radius) * params.radius  # [H, W], frame units
    t = np.clip((_EDGE - sdf) / (2 * _EDGE), 0.0, 1.0)
    cover = (t * t * (3 - 2 * t))[..., None]  # smoothstep: 1 inside, 0 outside, [H, W, 1]
    g_cos, g_sin = math.cos(params.gradient_angle), math.sin(params.gradient_angle)
    g = np.clip((p[..., 0] - 0.5) * g_cos + (p[..., 1] - 0.5) * g_sin + 0.5, 0.0, 1.0)[..., None]
    bg0, bg1 = (np.asarray(c) for c in params.background)
    rgb = (bg0 + (bg1 - bg0) * g) * (1 - cover) + np.asarray(params.color) * cover  # [H, W, 3]
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


class Shapes:
    """2,000 procedural class-labelled shape images (see :func:`render_shape`)."""

    name = "shapes"
    version = 1
    num_classes = len(SHAPE_CLASSES)

    def __init__(self) -> None:
        self._params = [shape_params(i) for i in range(NUM_SHAPES)]
        self.labels = np.array([p.label for p in self._params], dtype=np.int64)  # [N]

    def __len__(self) -> int:
        return NUM_SHAPES

    def render(self, index: int, resolution: int) -> np.ndarray:
        """Shape ``index`` on the training grid at ``resolution``: uint8 ``[R, R, 3]``."""
        return _paint(self._params[index], Grid.frame(resolution))


# ---------------------------------------------------------------------------- photos

PHOTO_CROP = 256  # side of each square crop, pixels of the photograph
PHOTO_STRIDE = 32  # pixels between crops


class Photos:
    """Real photographs shipped with scikit-learn (``load_sample_images``: ``china.jpg`` and ``flower.jpg``,
    427×640 each, read from the installed package): every 256×256 crop at a 32-pixel stride (156 crops),
    resized to the requested resolution (Lanczos). Labels: the photograph (0 china, 1 flower)."""

    name = "photos"
    version = 1
    num_classes = 2

    def __init__(self) -> None:
        from sklearn.datasets import load_sample_images  # bundled with scikit-learn: no download

        self._photos = [np.asarray(img, dtype=np.uint8) for img in load_sample_images().images]  # [H, W, 3]
        self._crops = [
            (p, r, c)
            for p, photo in enumerate(self._photos)
            for r in range(0, photo.shape[0] - PHOTO_CROP + 1, PHOTO_STRIDE)
            for c in range(0, photo.shape[1] - PHOTO_CROP + 1, PHOTO_STRIDE)
        ]
        self.labels = np.array([p for p, _, _ in self._crops], dtype=np.int64)  # [N]

    def __len__(self) -> int:
        return len(self._crops)

    def render(self, index: int, resolution: int) -> np.ndarray:
        """Crop ``index`` resized to uint8 ``[R, R, 3]``."""
        p, r, c = self._crops[index]
        crop = Image.fromarray(self._photos[p][r : r + PHOTO_CROP, c : c + PHOTO_CROP])
        return np.asarray(crop.resize((resolution, resolution), Image.LANCZOS))


# ---------------------------------------------------------------------------- scikit-image's data


def skimage_file(name: str, dataset: str) -> Path:
    """The path of data file ``name`` inside the installed scikit-image; missing → a one-line error for ``dataset``."""
    try:
        import skimage
    except ImportError:
        raise PolyinrError(f"builtin:{dataset} needs scikit-image: pip install scikit-image") from None
    path = Path(skimage.__file__).parent / "data" / name
    if not path.is_file():
        raise PolyinrError(
            f"builtin:{dataset} needs {name}, which scikit-image {skimage.__version__} does not ship "
            f"(looked in {path.parent}): reinstall scikit-image"
        )
    return path


NUM_LFW_FACES = 100  # lfw_subset.npy: 100 faces, then 100 non-faces (background crops of the same photographs)


class Faces:
    """The 100 faces of scikit-image's Labeled Faces in the Wild subset (``lfw_subset.npy``, 25×25 grey, 0..1),
    upscaled or downscaled (bicubic, in float) and repeated to RGB. Unlabelled: LFW names people, but the subset
    keeps no names."""

    name = "faces"
    version = 1
    num_classes = 0
    labels = None

    def __init__(self) -> None:
        self._images = np.load(skimage_file("lfw_subset.npy", self.name))[:NUM_LFW_FACES]  # float [100, 25, 25]

    def __len__(self) -> int:
        return len(self._images)

    def render(self, index: int, resolution: int) -> np.ndarray:
        """Face ``index`` resized to uint8 ``[R, R, 3]``."""
        return _grey_to_rgb(self._images[index], resolution)


# Real photographs and textures of scikit-image's wheel; the stereo pair's right view (the same scene as the left)
# and the retina (a disc on black: black crops) are left out.
TEXTURE_SOURCES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "brick.png",
    "grass.png",
    "gravel.png",
)
TEXTURE_CROP = 128  # side of each square crop, pixels of the source image
TEXTURE_LATTICE = 10  # crops per side: a 10×10 lattice, evenly spaced from corner to corner of each source


class Textures:
    """Crops of scikit-image's real photographs and textures (:data:`TEXTURE_SOURCES`; grey ones repeated to RGB):
    a 10×10 lattice of 128×128 crops over each source (900 crops), resized to the requested resolution (Lanczos).
    Labels: the source image."""

    name = "textures"
    version = 1
    num_classes = len(TEXTURE_SOURCES)

    def __init__(self) -> None:
        self._sources = [np.asarray(Image.open(skimage_file(f, self.name)).convert("RGB")) for f in TEXTURE_SOURCES]
        self._crops = [
            (s, int(r), int(c))
            for s, image in enumerate(self._sources)
            for r in np.linspace(0, image.shape[0] - TEXTURE_CROP, TEXTURE_LATTICE).round()
            for c in np.linspace(0, image.shape[1] - TEXTURE_CROP, TEXTURE_LATTICE).round()
        ]
        self.labels = np.array([s for s, _, _ in self._crops], dtype=np.int64)  # [N]

    def __len__(self) -> int:
        return len(self._crops)

    def render(self, index: int, resolution: int) -> np.ndarray:
        """Crop ``index`` resized to uint8 ``[R, R, 3]``."""
        s, r, c = self._crops[index]
        crop = Image.fromarray(self._sources[s][r : r + TEXTURE_CROP, c : c + TEXTURE_CROP])
        return np.asarray(crop.resize((resolution, resolution), Image.LANCZOS))


BUILTINS = {"digits": Digits, "shapes": Shapes, "photos": Photos, "faces": Faces, "textures": Textures}
