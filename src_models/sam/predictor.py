"""SAM split in two, as ``SamPredictor`` does: an expensive, cacheable image embedding
(:class:`SamEncoder`) and cheap prompted decoding (:class:`SamHead`).

The embedding of a slice is the per-slice feature the engine's FeatureCache keeps in memory;
:class:`~src_models.disk_cache.DiskCache` (``sam_embeddings``) optionally keeps it across sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from src_models.backbones.encoder import TimedEncoder
from src_models.cache import model_tag
from src_models.disk_cache import DiskCache, make_key, shape_dtype
from src_models.timing import NULL_TIMER, Timer

if TYPE_CHECKING:
    from segment_anything.modeling import Sam


@dataclass(frozen=True)
class SamEmbedding:
    """One encoded image.

    Attributes:
        embedding: (C, g, g) float16 image embedding (C = 256, g = 64 for official SAM).
        input_size: (h, w) of the resized image inside the padded encoder input.
        original_size: (H, W) of the image.
    """

    embedding: np.ndarray
    input_size: tuple[int, int]
    original_size: tuple[int, int]


def to_sam_input(image: np.ndarray, img_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(H, W, C) float32 in [0, 1] → (1, 3, h, w) float32 on 0–255, longest side ``img_size``.

    Resizing follows ``ResizeLongestSide`` (bilinear, antialiased, ``int(x + 0.5)``).
    """
    from segment_anything.utils.transforms import ResizeLongestSide

    x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = x[:, :3].clamp(0, 1) * 255.0
    size = ResizeLongestSide.get_preprocess_shape(image.shape[0], image.shape[1], img_size)
    x = F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)
    return x, (int(size[0]), int(size[1]))


