"""The StyleGAN-XL authors' generator classes (``training/networks_stylegan3_resetting.py``) at test size.

Their ``MappingNetwork`` (a class table ``embed``, a plain ``nn.Embedding`` their code loads from a file even
when unconditional; ``embed_proj``; per-class ``w_avg`` and truncation), their stem ``Generator`` and their
``SuperresGenerator`` (cut the stem's critically sampled layers, append ``head_layers + 1`` layers whose filter
parameters continue from the last one kept), written from their code's description on top of
``stylegan3_reference`` (NVIDIA's synthesis as it runs without CUDA). They pickle as the authors' do: persistent
classes carrying their source, under module names that exist only while a pickle is written.
"""

from __future__ import annotations

import numpy as np
import stylegan3_reference as nv
import torch
from foreign_modules import name_classes
from torch import nn


class MappingNetwork(nv.PersistentModule):
    def __init__(
        self,
        z_dim,
        c_dim,
        w_dim,
        num_ws,
        num_layers=2,
        lr_multiplier=0.01,
        w_avg_beta=0.998,
        embed_rows=10,
        embed_dim=8,
    ):
        super().__init__(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            num_ws=num_ws,
            num_layers=num_layers,
            lr_multiplier=lr_multiplier,
            w_avg_beta=w_avg_beta,
        )
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        self.embed = nn.Embedding(embed_rows, embed_dim)  # theirs: 1000 × 320, loaded from a pickle file
        self.embed_proj = nv.FullyConnectedLayer(embed_dim, z_dim, activation="lrelu") if c_dim > 0 else None
        features = [z_dim + (z_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            layer = nv.FullyConnectedLayer(
                features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([c_dim, w_dim]) if c_dim > 0 else torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        if truncation_cutoff is None:
            truncation_cutoff = self.num_ws
        x = z.to(torch.float32)
        x = x * (x.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        if self.c_dim > 0:
            y = self.embed_proj(self.embed(c.argmax(1)))
            y = y * (y.square().mean(1, keepdim=True) + 1e-8).rsqrt()
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.c_dim > 0:
                for i, label in enumerate(c.argmax(1)):
                    x[i, :truncation_cutoff] = self.w_avg[label].lerp(x[i, :truncation_cutoff], truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class Generator(nv.PersistentModule):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None, **synthesis_kwargs):
        mapping_kwargs = mapping_kwargs or {}
        super().__init__(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            mapping_kwargs=mapping_kwargs,
            **synthesis_kwargs,
        )
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = nv.SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


class SuperresGenerator(nv.PersistentModule):
    """Theirs loads ``G_ema`` from ``path_stem``; here the stem generator is handed over directly."""

    def __init__(self, G_stem, head_layers, up_factor):
        img_resolution = G_stem.img_resolution * up_factor
        super().__init__(
            img_resolution=img_resolution, path_stem="stem.pkl", head_layers=head_layers, up_factor=up_factor
        )
        self.path_stem, self.up_factor = "stem.pkl", up_factor
        self.mapping, self.synthesis = G_stem.mapping, G_stem.synthesis
        self.z_dim, self.c_dim, self.w_dim, self.img_channels = G_stem.z_dim, G_stem.c_dim, G_stem.w_dim, 3
        stem_kwargs = self.synthesis._init_kwargs
        self.channel_base, self.channel_max = stem_kwargs["channel_base"], stem_kwargs["channel_max"]
        self.margin_size, self.last_stopband_rel = stem_kwargs["margin_size"], stem_kwargs["last_stopband_rel"]
        self.num_critical, self.num_fp16_res = stem_kwargs["num_critical"], 4
        for name in reversed(self.synthesis.layer_names):  # cut off the critically sampled layers
            if getattr(self.synthesis, name).is_critically_sampled:
                delattr(self.synthesis, name)
                self.synthesis.layer_names.pop()
        stem_len = len(self.synthesis.layer_names) + 1
        self.img_resolution = img_resolution
        self.synthesis.img_resolution = img_resolution
        self.num_ws = stem_len + head_layers + 1
        self.mapping.num_ws = self.synthesis.num_ws = self.num_ws
        last = getattr(self.synthesis, self.synthesis.layer_names[-1])
        f = self.compute_superres_filterparams(img_resolution, last, head_layers)
        self.head_layer_names = []
        for idx in range(head_layers + 1):
            prev = max(idx - 1, 0)
            layer = nv.SynthesisLayer(
                w_dim=self.w_dim,
                is_torgb=idx == head_layers,
                is_critically_sampled=idx >= head_layers - self.num_critical,
                use_fp16=bool(f["sampling_rates"][idx] * (2**self.num_fp16_res) > img_resolution),
                in_channels=int(f["channels"][prev]),
                out_channels=int(f["channels"][idx]),
                in_size=int(f["sizes"][prev]),
                out_size=int(f["sizes"][idx]),
                in_sampling_rate=int(f["sampling_rates"][prev]),
                out_sampling_rate=int(f["sampling_rates"][idx]),
                in_cutoff=f["cutoffs"][prev],
                out_cutoff=f["cutoffs"][idx],
                in_half_width=f["half_widths"][prev],
                out_half_width=f["half_widths"][idx],
            )
            name = f"L{idx + stem_len}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self.synthesis, name, layer)
            self.synthesis.layer_names.append(name)
            self.head_layer_names.append(name)

    def compute_superres_filterparams(self, img_resolution, last_stem_layer, head_layers, num_critical=2):
        first_cutoff = last_stem_layer.out_cutoff
        first_stopband = last_stem_layer.out_half_width + first_cutoff
        last_cutoff = img_resolution / 2
        last_stopband = last_cutoff * self.last_stopband_rel
        exponents = np.minimum(np.arange(head_layers + 1) / (head_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        sampling_rates[0] = last_stem_layer.out_sampling_rate
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
        sizes = sampling_rates + self.margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((self.channel_base / 2) / cutoffs, self.channel_max))
        channels[0] = last_stem_layer.out_channels
        channels[-1] = self.img_channels
        return dict(
            cutoffs=cutoffs, sampling_rates=sampling_rates, half_widths=half_widths, sizes=sizes, channels=channels
        )

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


class ProjectedDiscriminator(nn.Module):
    """Stands in for ``pg_modules.discriminator.ProjectedDiscriminator`` (a plain module in their pickles)."""

    def __init__(self) -> None:
        super().__init__()
        self.disc = nn.Linear(4, 1)


XL_MODULES = {
    "training.networks_stylegan3_resetting": dict(
        Generator=Generator,
        SuperresGenerator=SuperresGenerator,
        MappingNetwork=MappingNetwork,
    ),
    "pg_modules": {},
    "pg_modules.discriminator": dict(ProjectedDiscriminator=ProjectedDiscriminator),
}
name_classes(XL_MODULES)
nv.NVIDIA_MODULES.update(XL_MODULES)
