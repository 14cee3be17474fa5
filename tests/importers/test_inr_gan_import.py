"""``polyinr convert --from inr-gan``: the INR-GAN authors' StyleGAN2-ADA snapshots, read without running them.

The stand-ins below reproduce, at test size, the structure, parameter names, pickling and computation of their
``src/training/networks.py`` / ``layers.py`` (NCHW tensors, ``F.interpolate``, ``torch.bmm``, the coordinate
formulas as written there). They pickle under the authors' module names (persistent classes with their
``module_src``, omegaconf ``DictConfig`` configs with interpolations), which exist only while a snapshot is
written. Our converted generator must give their image within 1/255 for the same seed, psi and cutoff.
"""

from __future__ import annotations

import io
import math
import pickle
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from foreign_modules import installed, name_classes
from torch import nn

from guarded_child import assert_one_line_error
from polyinr.importers import ImporterError, UnsafePickleError, convert_checkpoint, restricted_load
from polyinr.importers.inr_gan import inr_gan_from_snapshot, read_config
from polyinr.sampling import latents_from_seeds

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- omegaconf stand-ins


class Metadata:
    def __init__(self, key):
        self.ref_type, self.object_type, self.optional, self.key, self.flags = typing.Any, None, True, key, {}


class ContainerMetadata(Metadata):
    def __init__(self, key):
        super().__init__(key)
        self.object_type, self.key_type, self.element_type = dict, typing.Any, typing.Any


class AnyNode:
    def __init__(self, value, parent, key):
        self._metadata, self._parent, self._val = Metadata(key), parent, value


class DictConfig:
    """Pickles as omegaconf 2.0's does: NEWOBJ + a state of ``_metadata``, ``_parent`` and ``_content``."""

    def __init__(self, content, parent=None, key=None):
        self._metadata, self._parent = ContainerMetadata(key), parent
        self._content = {
            k: DictConfig(v, self, k) if isinstance(v, dict) else AnyNode(v, self, k) for k, v in content.items()
        }


class EasyDict(dict):
    pass


def generator_cfg(mode: str, const: tuple[int, int], extra_at: tuple[int, ...]) -> dict:
    """``configs/inr-gan.yml``'s ``generator:`` node at test size (interpolations left for the reader)."""
    low = dict(log_emb_size=64, use_cosine=True, use_diagonal=True)
    medium = dict(log_emb_size=32, random_emb_size=6, use_cosine=True)
    if const[0]:
        low["const_emb_size"] = const[0]
    if const[1]:
        medium["const_emb_size"] = const[1]
    fmm = dict(enabled=True, rank=3, activation="demod")
    if mode == "bilinear":
        fmm["instance_norm"] = True
    return dict(
        fp32=True,
        upsampling_mode=mode,
        use_noise=False,
        fmaps=1,
        num_extra_convs={str(r): 1 for r in extra_at},
        input=dict(type="coords", resolution=8, coord_fuser_cfg="${coords}"),
        coords=dict(
            enabled=True,
            per_resolution=True,
            kernel_size=1,
            coord_dim=2,
            fallback=False,
            use_full_cache=False,
            low_res_cfg=low,
            medium_res_cfg=medium,
            res_configs={
                "4": "${coords.low_res_cfg}",
                "8": "${coords.low_res_cfg}",
                "16": "${coords.low_res_cfg}",
                "32": "${coords.medium_res_cfg}",
            },
        ),
        fmm=fmm,
    )


# ---------------------------------------------------------------------------- their networks, at test size


def _reconstruct_persistent_obj(meta):  # the loader must never call this
    raise AssertionError("the authors' persistence code was run")


class Persistent(nn.Module):
    module_src = ""  # set per test: code that leaves a marker file if it is ever executed

    def __reduce__(self):
        meta = dict(
            type="class",
            version=6,
            module_src=self.module_src,
            class_name=type(self).__qualname__,
            state=dict(self.__dict__),
        )
        return _reconstruct_persistent_obj, (meta,)


def bias_act(x, b, act, gain, clamp):
    x = x + b.view(1, -1, *([1] * (x.ndim - 2)))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2) * gain
    return x if clamp is None else x.clamp(-clamp, clamp)


class FullyConnectedLayer(Persistent):
    def __init__(self, in_features, out_features, activation="linear", lr_multiplier=1.0, bias_init=0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], np.float32(bias_init)) + 0.1 * torch.randn(out_features))
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight * float(self.weight_gain)
        return bias_act(x.matmul(w.t()), self.bias * self.bias_gain, self.activation, math.sqrt(2), None)