class SamEncoder(TimedEncoder):
    """Runs SAM's image encoder (in ``dtype``; the prompt encoder and decoder stay float32).

    The encoder forward is timed as the ``sam_encoder`` stage (absent on a disk-cache hit);
    ``encode_count`` counts forwards (tests use it to prove cache hits).
    """

    stage = "sam_encoder"

    def __init__(
        self,
        sam: Sam,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        disk_cache: DiskCache | None = None,
    ) -> None:
        super().__init__(sam, device, dtype, cast=sam.image_encoder)
        self.disk_cache = disk_cache
        self.encode_count = 0

    @property
    def sam(self) -> Sam:
        return self.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sam.image_encoder(x)

    @property
    def img_size(self) -> int:
        return int(self.sam.image_encoder.img_size)

    @property
    def key(self) -> str:
        """Identity of the encoder (weights, dtype) for cache keys."""
        return f"sam:{getattr(self.sam, 'weights_tag', model_tag(self.sam))}:{self.dtype}"

    def _embedding_check(self) -> Callable[[np.ndarray], bool]:
        """What a stored embedding must be: (C, g, g) float16 of this SAM's prompt encoder."""
        prompt: Any = self.sam.prompt_encoder
        grid = tuple(int(v) for v in prompt.image_embedding_size)
        return shape_dtype((int(prompt.embed_dim), *grid), np.float16)

    def __call__(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> SamEmbedding:
        """(H, W, C) float32 in [0, 1] → :class:`SamEmbedding`."""
        return self.encode_batch([image], timer)[0]

    @torch.inference_mode()
    def encode_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[SamEmbedding]:
        """:meth:`__call__` of several images; those not on the disk cache in one forward
        (SAM pads every input to its square size)."""
        from segment_anything.utils.transforms import ResizeLongestSide

        out: list[SamEmbedding | None] = [None] * len(images)
        keys = [make_key(self.key, image) if self.disk_cache else "" for image in images]
        check = self._embedding_check()
        for i, image in enumerate(images):
            disk = self.disk_cache
            if disk is not None and (cached := disk.get(keys[i], check)) is not None:
                shape = image.shape[:2]
                size = ResizeLongestSide.get_preprocess_shape(shape[0], shape[1], self.img_size)
                out[i] = SamEmbedding(cached, (int(size[0]), int(size[1])), _hw(image))
        todo = [i for i, found in enumerate(out) if found is None]
        prepared = [to_sam_input(images[i], self.img_size) for i in todo]
        inputs = [self.sam.preprocess(x.to(self.device)) for x, _ in prepared]  # pad bottom/right
        for i, result, (_, input_size) in zip(
            todo, self.timed_forward_batch(inputs, timer), prepared, strict=True
        ):
            self.encode_count += 1
            embedding = result[0].float().cpu().numpy().astype(np.float16)
            if self.disk_cache is not None:
                self.disk_cache.put(keys[i], embedding)
            out[i] = SamEmbedding(embedding, input_size, _hw(images[i]))
        return [e for e in out if e is not None]


def _hw(image: np.ndarray) -> tuple[int, int]:
    return (int(image.shape[0]), int(image.shape[1]))


@dataclass
class Prediction:
    """Output of one decoder call.

    Attributes:
        logits: (M, H, W) float32 mask logits at the image size (M = 1 or 3).
        scores: (M,) float32 predicted IoU.
        low_res: (M, 4g, 4g) float32 logits, the ``mask_input`` of a next call.
    """

    logits: np.ndarray
    scores: np.ndarray
    low_res: np.ndarray

    def best(self) -> int:
        return int(np.argmax(self.scores))


class SamHead:
    """Prompted decoding of a cached :class:`SamEmbedding` through ``SamPredictor.predict``.

    ``decoder_calls`` counts calls; ``call_seconds`` holds the duration of each call since
    the last :meth:`set_embedding` (first = decoding, the rest = refinement).
    """

    def __init__(self, sam: Sam) -> None:
        from segment_anything import SamPredictor

        self.sam = sam
        self.predictor = SamPredictor(sam)
        self.decoder_calls = 0
        self.call_seconds: list[float] = []

    def set_embedding(self, emb: SamEmbedding) -> None:
        """Make ``emb`` the current image, as ``set_image`` would, without re-encoding."""
        p = self.predictor
        self.call_seconds = []
        p.reset_image()
        p.features = torch.from_numpy(emb.embedding.astype(np.float32))[None].to(p.device)
        p.original_size = emb.original_size
        p.input_size = emb.input_size
        p.is_image_set = True

    def predict(
        self,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = True,
    ) -> Prediction:
        """Decode the current embedding.

        Args:
            points: (N, 2) float (x, y) pixel coordinates in the original image.
            point_labels: (N,) int, 1 = foreground, 0 = background.
            box: (4,) float x0, y0, x1, y1 in original pixels.
            mask_input: (1, 4g, 4g) float32 logits (``Prediction.low_res[i:i+1]``).
            multimask: three masks (True) or one (False).
        """
        self.decoder_calls += 1
        start = time.perf_counter()
        logits, scores, low_res = self.predictor.predict(
            point_coords=points,
            point_labels=point_labels,
            box=None if box is None else np.asarray(box, np.float32)[None],
            mask_input=mask_input,
            multimask_output=multimask,
            return_logits=True,
        )
        self.call_seconds.append(time.perf_counter() - start)
        return Prediction(
            logits.astype(np.float32), scores.astype(np.float32), low_res.astype(np.float32)
        )

    def image_grid_map(self, emb: SamEmbedding, values: np.ndarray, fill: float) -> np.ndarray:
        """Map an (H, W) image-size map onto the (g, g) embedding grid (resize, pad, average).

        The padded area (outside the resized image) gets ``fill``.
        """
        img = int(self.sam.image_encoder.img_size)
        grid = emb.embedding.shape[-1]
        x = torch.from_numpy(np.ascontiguousarray(values, np.float32))[None, None]
        x = F.interpolate(x, emb.input_size, mode="bilinear", align_corners=False)
        h, w = emb.input_size
        x = F.pad(x, (0, img - w, 0, img - h), value=fill)
        return F.adaptive_avg_pool2d(x, grid)[0, 0].numpy()

    def mask_to_low_res(self, emb: SamEmbedding, mask: np.ndarray, eps: float = 1e-3) -> np.ndarray:
        """A binary (H, W) mask → (1, 4g, 4g) float32 logits usable as ``mask_input``.

        The mask goes through the same resize + pad as the image, is averaged to the
        low-res grid and turned into logits with a clipped inverse sigmoid (|logit| ≤ 6.9).
        """
        img = int(self.sam.image_encoder.img_size)
        low = 4 * emb.embedding.shape[-1]
        x = torch.from_numpy(mask.astype(np.float32))[None, None]
        x = F.interpolate(x, emb.input_size, mode="bilinear", align_corners=False)
        h, w = emb.input_size
        x = F.pad(x, (0, img - w, 0, img - h))
        x = F.adaptive_avg_pool2d(x, low)[0].clamp(eps, 1 - eps)
        return torch.logit(x).numpy().astype(np.float32)


def combine_objects(
    ids: Sequence[int], logits: Sequence[np.ndarray | None], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-object logits into one label image.

    Args:
        ids: object ids, one per entry of ``logits``.
        logits: (H, W) float32 logits per object, or None for an object not predicted.
        shape: (H, W).

    Returns:
        labels (H, W) int32 (the object with the highest positive logit, else 0) and
        confidence (H, W) float32: sigmoid of that logit, or 1 − the highest sigmoid on
        background.
    """
    kept = [(i, lg) for i, lg in zip(ids, logits, strict=True) if lg is not None]
    if not kept:
        return np.zeros(shape, np.int32), np.ones(shape, np.float32)
    stack = np.stack([lg for _, lg in kept])
    best = stack.argmax(0)
    top = np.take_along_axis(stack, best[None], 0)[0]
    prob = 1.0 / (1.0 + np.exp(-np.clip(top, -50, 50)))
    classes = np.array([i for i, _ in kept], np.int32)
    labels = np.where(top > 0, classes[best], 0).astype(np.int32)
    confidence = np.where(top > 0, prob, 1 - prob).astype(np.float32)
    return labels, confidence
