"""Monte-Carlo forward passes kept apart as logits, for the uncertainty scores.

model/elbo.py averages the passes (what training and the error need); the
uncertainty decomposition needs every pass, and the 'normalized' method needs
logits, not probabilities.
"""
from __future__ import annotations

import numpy as np
import paddle


@paddle.no_grad()
def mc_logits(model, x: paddle.Tensor, samples: int) -> paddle.Tensor:
    """Logits of `samples` forward passes over the batch x: [samples, B, C]."""
    return paddle.stack([model(x)[0] for _ in range(samples)])


@paddle.no_grad()
def loader_logits(model, loader, samples: int) -> np.ndarray:
    """Per-pass logits over a whole loader, [samples, N, C] in float32. The loader
    yields images or (images, labels) batches; labels are ignored."""
    model.eval()
    chunks = []
    for batch in loader:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        chunks.append(mc_logits(model, images, samples).numpy())
    return np.concatenate(chunks, axis=1)