class MappingNetwork(Persistent):
    def __init__(self, z_dim, w_dim, num_ws, num_layers=2):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers, self.w_avg_beta = (
            z_dim,
            0,
            w_dim,
            num_ws,
            num_layers,
            0.995,
        )
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(z_dim if i == 0 else w_dim, w_dim, "lrelu", 0.01))
        self.register_buffer("w_avg", torch.randn(w_dim))

    def forward(self, z, truncation_psi=1, truncation_cutoff=None):
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


def generate_coords(batch_size, img_size):
    row = (torch.arange(0, img_size).float() / img_size) * 2 - 1
    x_coords = row.view(1, -1).repeat(img_size, 1)
    y_coords = x_coords.t().flip(dims=(0,))
    coords = torch.stack([x_coords, y_coords], dim=2).view(-1, 2)
    return coords.t().view(1, 2, img_size, img_size).repeat(batch_size, 1, 1, 1)


def wavefront(num_feats, block, period):
    basis = torch.tensor([block]).repeat(num_feats, 1)
    powers = torch.tensor([2]).repeat(num_feats).pow(torch.arange(num_feats)).unsqueeze(1)
    return (basis * powers * (2.0 * np.pi / period)).float()


def log_basis(resolution, use_diagonal):
    k = int(np.ceil(np.log2(resolution)))
    bases = [wavefront(k, [0.0, 1.0], 4.0), wavefront(k, [1.0, 0.0], 4.0)]
    if use_diagonal:
        s = 1.0 / np.sqrt(2)
        bases += [wavefront(k, [-s, s], 4.0 * np.sqrt(2)), wavefront(k, [s, s], 4.0 * np.sqrt(2))]
    return torch.cat(bases, dim=0)


class CoordFuser(Persistent):
    def __init__(self, cfg, resolution, res_cfg):
        super().__init__()
        self.cfg, self.resolution, self.res_cfg = cfg, resolution, res_cfg
        self.random_emb_size = res_cfg.get("random_emb_size", 0)
        self.const_emb_size = res_cfg.get("const_emb_size", 0)
        self._fourier_embs_cache = None
        self.register_buffer("log_basis", log_basis(resolution, res_cfg.get("use_diagonal", False)))
        if self.random_emb_size:
            self.register_buffer("random_basis", torch.randn(self.random_emb_size, 2) * np.sqrt(10))
        if self.const_emb_size:
            self.const_embs = nn.Parameter(torch.randn(1, self.const_emb_size, resolution, resolution))
        self.total_dim = 2 * (len(self.log_basis) + self.random_emb_size) + self.const_emb_size

    def forward(self, x):
        b, _, n = x.shape[:3]
        coords = generate_coords(b, n)
        bases = [self.log_basis] + ([self.random_basis] if self.random_emb_size else [])
        raw = torch.cat(
            [torch.einsum("bdc,bcxy->bdxy", basis.unsqueeze(0).repeat(b, 1, 1), coords) for basis in bases], dim=1
        )
        out = torch.cat([x, raw.sin(), raw.cos()], dim=1)
        self._fourier_embs_cache = out[:, x.shape[1] :].detach()  # their loop leaves this filled
        if self.const_emb_size:
            out = torch.cat([out, self.const_embs.repeat([b, 1, 1, 1])], dim=1)
        return out


class CoordsInput(Persistent):
    def __init__(self, cfg, resolution, res_cfg):
        super().__init__()
        self.cfg, self.resolution = cfg, resolution
        self.coord_fuser = CoordFuser(cfg, resolution, res_cfg)


class GenInput(Persistent):
    def __init__(self, cfg, resolution, res_cfg):
        super().__init__()
        self.cfg = cfg
        self.input = CoordsInput(cfg, resolution, res_cfg)
        self.total_dim = self.input.coord_fuser.total_dim


