"""InfinityGAN's sizes: the config and the layer sizes that follow from it.

A *latent cell* is one local latent vector; ``G_S`` consumes ``margin`` cells on each side, and each ``G_T`` block
roughly doubles the resolution with valid convolutions, so ``n`` texture-input cells give ``16n − 75`` output
pixels for four blocks (:func:`texture_sizes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from polyinr.models.mapping import MappingConfig


def texture_sizes(n: int, num_blocks: int) -> list[int]:
    """Output side of each G_T conv for ``n`` input cells: up ``x → 2x − 3``, valid ``x → x − 2``."""
    sizes, x = [], n
    for _ in range(num_blocks):
        x = 2 * x - 3
        sizes.append(x)
        x = x - 2
        sizes.append(x)
    return sizes


def texture_steps(num_blocks: int) -> list[int]:
    """Elements of each G_T conv's output per latent cell: 2, 2, 4, 4, 8, 8, 16, 16 for four blocks."""
    return [2 ** (i // 2 + 1) for i in range(2 * num_blocks)]


def min_cells(num_blocks: int) -> int:
    """The fewest input cells that leave every G_T layer at least one element."""
    n = 1
    while min(texture_sizes(n, num_blocks)) < 1:
        n += 1
    return n


def _paper_mapping() -> MappingConfig:
    return MappingConfig(z_dim=512, w_dim=512, num_layers=8, lr_multiplier=0.01)


@dataclass(frozen=True)
class InfinityGANConfig:
    mapping: MappingConfig = field(default_factory=_paper_mapping)  # z_dim = w_dim = global latent size
    local_latent_dim: int = 256  # channels of a local latent cell (and of G_S's features)
    structure_layers: int = 4  # valid convolutions of G_S
    structure_kernel: int = 7  # their kernel (2·unfold radius + 1)
    ts_input_size: int = 11  # latent cells across G_T's input for a training patch
    ts_channels: tuple[int, ...] = (512, 512, 512, 512)  # output channels of each G_T block (up + valid conv)
    img_channels: int = 3  # output channels
    coord_vert_sample_size: int = 10  # vertical start positions sampled in training (the paper's V)
    coord_vert_cut: float = 3.0  # vertical coordinate range before tanh
    coord_hori_occupy_ratio: float = 0.25  # fraction of the horizontal period one training patch covers

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts_channels", tuple(self.ts_channels))  # JSON gives lists

    @property
    def num_blocks(self) -> int:
        return len(self.ts_channels)

    @property
    def margin(self) -> int:
        """Latent cells G_S consumes on each side (the authors' ``ss_unfold_size``)."""
        return self.structure_layers * (self.structure_kernel // 2)

    @property
    def cell_pixels(self) -> int:
        """Output pixels per latent cell (16 for four blocks)."""
        return 2**self.num_blocks

    @property
    def img_resolution(self) -> int:
        """Side of a training patch in pixels (101 for the paper's preset)."""
        return texture_sizes(self.ts_input_size, self.num_blocks)[-1]

    @property
    def num_styles(self) -> int:
        """Styles of G_T: one per conv and one for the last ToRGB (9 for four blocks)."""
        return 2 * self.num_blocks + 1

    @property
    def hori_period(self) -> int:
        """Horizontal coordinate period in latent cells (139 for the paper's preset)."""
        return round((self.ts_input_size + 2 * self.margin) / self.coord_hori_occupy_ratio) - 1

    @property
    def vert_scale(self) -> float:
        """Pre-tanh vertical coordinate per latent cell: ``2·cut / (ts_input + V − 1)`` (0.3 for the paper)."""
        return 2 * self.coord_vert_cut / (self.ts_input_size + self.coord_vert_sample_size - 1)
