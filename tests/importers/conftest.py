"""Small stand-ins for the Poly-INR authors' network classes, and their training-snapshot pickles.

The classes reproduce the structure, parameter names and computation of ``training/networks_gmgan.py`` (a
StyleGAN-XL fork) from its description, at test size. They pickle under the authors' module names:
``training.networks_gmgan`` (plain classes) and ``torch_utils.persistence._reconstruct_persistent_obj``
(StyleGAN "persistent" classes, carrying their source text), with a discriminator holding dill-pickled
functions and code objects. Those modules exist only while a snapshot is written, so a loader that tried to
import them would fail.
"""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from foreign_modules import installed, name_classes
from torch import nn

SLOPE = 0.2
PERSISTENT_VERSION = 6


def _reconstruct_persistent_obj(meta):  # the loader must never call this
    raise AssertionError("the authors' persistence code was run")


class PersistentClass(nn.Module):
    """StyleGAN's ``@persistent_class``: pickles as ``_reconstruct_persistent_obj(meta)`` with its source."""

    module_src = ""  # set per test: code that leaves a marker file if it is ever executed

    def __reduce__(self):
        meta = dict(
            type="class",
            version=PERSISTENT_VERSION,
            module_src=self.module_src,
            class_name=type(self).__name__,
            state=dict(self.__dict__),
        )
        return _reconstruct_persistent_obj, (meta,)


class FullyConnectedLayer(PersistentClass):
    """StyleGAN's equalised-lr layer: weight stored / lr_mul, scaled by lr_mul / sqrt(in) at run time."""

    def __init__(self, in_features, out_features, activation="linear", lr_multiplier=1.0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.randn(out_features) * 0.2 / lr_multiplier)
        self.weight_gain = lr_multiplier / np.sqrt(in_features)  # an np.float64, as the authors' code makes it
        self.bias_gain = lr_multiplier

    def forward(self, x):
        x = x.matmul((self.weight * float(self.weight_gain)).t()) + self.bias * self.bias_gain
        return F.leaky_relu(x, SLOPE) * np.sqrt(2) if self.activation == "lrelu" else x


def _normalize(x):
    return x * (x.square().mean(1, keepdim=True) + 1e-8).rsqrt()


class MappingNetwork(PersistentClass):
    """StyleGAN-XL's mapping: embedding table (present even when unconditional), fc0..fcK, per-class w_avg."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, embed_rows, embed_dim, num_layers=2, lr_multiplier=0.1):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, 0.998
        self.embed = nn.Embedding(embed_rows, embed_dim)
        self.embed_proj = FullyConnectedLayer(embed_dim, z_dim, activation="lrelu") if c_dim > 0 else None
        features = [z_dim * (2 if c_dim > 0 else 1)] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], "lrelu", lr_multiplier))
        self.register_buffer("w_avg", torch.randn([c_dim, w_dim] if c_dim > 0 else [w_dim]))

    def forward(self, z, c, truncation_psi=1.0, truncation_cutoff=None):
        cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
        x = _normalize(z.float())
        if self.c_dim > 0:
            x = torch.cat([x, _normalize(self.embed_proj(self.embed(c.argmax(1))))], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            for i in range(len(x)):
                center = self.w_avg[c[i].argmax()] if self.c_dim > 0 else self.w_avg
                x[i, :cutoff] = center.lerp(x[i, :cutoff], truncation_psi)
        return x


class BasicBlock(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc1 = nn.Linear(n, n)

    def forward(self, x):
        return F.leaky_relu(self.fc1(x), SLOPE).clamp(-256, 256)


class BasicBlockGM(nn.Module):
    """Level k ≥ 1: style s = fc0_5(w); the grid is re-transformed (chained); x ← fb0(x · lrelu(grid P + q))."""

    def __init__(self, w_dim, n):
        super().__init__()
        self.n = n
        self.fb0 = BasicBlock(n)
        self.fc0_1, self.fc0_2 = nn.Linear(n, 2 * n), nn.Linear(n, n)
        self.fc0_3, self.fc0_4 = nn.Linear(n, 4), nn.Linear(n, 2)
        self.fc0_5 = FullyConnectedLayer(w_dim, n, activation="lrelu")

    def forward(self, x, w, grid, gx):
        s = self.fc0_5(w.squeeze(1))
        grid = grid @ self.fc0_3(s).view(-1, 2, 2) + self.fc0_4(s).view(-1, 1, 2)
        g = grid @ self.fc0_1(s).view(-1, 2, self.n) + self.fc0_2(s).view(-1, 1, self.n)
        return self.fb0(x * F.leaky_relu(g, SLOPE)), grid, g


class GMganSynthesis(nn.Module):
    def __init__(self, grid, w_dim, n, nc, img_resolution, num_levels):
        super().__init__()
        self.grid, self.img_resolution, self.z_dim, self.z_dim1, self.nc = grid, img_resolution, w_dim, n, nc
        self.fc0_1, self.fc0_2, self.fc0_0 = nn.Linear(w_dim, 2 * n), nn.Linear(w_dim, n), nn.Linear(n, n)
        self.fc0_3, self.fc0_4 = nn.Linear(w_dim, 4), nn.Linear(w_dim, 2)
        for k in range(1, num_levels):
            setattr(self, f"fb{k}", BasicBlockGM(w_dim, n))
        self.num_levels = num_levels
        self.to_rgb = nn.Conv2d(n, nc, 1)

    def forward(self, ws, c=None):
        f = ws.split(1, dim=1)
        n, R = self.z_dim1, self.img_resolution
        grid = self.grid @ self.fc0_3(f[0]).view(-1, 2, 2) + self.fc0_4(f[0]).view(-1, 1, 2)
        g = grid @ self.fc0_1(f[0]).view(-1, 2, n) + self.fc0_2(f[0]).view(-1, 1, n)
        x = F.leaky_relu(self.fc0_0(g), SLOPE).clamp(-256, 256)
        for k in range(1, self.num_levels):
            x, grid, g = getattr(self, f"fb{k}")(x, f[k], grid, g)
        return self.to_rgb(x.transpose(1, 2).reshape(-1, n, R, R))


def frame_grid(R):
    """The authors' grid: arange(R)/(R−1), meshgrid 'ij' (component 0 = row), flattened → [1, R·R, 2]."""
    a = torch.arange(R, dtype=torch.float32) / (R - 1)
    rows, cols = torch.meshgrid(a, a, indexing="ij")
    return torch.stack([rows, cols], dim=-1).view(1, R * R, 2)


