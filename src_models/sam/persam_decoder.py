"""PerSAM's two decoder changes, made by subclassing segment-anything's modules in place.

* Target-guided attention: in both two-way blocks, the token→image attention gets a
  per-image-token bias ``attn_sim`` (1, 1, 1, g·g) added to its *post-softmax* weights,
  followed by a second softmax (as the official PerSAM code does, α = 1).
* Target-semantic prompting: the target embedding t (1, 1, C) is added to every token before
  each block and to the query of the final token→image attention. The official code adds
  it in place (``queries += t`` on the very tensor that is also the point embedding), so the
  point embedding carries t in both blocks and the final query receives 2·t; this module
  reproduces that.

:func:`install_persam` swaps the classes of the existing modules (``__class__``), so the
parameters, their names and the state dict stay those of the official checkpoint. The
modules read the prompts from a shared :class:`PersamContext`; when it is empty they compute
exactly what segment-anything computes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from segment_anything.modeling.transformer import Attention, TwoWayAttentionBlock
from torch import Tensor

if TYPE_CHECKING:
    from segment_anything.modeling import Sam


@dataclass
class PersamContext:
    """Per-call PerSAM prompts shared by the patched modules (None = off).

    Attributes:
        attn_sim: (1, 1, 1, g·g) float32 bias on the token→image attention.
        target_embedding: (1, 1, C) float32 added to the decoder tokens.
    """

    attn_sim: Tensor | None = None
    target_embedding: Tensor | None = None


def guided_softmax(logits: Tensor, bias: Tensor | None) -> Tensor:
    """softmax(logits), then (if ``bias``) softmax(softmax(logits) + bias) over the last dim.

    Args:
        logits: (B, heads, N_tokens, N_image) scaled attention logits.
        bias: broadcastable to ``logits``, e.g. (1, 1, 1, N_image).
    """
    attn = torch.softmax(logits, dim=-1)
    if bias is not None:
        attn = torch.softmax(attn + bias.to(attn.dtype), dim=-1)
    return attn


class GuidedAttention(Attention):
    """segment-anything ``Attention`` whose weights take PerSAM's target-guided bias."""

    persam: PersamContext

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        bias = self.persam.attn_sim if hasattr(self, "persam") else None
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        out = guided_softmax(logits, bias) @ v
        return self.out_proj(self._recombine_heads(out))


class SemanticQueryAttention(Attention):
    """The final token→image ``Attention`` whose query receives 2·t (t once through the
    official in-place point embedding, once added explicitly)."""

    persam: PersamContext

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        target = self.persam.target_embedding if hasattr(self, "persam") else None
        return super().forward(q if target is None else q + 2 * target, k, v)


class SemanticBlock(TwoWayAttentionBlock):
    """A two-way block whose input tokens and query positional embedding receive t."""

    persam: PersamContext

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        target = self.persam.target_embedding if hasattr(self, "persam") else None
        if target is not None:
            queries, query_pe = queries + target, query_pe + target
        return super().forward(queries, keys, query_pe, key_pe)


def install_persam(sam: Sam) -> PersamContext:
    """Patch ``sam.mask_decoder.transformer`` in place for PerSAM; return its context.

    Idempotent: a second call returns the context already installed.
    """
    transformer = sam.mask_decoder.transformer
    existing = getattr(transformer, "persam_context", None)
    if existing is not None:
        return existing
    context = PersamContext()
    for block in transformer.layers:
        block.__class__ = SemanticBlock
        block.persam = context
        block.cross_attn_token_to_image.__class__ = GuidedAttention
        block.cross_attn_token_to_image.persam = context
    transformer.final_attn_token_to_image.__class__ = SemanticQueryAttention
    transformer.final_attn_token_to_image.persam = context
    transformer.persam_context = context
    return context


@contextmanager
def persam_prompts(
    context: PersamContext, attn_sim: Tensor | None, target_embedding: Tensor | None
) -> Iterator[None]:
    """Set the PerSAM prompts for the decoder calls inside the ``with`` block."""
    context.attn_sim, context.target_embedding = attn_sim, target_embedding
    try:
        yield
    finally:
        context.attn_sim, context.target_embedding = None, None