class SynthesisLayer(Persistent):
    def __init__(self, in_channels, out_channels, w_dim, resolution, rank, instance_norm, cfg):
        super().__init__()
        self.cfg, self.resolution, self.up, self.activation, self.conv_clamp = cfg, resolution, 1, "lrelu", None
        self.register_buffer("resample_filter", torch.ones(4, 4) / 16)
        self.act_gain = np.float64(np.sqrt(2))
        self.affine = FullyConnectedLayer(w_dim, (in_channels + out_channels) * rank, bias_init=0)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(0.1 * torch.randn([out_channels]))
        self.instance_norm, self.rank = instance_norm, rank

    def forward(self, x, w):
        styles = self.affine(w)
        if self.instance_norm:
            x = x / (x.std(dim=[2, 3], keepdim=True) + 1e-8)
        batch_size, c_in, h, w_ = x.shape
        c_out = self.weight.shape[0]
        left = styles[:, : c_out * self.rank].view(batch_size, c_out, self.rank)
        right = styles[:, c_out * self.rank :].view(batch_size, self.rank, c_in)
        modulation = left @ right / np.sqrt(self.rank)
        W = self.weight.squeeze(3).squeeze(2).unsqueeze(0) * (modulation + 1.0)
        W = W / (W.norm(dim=2, keepdim=True) + 1e-8)
        out = torch.bmm(W, x.view(batch_size, c_in, h * w_)).view(batch_size, c_out, h, w_)
        return bias_act(out, self.bias, "lrelu", float(self.act_gain), self.conv_clamp)


class ToRGBLayer(Persistent):
    def __init__(self, in_channels, out_channels, w_dim):
        super().__init__()
        self.conv_clamp = None
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(0.1 * torch.randn([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels)

    def forward(self, x, w):
        styles = self.affine(w) * float(self.weight_gain)
        weight = self.weight.unsqueeze(0) * styles.reshape(len(x), 1, -1, 1, 1)
        out = torch.stack([F.conv2d(x[i : i + 1], weight[i])[0] for i in range(len(x))])
        return bias_act(out, self.bias, "linear", 1.0, self.conv_clamp)


def upsample(x, mode):
    if mode == "bilinear":
        return F.interpolate(x, mode="bilinear", align_corners=True, scale_factor=2)
    return F.interpolate(x, mode=mode, scale_factor=2)


class SynthesisBlock(Persistent):
    def __init__(self, in_channels, out_channels, w_dim, resolution, plain_cfg, cfg):
        super().__init__()
        self.cfg, self.in_channels, self.w_dim = cfg, in_channels, w_dim
        n0 = plain_cfg["input"]["resolution"]
        self.resolution, self.up = (n0, 1) if resolution <= n0 else (resolution, 2)
        self.mode = plain_cfg["upsampling_mode"]
        self.register_buffer("resample_filter", torch.ones(4, 4) / 16)
        fmm = plain_cfg["fmm"]
        coords = plain_cfg["coords"]
        res_cfg = coords["medium_res_cfg"] if self.resolution >= 32 else coords["low_res_cfg"]
        instance_norm = fmm.get("instance_norm", False)
        layer = dict(w_dim=w_dim, resolution=self.resolution, rank=fmm["rank"], cfg=cfg)
        self.num_conv = 0
        if in_channels == 0:
            self.input = GenInput(cfg, self.resolution, res_cfg)
            conv1_in = self.input.total_dim
        else:
            self.coord_fuser = CoordFuser(cfg, self.resolution, res_cfg) if self.up == 2 else None
            conv0_in = in_channels + (self.coord_fuser.total_dim if self.coord_fuser is not None else 0)
            self.conv0 = SynthesisLayer(conv0_in, out_channels, instance_norm=False, **layer)
            self.num_conv += 1
            conv1_in = out_channels
        self.conv1 = SynthesisLayer(conv1_in, out_channels, instance_norm=in_channels > 0 and instance_norm, **layer)
        self.num_conv += 1
        extras = plain_cfg["num_extra_convs"].get(str(self.resolution), 0)
        self.extra_convs = (
            nn.ModuleList(
                [
                    SynthesisLayer(out_channels, out_channels, instance_norm=instance_norm, **layer)
                    for _ in range(extras)
                ]
            )
            if extras
            else None
        )
        self.num_conv += extras
        self.torgb = ToRGBLayer(out_channels, 3, w_dim)
        self.num_torgb = 1

    def forward(self, x, img, ws):
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.input.input.coord_fuser(torch.empty(len(ws), 0, self.resolution, self.resolution))
            x = self.conv1(x, next(w_iter))
        else:
            if self.up == 2:
                x = upsample(x, self.mode)
            if self.coord_fuser is not None:
                x = self.coord_fuser(x)
            x = self.conv0(x, next(w_iter))
            x = self.conv1(x, next(w_iter))
        for conv in self.extra_convs or []:
            x = conv(x, next(w_iter))
        if img is not None and self.up == 2:
            img = upsample(img, self.mode)
        y = self.torgb(x, next(w_iter))
        return x, y if img is None else img.add_(y)


class SynthesisNetwork(Persistent):
    def __init__(self, w_dim, img_resolution, plain_cfg, channel_base, channel_max):
        super().__init__()
        self.cfg = DictConfig(plain_cfg)
        self.w_dim, self.img_resolution = w_dim, img_resolution
        self.block_resolutions = [2**i for i in range(2, int(np.log2(img_resolution)) + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, plain_cfg, DictConfig(plain_cfg)
            )
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws):
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv
        return img


class Generator(Persistent):
    def __init__(self, mode, const, extra_at, z_dim=16, w_dim=24, img_resolution=32, channel_base=256, channel_max=24):
        super().__init__()
        plain_cfg = _resolved(generator_cfg(mode, const, extra_at))
        self.z_dim, self.c_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, 0, w_dim, img_resolution, 3
        synthesis_kwargs = EasyDict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=0, conv_clamp=None)
        self._init_args = ()
        self._init_kwargs = dict(
            z_dim=z_dim,
            c_dim=0,
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=3,
            mapping_kwargs=EasyDict(num_layers=2),
            synthesis_kwargs=synthesis_kwargs,
            cfg=generator_cfg(mode, const, extra_at),
        )
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, plain_cfg, channel_base, channel_max)
        self.synthesis.cfg = DictConfig(generator_cfg(mode, const, extra_at))  # the pickled form: unresolved
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws)

    def forward(self, z, truncation_psi=1, truncation_cutoff=None):
        return self.synthesis(self.mapping(z, truncation_psi, truncation_cutoff))


