"""What the ``photos`` feature space sees: FID in it between the real crops and altered copies of them.

Trains the space's LeNet with its real recipe (without the user cache), then measures FID (``fid_photos``'s
maths) of the 156 real crops at 32² against: every other crop (half the data), the crops blurred (2× box down,
bilinear up), flipped left–right, greyed, one photograph's crops only (a dropped mode), and uniform noise.

    python benchmarks/bench_photos_space.py
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F

from polyinr.data.datasets import open_dataset
from polyinr.metrics import feature_spaces
from polyinr.metrics.fid import frechet_distance


def main() -> None:
    print(f"torch {torch.__version__}, load average {os.getloadavg()}")
    start = time.perf_counter()
    space = feature_spaces.load_feature_space("photos", use_cache=False)
    print(f"trained in {time.perf_counter() - start:.1f} s, held-out accuracy {space.held_out_accuracy:.3f}")
    recipe = feature_spaces.RECIPES["photos"]
    data = open_dataset("builtin:photos", resolution=recipe.render_resolution, cond=True)
    real = torch.stack([data[i][0] for i in range(len(data))])  # uint8 [156, 3, 32, 32]

    def moments(images: torch.Tensor):
        f = space(images)["features"].double()
        return f.mean(0).numpy(), torch.cov(f.T).numpy()

    noise = torch.randint(0, 256, real.shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    blurred = F.interpolate(F.avg_pool2d(real.float(), 2), scale_factor=2, mode="bilinear")
    altered = {
        "every other real crop (78)": real[::2],
        "blurred": blurred.round().clamp(0, 255).to(torch.uint8),
        "flipped left-right": real.flip(3),
        "grey": real.float().mean(1, keepdim=True).expand_as(real).round().to(torch.uint8),
        "china.jpg's crops only": real[data.labels == 0],
        "uniform noise": noise,
    }
    reference = moments(real)
    print("| against the 156 real crops | FID in the photos space |")
    print("|---|---|")
    for label, images in altered.items():
        print(f"| {label} | {frechet_distance(*moments(images), *reference):.4g} |")


if __name__ == "__main__":
    main()
