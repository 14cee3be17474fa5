"""The tests' one size of a tiny InfinityGAN: two blocks (4 px per cell), 7 texture cells → 13² patches at a
3-cell (12 px) stride, margin 1 cell; a test that needs another size overrides fields of :data:`TINY_INFINITY_GAN`."""

TINY_INFINITY_GAN = dict(
    z_dim=16,
    w_dim=16,
    num_layers=2,
    local_latent_dim=8,
    structure_layers=1,
    structure_kernel=3,
    ts_input_size=7,
    ts_channels=(16, 8),
)