def _resolved(cfg):
    coords = cfg["coords"]
    cfg = dict(cfg, input=dict(cfg["input"], coord_fuser_cfg=coords))
    cfg["coords"] = dict(
        coords, res_configs={k: coords["low_res_cfg" if k != "32" else "medium_res_cfg"] for k in coords["res_configs"]}
    )
    return cfg


AUTHOR_MODULES = {
    "training": {},
    "training.networks": dict(
        Generator=Generator,
        MappingNetwork=MappingNetwork,
        SynthesisNetwork=SynthesisNetwork,
        SynthesisBlock=SynthesisBlock,
        SynthesisLayer=SynthesisLayer,
        ToRGBLayer=ToRGBLayer,
    ),
    "training.layers": dict(
        FullyConnectedLayer=FullyConnectedLayer, GenInput=GenInput, CoordsInput=CoordsInput, CoordFuser=CoordFuser
    ),
    "torch_utils": {},
    "torch_utils.persistence": dict(_reconstruct_persistent_obj=_reconstruct_persistent_obj),
    "omegaconf": {},
    "omegaconf.base": dict(Metadata=Metadata, ContainerMetadata=ContainerMetadata),
    "omegaconf.nodes": dict(AnyNode=AnyNode),
    "omegaconf.dictconfig": dict(DictConfig=DictConfig),
    "dnnlib": {},
    "dnnlib.util": dict(EasyDict=EasyDict),
}
name_classes(AUTHOR_MODULES)


def authors_modules():
    """The authors' module names in ``sys.modules``, only while a snapshot is written."""
    return installed(AUTHOR_MODULES)


class _CudaStorage:
    """Pickles like a CUDA storage does (``_load_from_bytes`` of a ``torch.save`` with location ``cuda:0``)."""

    def __init__(self, tensor):
        buffer = io.BytesIO()
        location_tag = torch.serialization.location_tag
        torch.serialization.location_tag = lambda storage: "cuda:0"
        try:
            torch.save(tensor, buffer)
        finally:
            torch.serialization.location_tag = location_tag
        self.data = buffer.getvalue()

    def __reduce__(self):
        return torch.storage._load_from_bytes, (self.data,)


class _CudaPickler(pickle.Pickler):
    """Writes every cached embedding tensor as a GPU-trained snapshot carries it: on a CUDA device."""

    def __init__(self, file, cached):
        super().__init__(file, protocol=4)
        self.cached = cached

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor) and any(obj is c for c in self.cached):
            storage = torch.storage.TypedStorage(wrap_storage=obj.untyped_storage(), dtype=obj.dtype, _internal=True)
            return torch._utils._rebuild_tensor_v2, (
                _CudaStorage(storage),
                obj.storage_offset(),
                tuple(obj.shape),
                obj.stride(),
                False,
                {},
            )
        return NotImplemented


