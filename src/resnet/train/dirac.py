"""Identity initialisation of the convolutions (the recipe field ``dirac_init``).

Each convolution's first ``min(in, out)`` filters start as ``torch.nn.init.dirac_``: filter ``i`` passes input
channel ``i`` through unchanged (at the kernel's centre, so a strided or padded convolution passes it through as
a plain subsampling). The other filters keep the network's initialisation. Jordan 2024 (airbench94) starts every
convolution this way, "an implicit residual"; in a residual network it makes each branch start near the identity
as well. Run before ``whiten_stem``, which then sets the first layer on its own terms.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def dirac_convs(model: nn.Module) -> int:
    """Give every ungrouped 2-d convolution of ``model`` identity filters; how many convolutions changed."""
    changed = 0
    for conv in model.modules():
        if isinstance(conv, nn.Conv2d) and conv.groups == 1:
            weight = conv.weight
            nn.init.dirac_(weight[: min(weight.shape[0], weight.shape[1])])
            changed += 1
    return changed
