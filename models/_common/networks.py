"""Networks the families share (Flax): the MLP of the VAE's encoder and decoder and the GAN's
generator and discriminator."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn


class MLP(nn.Module):
    """Dense layers of `hidden` sizes with `activation` between them, then a linear layer of
    `outputs` units (no hidden sizes: a single affine map)."""

    hidden: Sequence[int]
    outputs: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, inputs):
        h = inputs
        for size in self.hidden:
            h = getattr(nn, self.activation)(nn.Dense(size)(h))
        return nn.Dense(self.outputs)(h)
