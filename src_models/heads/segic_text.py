"""SEGIC meta instructions: CLIP text embeddings, precomputed once and stored in a small file.

SEGIC encodes a text with CLIP ViT-L/14's text tower (``pooler_output``, 768 floats) and
projects it into one decoder token. The official texts are ``"a photo of a {class}"``, ``""``
without a class, and ``"please segment the instances"`` in instance mode. ``transformers``
is not a dependency of this package: :func:`compute_text_embedding` imports it lazily and
says what to install when it is missing. At run time only the saved vector is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import torch

from src_models.atomic import write_file

CLIP_MODEL = "openai/clip-vit-large-patch14"
CLIP_WEIGHTS = "clip_vit_l14_text"  # its weights-manager name
TEXT_DIM = 768
CLASS_TEMPLATE = "a photo of a {}"
INSTANCE_TEXT = "please segment the instances"
IMAGE_TEXT = ""
CLIP_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
)
NO_TEXT_HINT = (
    "the official SEGIC feeds CLIP text embeddings ('' for images, 'please segment the "
    "instances' for stacks); without them its accuracy will differ. Run `napari-incontext "
    "weights download clip_vit_l14_text` once (needs internet and `pip install "
    "transformers`), or give --option text_embedding=FILE (from `napari-incontext segic-text`)"
)


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
    # as the official get_prompt_features: padded to CLIP's 77 tokens, truncated
    tokens = tokenizer(
        [text],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
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


def default_embedding_path(text: str, model: str = CLIP_MODEL) -> Path:
    """Where the embedding of ``text`` is cached: ``<user cache>/segic_text/<digest>.pt``."""
    from src_models.weights import cache_dir

    digest = hashlib.blake2b(f"{model}\0{text}".encode(), digest_size=8).hexdigest()
    return cache_dir().parent / "segic_text" / f"{digest}.pt"


def default_text_embedding(text: str, model: str = CLIP_MODEL) -> torch.Tensor | None:
    """The CLIP embedding of ``text``: from the cache, else computed once from the locally
    downloaded CLIP (``weights download clip_vit_l14_text``) and cached; None when neither
    is possible (then see :data:`NO_TEXT_HINT`)."""
    path = default_embedding_path(text, model)
    if path.is_file():
        try:
            return load_text_embedding(path)
        except RuntimeError:
            pass  # a damaged cache entry is recomputed
    try:
        embedding = compute_text_embedding(text, model, local_files_only=True)
    except RuntimeError:
        return None
    with contextlib.suppress(OSError):  # a read-only cache only costs a recomputation
        write_file(path, lambda tmp: save_text_embedding(tmp, embedding, text, model))
    return embedding


def download_clip(model: str = CLIP_MODEL) -> Path:
    """Fetch the CLIP files SEGIC's text encoder needs into the Hugging Face cache, then
    compute and cache the two default embeddings (needs ``transformers``).

    Returns:
        the cache path of the image-mode ('') embedding.

    Raises:
        RuntimeError: no network, or ``transformers`` missing (the files stay downloaded).
    """
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(model, allow_patterns=list(CLIP_FILES))
    except Exception as error:  # network and hub errors all mean "could not fetch"
        raise RuntimeError(
            f"could not download {model} ({type(error).__name__}: {str(error)[:160]}); "
            "check the network"
        ) from error
    for text in (IMAGE_TEXT, INSTANCE_TEXT):
        if default_text_embedding(text, model) is None:
            compute_text_embedding(text, model, local_files_only=True)  # raises the reason
    return default_embedding_path(IMAGE_TEXT, model)