class Generator(nn.Module):
    def __init__(self, z_dim, c_dim, n, R, w_dim=48, num_levels=10, embed_rows=20, embed_dim=24, grid_noise=0.0):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.hw, self.img_channels = z_dim, c_dim, w_dim, R, 3
        grid = frame_grid(R) + grid_noise * torch.randn(1, R * R, 2)  # trained away from uniform
        self.gridt = nn.Parameter(grid, requires_grad=False)
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_levels, embed_rows, embed_dim)
        self.synthesis = GMganSynthesis(self.gridt, w_dim, n, 3, R, num_levels)

    def forward(self, z, c, truncation_psi=1.0, truncation_cutoff=None):
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), c)


class ProjectedDiscriminator(nn.Module):
    """Enough of StyleGAN-XL's D to pickle like it: spectral-norm hooks, a closure hook, a lambda, code."""

    def __init__(self):
        super().__init__()
        self.head = nn.utils.spectral_norm(nn.Linear(4, 1))
        scale = 2.0

        def hook(module, inputs, output):  # a closure: dill pickles its code and cell by value
            return output * scale

        self.register_forward_hook(hook)
        self.resize = lambda x: F.interpolate(x, 224)
        self.code = (lambda: 0).__code__

        class Options:  # a local class: dill pickles the class itself by value
            blur_sigma = 2.0

        self.options = Options()


AUTHOR_MODULES = {
    "training": {},
    "training.networks_gmgan": dict(
        Generator=Generator, GMganSynthesis=GMganSynthesis, BasicBlockGM=BasicBlockGM, BasicBlock=BasicBlock
    ),
    "torch_utils": {},
    "torch_utils.persistence": dict(_reconstruct_persistent_obj=_reconstruct_persistent_obj),
    "pg_modules": {},
    "pg_modules.discriminator": dict(ProjectedDiscriminator=ProjectedDiscriminator),
}
name_classes(AUTHOR_MODULES)


def authors_modules():
    """The authors' module names in ``sys.modules``, only for the duration of a pickling step."""
    return installed(AUTHOR_MODULES)


class Authors:
    """Builds stand-in generators and writes training snapshots the way the authors' training loop does."""

    frame_grid = staticmethod(frame_grid)

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.marker = tmp_path / "module_src_was_run"
        PersistentClass.module_src = f"import pathlib\npathlib.Path({str(self.marker)!r}).touch()\n"

    def generator(self, c_dim: int, n: int = 32, R: int = 8, seed: int = 0, grid_noise: float = 0.05) -> Generator:
        torch.manual_seed(seed)
        G = Generator(z_dim=16, c_dim=c_dim, n=n, R=R, grid_noise=grid_noise).eval().requires_grad_(False)
        G.synthesis.to_rgb.weight.mul_(8)  # images of about unit scale, so 1/255 is a strict tolerance
        return G

    def snapshot(self, G: nn.Module, discriminator: bool = True) -> dict:
        dataset = pathlib.PurePosixPath("/data/in32.zip")  # a harmless foreign object: becomes a stand-in
        return dict(
            G=G,
            D=ProjectedDiscriminator() if discriminator else None,
            G_ema=G,
            augment_pipe=None,
            training_set_kwargs=dict(
                class_name="training.dataset.ImageFolderDataset",
                path=dataset,
                use_labels=G.c_dim > 0,
                xflip=True,
                resolution=G.hw,
                random_seed=0,
            ),
            progress=dict(cur_nimg=torch.LongTensor([123456]), cur_tick=12, batch_idx=3, best_fid=np.float64(9.5)),
        )

    def write(self, snapshot: dict, name: str = "network-snapshot.pkl", writer: str = "dill") -> Path:
        """``writer``: 'dill' (the authors' ``dill.dump``), 'pickle', or 'torch' (``torch.save`` zip)."""
        path = self.tmp_path / name
        with authors_modules(), open(path, "wb") as f:
            if writer == "dill":
                # recurse: a function pickled by value carries only the globals it uses, not this conftest's
                # whole namespace (which pytest fills with unpicklable capture objects when other conftests load)
                pytest.importorskip("dill").dump(snapshot, f, recurse=True)
            elif writer == "torch":
                torch.save(snapshot, f)
            else:
                pickle.dump(snapshot, f, protocol=4)
        return path


@pytest.fixture
def authors(tmp_path: Path) -> Authors:
    return Authors(tmp_path)
