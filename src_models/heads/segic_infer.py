"""SEGIC inference steps: preprocessing, in-context instructions, decoding, postprocessing.

The steps follow the official code (``model/segic.py``): longest side → input size (896),
pad bottom/right, ImageNet normalisation with the padded area zeroed, DINOv2 patch tokens
(64×64×1024), prototypes under the reference mask, a cosine "geometric" map at a quarter of
the input size, its top-1 point plus a padding point, cross-instance tokens, the geometric
map as the dense prompt, mask token 0, and logits resized back to the image.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from src_models.backbones.encoder import imagenet_normalize
from src_models.heads.segic import SegicDecoder

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer


def scale_factor(shape: tuple[int, int], input_size: int) -> float:
    """The official ``Resize``: ``input_size / max(H, W)``, given to ``F.interpolate``."""
    return input_size / max(shape)


def valid_size(shape: tuple[int, int], input_size: int) -> tuple[int, int]:
    """(h, w) of an (H, W) image resized by :func:`scale_factor`: ``floor(H · s)`` as
    ``F.interpolate(scale_factor=s)`` truncates (the official code; e.g. 480 × 854 → 503 × 896)."""
    s = scale_factor(shape, input_size)
    return min(input_size, math.floor(shape[0] * s)), min(input_size, math.floor(shape[1] * s))


def _resize(x: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B, C, H, W) float → longest side ≈ ``input_size`` by the official bilinear
    ``scale_factor`` resize (output size truncated, sampling at the exact factor)."""
    s = scale_factor((int(x.shape[-2]), int(x.shape[-1])), input_size)
    return F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)


def _pad(x: torch.Tensor, input_size: int, value: float) -> torch.Tensor:
    return F.pad(x, (0, input_size - x.shape[-1], 0, input_size - x.shape[-2]), value=value)


def preprocess(
    image: np.ndarray | torch.Tensor, input_size: int
) -> tuple[torch.Tensor, tuple[int, int]]:
    """One image → the padded, normalised square input (the official ``Resize`` +
    ``extract_dift_feature``: resize on 0–255, pad, /255, normalise, zero the padding).

    Args:
        image: (H, W, C) float32 in [0, 1], C in {1, 3}; or a (C, H, W) float tensor.

    Returns:
        (1, 3, S, S) float32 with the padded area 0, and the (h, w) unpadded size.
    """
    x = (
        image
        if isinstance(image, torch.Tensor)
        else torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    )
    x = x.float()[None]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"SEGIC needs 1 or 3 channels, got {x.shape[1]}: convert the image first")
    x = _resize(x * 255.0, input_size)
    hv, wv = x.shape[-2:]
    x = imagenet_normalize(_pad(x, input_size, 128.0) / 255.0)
    x[..., hv:, :] = 0
    x[..., :, wv:] = 0
    return x, (hv, wv)


def mask_to_input(mask: np.ndarray | torch.Tensor, input_size: int) -> torch.Tensor:
    """(K, H, W) or (H, W) masks → (K, S, S) float 0/1 in the padded input frame.

    As the official ``Resize`` + ``forward``: bilinear ``scale_factor`` resize, > 0.5, pad.
    A mask that would vanish (a thin scribbled stroke) keeps every pixel it touches (> 0).
    """
    m = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(mask))
    m = m.float()
    if m.ndim == 2:
        m = m[None]
    soft = _resize(m[None], input_size)[0]
    hard = soft > 0.5
    vanished = ~hard.flatten(1).any(1)
    hard[vanished] = soft[vanished] > 0
    return _pad(hard.float(), input_size, 0.0)