def write_snapshot(path: Path, mode: str, const=(5, 4), extra_at=(32,), seed=0, cuda_cache=True) -> Generator:
    """A trained-looking snapshot: G and G_ema differ, the embedding caches are filled (on 'CUDA')."""
    Persistent.module_src = f"import pathlib\npathlib.Path({str(path.parent / 'module_src_was_run')!r}).touch()\n"
    torch.manual_seed(seed)
    G = Generator(mode, const, extra_at).eval().requires_grad_(False)
    G_ema = Generator(mode, const, extra_at).eval().requires_grad_(False)
    G_ema.synthesis.b4.torgb.weight.mul_(4)  # images of about unit scale, so 1/255 is a strict tolerance
    with torch.no_grad():
        G_ema(torch.randn(2, G_ema.z_dim))
    cached = [m._fourier_embs_cache for m in G_ema.modules() if isinstance(m, CoordFuser)]
    snapshot = dict(
        training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", resolution=32),
        G=G,
        D=None,
        G_ema=G_ema,
        augment_pipe=None,
    )
    with authors_modules(), open(path, "wb") as f:
        _CudaPickler(f, cached if cuda_cache else []).dump(snapshot)
    return G_ema


def their_images(G: Generator, seeds, psi, cutoff) -> torch.Tensor:
    z = latents_from_seeds(seeds, G.z_dim)
    with torch.no_grad():
        return G(z, psi, cutoff)


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_converted_generator_gives_their_image(tmp_path, mode):
    path = tmp_path / "network-snapshot-000100.pkl"
    theirs = write_snapshot(path, mode)
    conversion = convert_checkpoint("inr-gan", path, tmp_path / "converted")
    G = conversion.generator
    assert G.cfg.upsampling == mode and G.cfg.instance_norm == (mode == "bilinear")
    assert G.num_ws == theirs.num_ws
    for psi, cutoff in [(1.0, None), (0.7, None), (0.5, 3)]:
        expected = their_images(theirs, [0, 1, 7], psi, cutoff)
        z = latents_from_seeds([0, 1, 7], G.z_dim)
        with torch.no_grad():
            ours = G(z, truncation_psi=psi, truncation_cutoff=cutoff)
        assert expected.abs().max() > 0.5
        assert (ours - expected).abs().max() * 127.5 < 1.0, (psi, cutoff)
    assert not (tmp_path / "module_src_was_run").exists()
    assert any("per-pixel constants: 5 / 4" in line for line in conversion.lines())
    # the converted checkpoint renders beyond the native frame too: super-resolution and extrapolation
    from polyinr.grid import Grid

    with torch.no_grad():
        big = G(z[:1], grid=Grid.window(-0.5, -0.5, 1.5, 1.5, 64, 64))
    assert big.shape == (1, 3, 64, 64) and torch.isfinite(big).all()


def test_cuda_storages_load_on_the_cpu_and_the_cache_is_ignored(tmp_path):
    path = tmp_path / "snapshot.pkl"
    write_snapshot(path, "nearest")
    assert b"cuda:0" in path.read_bytes()  # the caches' storages were written on a CUDA device
    snapshot = restricted_load(path)
    G, _, _ = inr_gan_from_snapshot(snapshot)
    assert all(t.device.type == "cpu" for t in G.state_dict().values())


def test_converted_parameters_are_G_ema_not_G(tmp_path):
    path = tmp_path / "snapshot.pkl"
    theirs = write_snapshot(path, "nearest", cuda_cache=False)
    G, _, _ = inr_gan_from_snapshot(restricted_load(path))
    assert torch.equal(G.synthesis.blocks.b32.torgb.bias, theirs.synthesis.b32.torgb.bias)


class _Evil:
    def __reduce__(self):
        import os

        return os.system, ("touch /tmp/inr_gan_import_pwned",)


