"""Fine-tune (or train from scratch) the SEGIC decoder on a frozen DINOv2, as a generator.

Recipe (docs/parity.md): AdamW (lr 1e-4, wd 1e-4), StepLR ×0.1 after 10/12 of the run, BCE +
Dice on 12,544 importance-sampled points (oversample 3, importance 0.75), context reversion
(a second pass that uses the predicted target mask as the reference and the reference as the
target; the two losses are averaged), text kept with probability 0.75, a GT box prompt and
cross-instance tokens each 50% of the time (drawn per pass). Checkpoints are raw decoder state
dicts (the released format) plus a sidecar ``<out>.train.pt`` with the optimizer, scheduler,
step and random states, so a run resumes.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from src_models.atomic import write_file
from src_models.heads.segic import SegicDecoder, load_segic_weights, save_segic_weights
from src_models.heads.segic_data import Episode, EpisodeSource, sample_episode
from src_models.heads.segic_infer import (
    decode,
    encode_tokens,
    mask_to_input,
    preprocess,
    prototypes,
)
from src_models.heads.segic_loss import mask_loss

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer


@dataclass(frozen=True)
class SegicTrainConfig:
    """Training hyperparameters (defaults = the official recipe, except the run length).

    Attributes:
        steps: optimizer steps.
        batch_size: episodes per step.
        lr, weight_decay: AdamW.
        decay_every: StepLR period in steps (None: 10/12 of ``steps``); gamma: its factor.
        num_points, oversample, importance: point sampling of the loss.
        reversion: add the context-reversion pass.
        text_keep: probability of feeding the text embedding (else a zero vector).
        box_prob: probability of adding the target's GT box as a prompt.
        cross_inst_prob: probability of cross-instance tokens (all objects, with type
            embeddings); otherwise each query sees only its own prototype (official: 0.5).
        augment: ``instance``, ``semantic`` or ``none`` (see :mod:`segic_data`).
        max_objects: objects (queries) per episode at most.
        min_area: smallest object kept after augmentation, in pixels.
        save_every: checkpoint period in steps (also saved at the end and on stop).
        seed: seeds numpy and torch.
    """

    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-4
    decay_every: int | None = None
    gamma: float = 0.1
    num_points: int = 12544
    oversample: float = 3.0
    importance: float = 0.75
    reversion: bool = True
    text_keep: float = 0.75
    box_prob: float = 0.5
    cross_inst_prob: float = 0.5
    augment: str = "instance"
    max_objects: int = 4
    min_area: int = 100
    save_every: int = 500
    seed: int = 0


def sidecar_path(out: str | Path) -> Path:
    """Where the optimizer state of checkpoint ``out`` lives."""
    out = Path(out)
    return out.with_name(out.name + ".train.pt")


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(K, S, S) {0, 1} masks → (K, 4) float xyxy pixel boxes (all zeros for an empty mask)."""
    from torchvision.ops import masks_to_boxes

    binary = masks > 0.5
    boxes = torch.zeros(len(masks), 4, device=masks.device)
    present = binary.flatten(1).any(1)
    if present.any():
        boxes[present] = masks_to_boxes(binary[present]).float()
    return boxes


