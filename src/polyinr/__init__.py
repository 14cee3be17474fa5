"""polyinr: coordinate-based image generation (Poly-INR and the GANs it is measured against).

import polyinr
G = polyinr.create("poly-inr", preset="cpu", num_classes=10)
z = polyinr.latents_from_seeds([0, 1], G.z_dim)
img = G(z, torch.tensor([3, 3]), grid=polyinr.Grid.window(0, 0, 1, 2, 64, 128))  # [2, 3, 64, 128]
ws = polyinr.ws_for(G, seeds=[0, 1], classes=3, truncation_psi=0.7)  # the one seeds → ws path
img = G.synthesize(ws, polyinr.Grid.frame(64))  # [2, 3, 64, 64]
G.save("my-model"); G = polyinr.load("my-model")
G = polyinr.load("stylegan3-t-ffhq-1024")  # an authors' released model: fetched and converted once
"""

import os

# OpenMP threads that spin while waiting for descheduled siblings collapse training on a shared CPU (2 threads
# on a loaded 2-core machine: ~20x slower than with passive waiting, benchmarks/RESULTS.md "Shared CPUs").
# OpenMP reads this when torch loads it, so it takes effect when polyinr is imported before torch (the CLI
# always is); a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from polyinr._version import __version__
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.models import Generator, create, list_models
from polyinr.pretrained import load_network as load
from polyinr.sampling import latents_from_seeds, ws_for

__all__ = [
    "Generator",
    "Grid",
    "PolyinrError",
    "__version__",
    "create",
    "latents_from_seeds",
    "list_models",
    "load",
    "ws_for",
]