def test_code_running_pickles_are_refused(tmp_path):
    path = tmp_path / "snapshot.pkl"
    theirs = write_snapshot(path, "nearest", cuda_cache=False)
    theirs.synthesis.b8.conv1.hook = _Evil()
    with authors_modules(), open(path, "wb") as f:
        pickle.dump(dict(G=theirs, G_ema=theirs, D=None), f, protocol=4)
    with pytest.raises(UnsafePickleError, match="system, which could run code"):
        convert_checkpoint("inr-gan", path, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not Path("/tmp/inr_gan_import_pwned").exists()


def test_other_snapshots_are_refused_in_one_line(tmp_path):
    path = tmp_path / "snapshot.pkl"
    with open(path, "wb") as f:
        pickle.dump(dict(G=1, D=2), f)
    with pytest.raises(ImporterError, match="expected a dict with G_ema"):
        convert_checkpoint("inr-gan", path, tmp_path / "out")
    theirs = write_snapshot(path, "nearest", cuda_cache=False)
    theirs.synthesis.cfg = DictConfig(
        dict(generator_cfg("nearest", (0, 0), ()), fmm=dict(enabled=True, rank=3, activation="tanh"))
    )
    with authors_modules(), open(path, "wb") as f:
        pickle.dump(dict(G_ema=theirs), f, protocol=4)
    with pytest.raises(ImporterError, match="FMM activation 'tanh'") as info:
        convert_checkpoint("inr-gan", path, tmp_path / "out")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- configs that grow when walked


def _write_with_config_extra(path: Path, **extra) -> None:
    """A snapshot whose synthesis config also holds ``extra`` (config nodes or plain values) at its root."""
    theirs = write_snapshot(path, "nearest", cuda_cache=False)
    cfg = DictConfig(generator_cfg("nearest", (5, 4), (32,)))
    cfg._content.update({k: v if isinstance(v, DictConfig) else AnyNode(v, cfg, k) for k, v in extra.items()})
    theirs.synthesis.cfg = cfg
    with authors_modules(), open(path, "wb") as f:
        pickle.dump(dict(G_ema=theirs), f, protocol=4)


def _shared_nodes(depth: int) -> DictConfig:
    """``n_k = {a: n_{k-1}, b: n_{k-1}}``: ``depth`` nodes in the file, ``2**depth`` leaves when copied."""
    node = DictConfig({"leaf": 1})
    for _ in range(depth):
        parent = DictConfig({})
        parent._content = {"a": node, "b": node}
        node = parent
    return node


def _fanned_interpolations(levels: int) -> dict[str, DictConfig]:
    """``l_k = {a: ${l_{k-1}}, b: …, c: …, d: …}``: ``levels`` small nodes, ``4**levels`` values resolved."""
    nodes = {"l0": DictConfig({"x": 1})}
    for k in range(1, levels):
        nodes[f"l{k}"] = DictConfig({key: f"${{l{k - 1}}}" for key in "abcd"})
    return nodes


@pytest.mark.parametrize(
    "make",
    [lambda: {"shared": _shared_nodes(20)}, lambda: _fanned_interpolations(18)],
    ids=["shared-dicts", "fanned-interpolations"],
)
def test_configs_that_expand_exponentially_are_refused_in_one_line(tmp_path, make):
    path = tmp_path / "snapshot.pkl"
    _write_with_config_extra(path, **make())
    assert_one_line_error(
        lambda: convert_checkpoint("inr-gan", path, tmp_path / "out"), "ImporterError", "would expand to over"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "make",
    [lambda: {"shared": _shared_nodes(5)}, lambda: _fanned_interpolations(4)],
    ids=["shared-dicts", "fanned-interpolations"],
)
def test_configs_that_share_and_interpolate_modestly_still_convert(tmp_path, make):
    path = tmp_path / "snapshot.pkl"
    _write_with_config_extra(path, **make())
    assert convert_checkpoint("inr-gan", path, tmp_path / "out").generator.cfg.upsampling == "nearest"


def test_interpolations_resolve_through_interpolated_parents():
    cfg = read_config({"a": {"b": 1}, "c": "${a}", "d": "${c.b}", "e": ["${d}", "${ a.b }"]})
    assert cfg == {"a": {"b": 1}, "c": {"b": 1}, "d": 1, "e": [1, 1]}


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"a": "${b}", "b": "${a}"}, "refers back to itself"),
        ({"a": {"b": "${a}"}}, "refers back to itself"),
        ({"a": "${nowhere.b}"}, "does not resolve"),
        ({f"a{k}": f"${{a{k + 1}}}" for k in range(60)} | {"a60": 1}, "more than 50 deep"),
    ],
    ids=["circular", "inside-itself", "dangling", "long-chain"],
)
def test_bad_interpolations_are_one_line(config, words):
    with pytest.raises(ImporterError, match=words) as info:
        read_config(config)
    assert "\n" not in str(info.value)