class Trainer:
    """State of one run: the decoder, the frozen backbone, optimizer, scheduler, random state."""

    def __init__(
        self,
        decoder: SegicDecoder,
        backbone: VisionTransformer,
        config: SegicTrainConfig,
        text: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.decoder = decoder.to(self.device).train()
        self.backbone = backbone.to(self.device).eval().requires_grad_(False)
        self.dtype = next(backbone.parameters()).dtype
        self.config = config
        self.text = None if text is None else text.to(self.device)
        self.optimizer = torch.optim.AdamW(
            decoder.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        decay = config.decay_every or max(1, round(config.steps * 10 / 12))
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=decay, gamma=config.gamma
        )
        self.rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        self.step = 0

    @torch.no_grad()
    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, W) image (C in {1, 3}) → (1, D, g, g) float32 frozen tokens."""
        x, _ = preprocess(image, self.decoder.config.input_size)
        return encode_tokens(self.backbone, x.to(self.device, self.dtype)).float()

    def _text(self, count: int) -> torch.Tensor:
        keep = self.text is not None and self.rng.random() < self.config.text_keep
        vector = (
            self.text
            if keep and self.text is not None
            else torch.zeros(self.decoder.config.text_dim, device=self.device)
        )
        return vector[None].expand(count, -1)

    def _pass(
        self,
        ref: torch.Tensor,
        ref_masks: torch.Tensor,
        tgt: torch.Tensor,
        tgt_masks: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoding of the target from the reference; returns (loss, logits)."""
        c = self.config
        count = len(ref_masks)
        protos = prototypes(ref, ref_masks)
        cross = self.rng.random() < c.cross_inst_prob
        types = torch.eye(count, dtype=torch.long, device=self.device) if cross else None
        boxes = mask_boxes(tgt_masks) if self.rng.random() < c.box_prob else None
        logits, _ = decode(self.decoder, tgt, protos, protos, types, self._text(count), boxes)
        loss = mask_loss(logits, tgt_masks[:, None], c.num_points, c.oversample, c.importance)
        return loss, logits

    def episode_loss(self, episode: Episode) -> torch.Tensor:
        """Loss of one episode, averaged with the context-reversion pass when it applies."""
        size = self.decoder.config.input_size
        ref, tgt = self.features(episode.ref_image), self.features(episode.tgt_image)
        ref_masks = mask_to_input(episode.ref_masks, size).to(self.device)
        tgt_masks = mask_to_input(episode.tgt_masks, size).to(self.device)
        loss, logits = self._pass(ref, ref_masks, tgt, tgt_masks)
        if not self.config.reversion:
            return loss
        predicted = (
            F.interpolate(logits.detach(), size=(size, size), mode="bilinear", align_corners=False)[
                :, 0
            ]
            > 0
        )
        keep = predicted.flatten(1).any(1)
        if not keep.any():
            return loss
        reverse, _ = self._pass(tgt, predicted[keep].float(), ref, ref_masks[keep])
        return (loss + reverse) / 2

    def train_step(self, source: EpisodeSource) -> float:
        """One optimizer step on ``batch_size`` fresh episodes; returns the mean loss."""
        c = self.config
        episodes = [
            sample_episode(source, self.rng, c.augment, c.max_objects, c.min_area)
            for _ in range(c.batch_size)
        ]
        loss = torch.stack([self.episode_loss(e) for e in episodes]).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return float(loss.detach())

    def save(self, out: str | Path) -> None:
        """Decoder in the released format at ``out``; optimizer & co. in the sidecar."""
        save_segic_weights(self.decoder, out)
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "config": asdict(self.config),
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }
        write_file(sidecar_path(out), lambda temp: torch.save(state, temp))

    def resume(self, out: str | Path) -> None:
        """Load the decoder from ``out`` and the optimizer/scheduler/step/random state from its
        sidecar."""
        side = sidecar_path(out)
        if not Path(out).is_file() or not side.is_file():
            raise RuntimeError(
                f"cannot resume: {out} and {side} must both exist (drop --resume to start over)"
            )
        load_segic_weights(self.decoder, out)
        state = torch.load(side, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])


def train_segic(
    trainer: Trainer, source: EpisodeSource, out: str | Path | None = None, resume: bool = False
) -> Generator[dict[str, Any], None, None]:
    """Run ``trainer.config.steps`` steps, yielding progress after each one.

    Yields:
        ``{"step", "steps", "loss", "lr", "elapsed", "eta"}`` (seconds). Closing the
        generator stops after the current step and saves a checkpoint when ``out`` is set.
    """
    c = trainer.config
    if resume and out is not None:
        trainer.resume(out)
    first, start = trainer.step, time.perf_counter()
    try:
        while trainer.step < c.steps:
            loss = trainer.train_step(source)
            if out is not None and (trainer.step % c.save_every == 0 or trainer.step == c.steps):
                trainer.save(out)
            elapsed = time.perf_counter() - start
            eta = elapsed / (trainer.step - first) * (c.steps - trainer.step)
            lr = trainer.optimizer.param_groups[0]["lr"]
            yield {
                "step": trainer.step,
                "steps": c.steps,
                "loss": loss,
                "lr": lr,
                "elapsed": elapsed,
                "eta": eta,
            }
    except GeneratorExit:
        if out is not None and trainer.step > first:
            trainer.save(out)
        raise
