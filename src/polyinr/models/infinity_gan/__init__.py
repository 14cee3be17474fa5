"""InfinityGAN: infinite-pixel synthesis from seamless patches (Lin, Lee, Cheng, Tulyakov, Yang; ICLR 2022).

An image is described by a *global* latent ``z_g`` (overall appearance), a grid of *local* latents ``z_l`` (one
``local_latent_dim`` vector per latent cell: what is where) and coordinates (where the patch sits). This package
computes what the authors' released code computes (``models/infinitygan_generator.py``, ``models/ops.py``):

- **structure synthesizer** ``G_S``: ``structure_layers`` modulated + demodulated ``k×k`` convolutions *without
  padding* (the code's "feature unfolding"), modulated by the raw ``z_g`` (not the mapping output), each taking
  ``[features, coordinates]``; coordinates ``(tanh(v), cos(πh), sin(πh))`` saturate vertically and are periodic
  horizontally. ``35×35`` latent cells become ``11×11`` structure features for the paper's sizes.
- **texture synthesizer** ``G_T``: StyleGAN2 made padding-free. Per block an up-sampling layer (stride-2
  transposed 3×3, crop ``[1:-1]``, unpadded ``[1,2,1]`` blur) and a valid 3×3 layer; noise ``x + s·n`` before
  the bias and lrelu; skip ToRGB after each block, the running image up-sampled by the same cropped transposed
  blur and centre-cropped. ``11 → 19 → 17 → 31 → 29 → 55 → 53 → 103 → 101`` for the paper's preset. Its
  mapping is 8 equalised-lr layers on ``z_g`` (pixel norm first, lr multiplier 0.01), no truncation.

Every layer is a valid convolution, so each output pixel is a fixed function of a fixed window of local
latents, coordinates and noise: patches cut from one canvas of those inputs agree exactly where they overlap.
The synthesis therefore renders any window of the model's pixel lattice (a *canvas* model in the generator
contract): the window is cut into patches (``patch_cells`` latent cells of texture input each, the authors'
101-pixel patches at a 96-pixel stride by default), the patches go through the network a batch at a time, and
the memory of a render is that of a batch of patches whatever the window's size.

``ws [B, 1 + num_styles, w_dim]``: ``ws[:, 0]`` is the raw global latent (it modulates ``G_S`` and keys the
sample's canvas of local latents and noise), ``ws[:, 1:]`` the mapped styles of the texture layers (conv ``i``
takes style ``i``; the ToRGB after block ``j`` takes style ``2j + 3``, the last one style ``2·blocks``).

The package: :mod:`.config` (sizes), :mod:`.canvas` (random inputs over the lattice of latent cells),
:mod:`.network` (layers, ``G_S``, ``G_T``, mapping), :mod:`.patches` (the patch renderer and style fusion),
:mod:`.generator` (the registered generator and its canvas capabilities).
"""

from polyinr.models.infinity_gan.config import InfinityGANConfig
from polyinr.models.infinity_gan.generator import PRESETS, InfinityGANGenerator

__all__ = ["PRESETS", "InfinityGANConfig", "InfinityGANGenerator"]