def encode_tokens(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """DINOv2 ``x_norm_patchtokens`` of (B, 3, S, S) inputs → (B, D, g, g) float32."""
    patch = int(model.patch_embed.patch_size[0])
    grid = (x.shape[-2] // patch, x.shape[-1] // patch)
    tokens = model.forward_features(x)[:, model.num_prefix_tokens :].float()
    return tokens.transpose(1, 2).reshape(x.shape[0], -1, *grid)


def prototypes(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean feature under each mask (visual instruction).

    Args:
        features: (1, D, g, g) float tokens of the reference.
        masks: (K, S, S) float masks in the input frame; resized bilinearly to g × g and
            thresholded at 0.5 as in the official code. A mask too small to cover half a
            patch falls back to its soft (area-resized) weights instead of an empty mean.

    Returns:
        (K, D) float prototypes.
    """
    grid = features.shape[-2:]
    small = F.interpolate(masks[:, None], size=grid, mode="bilinear", align_corners=False)[:, 0]
    weights = (small > 0.5).float()
    soft = F.interpolate(masks[:, None], size=grid, mode="area")[:, 0]
    empty = weights.flatten(1).sum(1) == 0
    weights[empty] = soft[empty]
    total = weights.flatten(1).sum(1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError(
            "an example mask is empty after resizing: give a mask with foreground pixels"
        )
    flat = features[0].flatten(1)  # (D, g·g)
    return (weights.flatten(1) @ flat.T) / total


def instance_prototypes(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The official ``extract_inst_feat``: mean feature under each mask, an empty mask → 0.

    Args:
        features: (1, D, g, g) float tokens; masks: (K, S, S) float 0/1 in the input frame.

    Returns:
        (K, D) float (a zero row for a mask that covers no patch centre).
    """
    small = F.interpolate(masks[:, None].float(), size=features.shape[-2:], mode="bilinear")
    weights = (small[:, 0] > 0.5).float().flatten(1)
    flat = features[0].flatten(1)
    return (weights @ flat.T) / weights.sum(1, keepdim=True).clamp(min=1)


def geometric_maps(
    features: torch.Tensor,
    protos: torch.Tensor,
    input_size: int,
    tau: float = 1.0,
    chunk: int = 128,
) -> torch.Tensor:
    """Cosine of each target location to each prototype (geometric instruction).

    The target tokens are upsampled to ``input_size // 4`` (224 at 896) before the cosine,
    the map is then resized to the input size and divided by ``tau``.

    Args:
        features: (1, D, g, g) float target tokens.
        protos: (Q, D) float prototypes.

    Returns:
        (Q, 1, S, S) float maps in [-1/tau, 1/tau].
    """
    side = (input_size // 4, input_size // 4)
    # Bilinear upsampling is linear, so up(f)·v = up(f·v); only the norm |up(f)| needs the
    # upsampled tokens, accumulated over channel chunks to bound memory (exact, not approximate).
    dots = torch.einsum("dhw,qd->qhw", features[0], F.normalize(protos, dim=1))[:, None]
    dots = F.interpolate(dots, size=side, mode="bilinear", align_corners=False)
    norm2 = torch.zeros(side, dtype=features.dtype, device=features.device)
    for start in range(0, features.shape[1], chunk):
        up = F.interpolate(
            features[:, start : start + chunk], size=side, mode="bilinear", align_corners=False
        )
        norm2 += up[0].square().sum(0)
    sims = dots / norm2.sqrt().clamp_min(1e-12)
    return (
        F.interpolate(sims, size=(input_size, input_size), mode="bilinear", align_corners=False)
        / tau
    )


def top1_points(maps: torch.Tensor) -> torch.Tensor:
    """(Q, 1, S, S) maps → (Q, 1, 2) float xy pixel coordinates of each map's maximum."""
    side = maps.shape[-1]
    flat = maps.flatten(1).argmax(1)
    return torch.stack([flat % side, flat // side], dim=1).float()[:, None]


def decode(
    decoder: SegicDecoder,
    features: torch.Tensor,
    query_protos: torch.Tensor,
    inst_protos: torch.Tensor,
    types: torch.Tensor | None,
    text: torch.Tensor | None,
    boxes: torch.Tensor | None = None,
    cross_points: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Q queries on one target: instructions → low-resolution mask logits.

    Args:
        features: (1, D, g, g) target tokens.
        query_protos: (Q, D) prototype of each query's object (drives the geometric map).
        inst_protos: (T, D) every instance prototype (cross-instance tokens).
        types: (Q, T) long, 1 where instance t is query q's own object; None: each query
            sees only its own prototype (``inst_protos`` is then (Q, D)).
        text: (Q, text_dim) meta-instruction embeddings, or None (no text token).
        boxes: (Q, 4) xyxy box prompts in input pixels (training), or None.
        cross_points: every query also gets the other queries' points as negative points
            (the official video path, ``forward_vos``); else only its own point.

    Returns:
        logits (Q, 1, 4g, 4g) float and geometric maps (Q, 1, S, S).
    """
    size = decoder.config.input_size
    maps = geometric_maps(features, query_protos, size)
    points = top1_points(maps)
    labels = None
    if cross_points:
        count = len(points)
        points = points[:, 0][None].expand(count, -1, -1)
        labels = torch.eye(count, device=points.device)
    sparse = decoder.sparse_tokens(points, inst_protos, types, text, boxes, labels)
    logits, _ = decoder(features, maps, sparse)
    return logits, maps


def postprocess(
    logits: torch.Tensor, input_size: int, valid: tuple[int, int], shape: tuple[int, int]
) -> torch.Tensor:
    """(Q, 1, 4g, 4g) logits → (Q, H, W): upsample to the input, crop the padding, resize."""
    up = F.interpolate(logits, size=(input_size, input_size), mode="bilinear", align_corners=False)
    up = up[..., : valid[0], : valid[1]]
    return F.interpolate(up, size=shape, mode="bilinear", align_corners=False)[:, 0]
