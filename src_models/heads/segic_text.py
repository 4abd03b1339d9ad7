"""SEGIC meta instructions: CLIP text embeddings, precomputed once and stored in a small file.

SEGIC encodes a text with CLIP ViT-L/14's text tower (``pooler_output``, 768 floats) and
projects it into one decoder token. The official texts are ``"a photo of a {class}"``, ``""``
without a class, and ``"please segment the instances"`` in instance mode. ``transformers``
is not a dependency of this package: :func:`compute_text_embedding` imports it lazily and
says what to install when it is missing. At run time only the saved vector is needed.
"""

from __future__ import annotations

from pathlib import Path

import torch

CLIP_MODEL = "openai/clip-vit-large-patch14"
TEXT_DIM = 768
CLASS_TEMPLATE = "a photo of a {}"
INSTANCE_TEXT = "please segment the instances"


def compute_text_embedding(
    text: str, model: str = CLIP_MODEL, local_files_only: bool = False
) -> torch.Tensor:
    """CLIP text ``pooler_output`` of ``text``: (768,) float32.

    Raises:
        RuntimeError: transformers is not installed, or the CLIP weights cannot be found.
    """
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as error:
        raise RuntimeError(
            "computing a SEGIC text embedding needs the `transformers` package "
            "(pip install transformers) and the CLIP weights "
            f"{model}; or run without text (the empty-text path, see docs/backends/dinov2-segic.md)"
        ) from error
    try:
        tokenizer = CLIPTokenizer.from_pretrained(model, local_files_only=local_files_only)
        encoder = CLIPTextModel.from_pretrained(model, local_files_only=local_files_only).eval()
    except OSError as error:
        raise RuntimeError(
            f"CLIP text weights {model!r} not found ({str(error).splitlines()[0][:160]}): "
            "download them once with internet access (they go to the Hugging Face cache), "
            "or pass a local folder with --model"
        ) from error
    tokens = tokenizer([text], padding=True, return_tensors="pt")
    with torch.inference_mode():
        pooled = encoder(**tokens).pooler_output[0].float()
    return pooled.clone()


def save_text_embedding(
    path: str | Path, embedding: torch.Tensor, text: str, model: str = CLIP_MODEL
) -> Path:
    """Write ``{"embedding": (768,) float32, "text": str, "model": str}`` with torch.save."""
    if embedding.shape != (TEXT_DIM,):
        raise ValueError(
            f"a SEGIC text embedding has shape ({TEXT_DIM},), got {tuple(embedding.shape)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"embedding": embedding.float().cpu(), "text": text, "model": model}, path)
    return path


def load_text_embedding(path: str | Path) -> torch.Tensor:
    """Read a file written by :func:`save_text_embedding` (or a bare (768,) tensor)."""
    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as error:
        raise RuntimeError(f"cannot read SEGIC text embedding {path}: {error}") from error
    embedding = data.get("embedding") if isinstance(data, dict) else data
    if not isinstance(embedding, torch.Tensor) or embedding.reshape(-1).shape != (TEXT_DIM,):
        raise RuntimeError(
            f"{path} does not hold a ({TEXT_DIM},) CLIP text embedding; create one with "
            '`napari-incontext segic-text "a photo of a cell" --out emb.pt`'
        )
    return embedding.reshape(-1).float()
