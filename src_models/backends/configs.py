"""Every backend's options as a typed, frozen dataclass (no torch import here).

Build them only through :func:`src_models.config.build_config` (unknown keys and wrong types
are refused there). A field's range is declared once with :func:`~src_models.config.ranged`
and checked by ``__post_init__`` (:func:`~src_models.config.check_ranges`; checks across fields
are written out there); the widget's spin boxes and the option tables show it. The docstring's
``Attributes:`` lines are the help text of ``napari-incontext backends --options NAME`` and of
the widget's forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from src_models.channels import parse_channels
from src_models.config import check_range, check_ranges, ranged

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
DinoSize = Literal["vits14", "vitb14", "vitl14", "vitg14"]
SamModel = Literal["vit_b", "vit_l", "vit_h"]


@dataclass(frozen=True)
class TilingOption:
    """The options of every backend for images larger than it works on (:mod:`src_models.tiling`).

    Attributes:
        tile_size: an image with a side longer than this is processed in overlapping tiles of
            this side, blended (none = the backend's default: classic 2048, the model
            backends 4 × their input size).
        tile_overlap: overlap of neighbouring tiles in pixels, below tile_size / 2 (none =
            tile_size / 8).
    """

    tile_size: int | None = ranged(None, low=16)
    tile_overlap: int | None = ranged(None, low=0)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.tile_size is not None and self.tile_overlap is not None:
            check_range("tile_overlap", self.tile_overlap, 0, (self.tile_size - 1) // 2)


@dataclass(frozen=True)
class ClassicConfig(TilingOption):
    """Hyperparameters of the classic backend.

    Attributes:
        features: "ilastik" (Gaussian, LoG, gradient, DoG, structure-tensor and Hessian
            eigenvalues at ilastik's scales, :mod:`~src_models.backends.classic_features`;
            RGB in Lab) or "basic" (scikit-image's ``multiscale_basic_features``, the
            pre-0.x default).
        sigma_min: smallest Gaussian scale of the filter bank (pixels).
        sigma_max: largest Gaussian scale of the filter bank (pixels).
        texture: add Hessian-eigenvalue texture features ("basic" only; "ilastik" always has
            them).
        position: add normalised (y, x) coordinates as features; helps stacks whose object
            stays in place (MRI, EM sections), hurts sets of unrelated images. None = decide
            from the examples (:mod:`~src_models.backends.classic_auto`).
        per_slice: standardise every slice (zero mean, unit variance per channel) before the
            filters; for stacks whose brightness drifts between slices (serial-section EM)
            and sets of unrelated images. None = decide from the data.
        balance: weigh the sampled pixels so that every class of an example weighs the same
            (a small object is not drowned by the background), the boost capped at
            ``max_boost``; False = every sampled pixel weighs the same. Dense examples only
            (scribbled ones are never balanced).
        max_boost: largest weight of one pixel of a small class relative to one of the
            example's largest class.
        n_estimators: number of trees of the random forest (of each stage's, see ``context``).
        max_depth: depth limit of each tree (none = unlimited).
        min_samples_leaf: smallest leaf of each tree.
        samples_per_class: at most this many training pixels per label id.
        smooth_sigma: Gaussian smoothing of class probabilities before the argmax (0 = none).
        context: auto-context stages (ilastik's "autocontext"): this many further forests,
            each reading the features plus the previous forest's class probabilities smoothed
            at σ 1–8, trained on out-of-fold probabilities of the examples
            (:mod:`~src_models.backends.classic_context`); 0 = one forest; skipped when
            the examples hold fewer than 32² painted pixels in all. A stage predicts every
            other pixel of both axes, bilinear between (its probabilities reach the next
            forest smoothed), so each adds about a quarter of one forest's time per slice.
        prior: exponent α of the correction of the last forest's probabilities towards the
            examples' class shares (multiplied by (painted share / trained share)**α): 0 keeps
            the balanced training's bias for small classes, 1 removes it. None = decide from
            the examples' out-of-fold probabilities (needs the context stage; 0 without it).
            Dense examples only.
        seed: random seed of the sampling and the forest.
    """

    features: Literal["ilastik", "basic"] = "ilastik"
    sigma_min: float = ranged(0.7, positive=True)
    sigma_max: float = ranged(10.0, low="sigma_min")
    texture: bool = True
    position: bool | None = None
    per_slice: bool | None = None
    balance: bool = True
    max_boost: float = ranged(20.0, low=1)
    n_estimators: int = ranged(16, low=1, high=10_000)
    max_depth: int | None = ranged(16, positive=True)
    min_samples_leaf: int = ranged(2, low=1)
    samples_per_class: int = ranged(20_000, low=1)
    smooth_sigma: float = ranged(1.0, low=0)
    context: int = ranged(1, low=0, high=3)
    prior: float | None = ranged(None, low=0, high=1)
    seed: int = 0


@dataclass(frozen=True)
class ChannelsOption(TilingOption):
    """The options of every backend with a 3-channel backbone: channels
    (:mod:`src_models.channels`) and batching (:mod:`src_models.batching`).

    Attributes:
        channels: three channel indices shown to the backbone as RGB, e.g. 0,1,2 (none = the
            rule: one channel repeated; two → c0, c1 and their mean; three or more → the
            first three).
        batch_size: slices per backbone forward, 1 to 256; the next batch's slices are read
            in the background meanwhile (none = 8 on a CUDA GPU, 1 on CPU and MPS).
    """

    channels: str | None = None
    batch_size: int | None = ranged(None, low=1, high=256)

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_channels(self.channels)

    @property
    def chosen_channels(self) -> tuple[int, ...] | None:
        """The ``channels`` option parsed (None = the default rule)."""
        return parse_channels(self.channels)


@dataclass(frozen=True)
class Dinov2Config(ChannelsOption):
    """Hyperparameters of the dinov2 backend.

    Attributes:
        backbone: DINOv2 size: vits14 (default), vitb14, vitl14 or vitg14.
        input_size: longest side fed to the ViT (518 = the native 37×37 grid).
        dtype: auto (bf16 on CPUs with AMX/AVX512-BF16 and on CUDA), float32, bfloat16.
        proto_weight: share of the prototype cosine in a class score (rest: top-k neighbours).
        topk: neighbours averaged per class.
        temperature: softmax temperature turning scores into probabilities, as a fraction of
            the spread (std) of the slice's scores.
        refine: snap the upsampled probabilities to image edges with a guided filter.
        refine_eps: guided-filter regulariser.
    """

    backbone: DinoSize = "vits14"
    input_size: int = ranged(518, low=14, high=4096)
    dtype: Dtype = "auto"
    proto_weight: float = ranged(0.2, low=0, high=1)
    topk: int = ranged(1, low=1)
    temperature: float = ranged(0.25, positive=True)
    refine: bool = True
    refine_eps: float = ranged(1e-3, positive=True)


@dataclass(frozen=True)
class DinoSamConfig(ChannelsOption):
    """Hyperparameters of dinov2-sam.

    Attributes:
        correspondence: dinov2 (DINOv2 prior) or sam (SAM-feature prior = PerSAM).
        backbone: DINOv2 size (vits14, vitb14, vitl14, vitg14).
        input_size: longest side fed to DINOv2.
        sam_model: SAM architecture: vit_b, vit_l or vit_h.
        dtype: encoders' dtype: auto (bf16 on CUDA and on CPUs with native bf16), float32 or
            bfloat16; the SAM decoder always runs in float32.
        proto_weight: DINOv2 matching: share of the prototype cosine in a class score.
        topk: DINOv2 matching: neighbours averaged per class.
        presence_check: with DINOv2, skip an object no patch prefers over the other classes.
        guided_attention: PerSAM's target-guided attention.
        attention_bias: frame of that attention bias: official (the similarity map stretched
            over the whole embedding grid, as persam.py) or aligned (resized and padded like
            the image, so each bias lands on its cell; differs on non-square images).
        semantic_prompt: PerSAM's target-semantic prompting.
        negative_point: add PerSAM's negative point.
        refine_steps: cascaded refinement steps after the first decoding (0, 1 or 2).
        persam_f: fit PerSAM-F's two mask weights on the examples (per object).
        persam_f_iterations: PerSAM-F training steps.
        persam_f_max_side: longest side of the logits/masks PerSAM-F trains on (none = full
            resolution as the official code; 256 keeps 1000 CPU steps to seconds).
        disk_cache: also keep SAM embeddings on disk.
        disk_cache_dir: root of that disk cache, which lives in its sam_embeddings subfolder
            (none = the user cache directory).
        disk_cache_gb: size cap of that disk cache in GB.
    """

    correspondence: Literal["dinov2", "sam"] = "dinov2"
    backbone: DinoSize = "vits14"
    input_size: int = ranged(518, low=14, high=4096)
    sam_model: SamModel = "vit_b"
    dtype: Dtype = "auto"
    proto_weight: float = ranged(0.2, low=0, high=1)
    topk: int = ranged(1, low=1)
    presence_check: bool = True
    guided_attention: bool = True
    attention_bias: Literal["official", "aligned"] = "official"
    semantic_prompt: bool = True
    negative_point: bool = True
    refine_steps: int = ranged(2, low=0, high=2)
    persam_f: bool = False
    persam_f_iterations: int = ranged(1000, low=1)
    persam_f_max_side: int | None = ranged(256, positive=True)
    disk_cache: bool = False
    disk_cache_dir: str | None = None
    disk_cache_gb: float = ranged(2.0, positive=True)


SEGIC_CHECKPOINTS: tuple[str, ...] = ("segic_dinov2_l_80kx12e", "segic_dinov2_l_160kx12e")


@dataclass(frozen=True)
class SegicConfig(ChannelsOption):
    """Options of the dinov2-segic backend.

    Attributes:
        backbone: DINOv2 size; the released checkpoints need vitl14.
        checkpoint: which released decoder to look up when no head_weights path is given
            (none: the first of segic_dinov2_l_80kx12e, segic_dinov2_l_160kx12e found here).
        input_size: padded input side, a multiple of 28 (896 = the training setting).
        dtype: backbone dtype: auto, float32 or bfloat16 (the decoder stays float32).
        text_embedding: file from `napari-incontext segic-text`, used on every slice; none =
            the official CLIP embeddings of '' (images) and 'please segment the instances'
            (stacks), cached by `weights download clip_vit_l14_text`.
        no_text: when those are not available, zero feeds a zero 768-vector (token = the
            projection bias) and omit leaves the text token out; accuracy then differs.
        max_examples: example slices used per object (evenly spaced when there are more).
        video: on stacks, follow SEGIC's video path (forward_vos): each slice is decoded with
            the examples' prototype plus the prototype of the neighbouring slice's proposal,
            the other objects' points as negative points and the instance text; off =
            every slice is decoded like an image.
    """

    backbone: DinoSize = "vitl14"
    checkpoint: Literal["segic_dinov2_l_80kx12e", "segic_dinov2_l_160kx12e"] | None = None
    input_size: int = ranged(896, low=28, high=4096)
    dtype: Dtype = "auto"
    text_embedding: str | None = None
    no_text: Literal["zero", "omit"] = "zero"
    max_examples: int = ranged(8, low=1)
    video: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_size % 28:
            raise ValueError(f"option input_size={self.input_size} must be a multiple of 28")


Insid3Backbone = Literal[
    "dinov3_vits16",
    "dinov3_vitb16",
    "dinov3_vitl16",
    "dinov2_vits14",
    "dinov2_vitb14",
    "dinov2_vitl14",
    "dinov2_vitg14",
]


@dataclass(frozen=True)
class Insid3Config(ChannelsOption):
    """Options of the INSID3 backends.

    Attributes:
        backbone: dinov3_vits16 (default; also vitb16, vitl16) or a DINOv2 fallback
            dinov2_vits14 / vitb14 / vitl14 / vitg14.
        input_size: longest side fed to the ViT (aspect ratio kept, rounded to the patch);
            none = DINOv3: 512 on a CPU, 1024 (the paper's) on CUDA; DINOv2: 518.
        dtype: auto (bf16 on CPUs with AMX/AVX512-BF16 and on CUDA), float32, bfloat16.
        debias_components: positional components removed; none = the official 500 (on a
            backbone no wider than 500, e.g. ViT-S, 500/1024 of the width: the official 500
            would remove every channel).
        debias_scaled: with debias_components none, scale the 500 to 500/1024 of the width
            on every backbone (ViT-B: 375; the project's earlier default) instead.
        tau: clustering similarity threshold (clusters stop merging at distance 1 − tau).
        merge_threshold: keep clusters whose cross × intra × area score exceeds this.
        forward_quantile: forward candidates when no target patch is positive: the patches
            above this quantile.
        negative_filter: drop clusters closer to the negative prototype than to the object's
            (a project addition; off = the official aggregation).
        temperature: width of the sigmoid turning a cluster score into a probability.
        refine: snap the upsampled mask to image edges with the guided filter (off = the
            official bilinear upsampling of the 0/1 patch mask, > 0.5).
        refine_eps: guided-filter regulariser.
    """

    backbone: Insid3Backbone = "dinov3_vits16"
    input_size: int | None = ranged(None, low=14, high=4096)
    dtype: Dtype = "auto"
    debias_components: int | None = ranged(None, low=0)
    debias_scaled: bool = False
    tau: float = ranged(0.6, low=0, high=1)
    merge_threshold: float = 0.2
    forward_quantile: float = ranged(0.9, low=0, high=1)
    negative_filter: bool = True
    temperature: float = ranged(0.05, positive=True)
    refine: bool = True
    refine_eps: float = ranged(1e-3, positive=True)

    @property
    def family(self) -> str:
        """``dinov3`` or ``dinov2``."""
        return self.backbone.split("_")[0]


@dataclass(frozen=True)
class Dinov2Insid3Config(Insid3Config):
    """Options of dinov2-insid3: the INSID3 head on DINOv2 (ungated weights).

    Attributes:
        backbone: dinov2_vits14 (default), dinov2_vitb14 / vitl14 / vitg14, or a DINOv3
            backbone dinov3_vits16 / vitb16 / vitl16.
    """

    backbone: Insid3Backbone = "dinov2_vits14"


@dataclass(frozen=True)
class SamRefineConfig:
    """SAM refinement of any backend's proposals (options prefixed ``sam_refine``).

    Attributes:
        model: SAM architecture (vit_b, vit_l, vit_h); set with `sam_refine=vit_b`.
        dtype: SAM encoder dtype (auto = bf16 where the hardware has it).
        use_box: prompt with the bounding box of each object's proposal.
        use_mask: prompt with the proposal itself as low-res mask logits.
        multimask: ask SAM for three masks and keep the best-scored one.
        min_pixels: objects with fewer proposed pixels are left as proposed.
        keep_empty: when SAM returns an empty mask, keep the proposal for that object.
    """

    model: SamModel = "vit_b"
    dtype: Dtype = "auto"
    use_box: bool = True
    use_mask: bool = True
    multimask: bool = False
    min_pixels: int = ranged(4, low=0)
    keep_empty: bool = True

    def __post_init__(self) -> None:
        check_ranges(self)
        if not (self.use_box or self.use_mask):
            raise ValueError("SAM refinement needs a prompt: set use_box or use_mask (or both)")
