"""INSID3 head, DINOv3 backbone loading and the dinov3-insid3 / dinov2-insid3 backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src_models.backbones.dinov3 import build_dinov3, create_dinov3, has_qkv_bias
from src_models.backends.insid3 import PositionalDebias
from src_models.engine import propagate
from src_models.heads import insid3 as head
from src_models.heads import insid3_debias as debiasing
from src_models.registry import BACKENDS, build_backend
from src_models.timing import Timer
from src_models.types import Example


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def basis_vectors(dim: int, n: int, seed: int = 0) -> np.ndarray:
    """(n, dim) orthonormal rows."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, n)))
    return q.T.astype(np.float32)


# ---- positional debias ---------------------------------------------------------------


def test_debias_removes_planted_positional_component() -> None:
    dim, grid = 64, (12, 12)
    v = basis_vectors(dim, 5)  # v[0]: constant content of the blank image, v[1:4]: positional
    yy, xx = np.mgrid[: grid[0], : grid[1]] / 11.0
    field = np.stack([np.sin(3 * xx), np.cos(2 * yy), xx * yy], -1) @ v[1:4]  # (h, w, D)
    basis, _ = debiasing.positional_basis(unit(v[0] + field))
    rng = np.random.default_rng(1)
    a = unit(rng.standard_normal((*grid, dim)) * 0.15 + 2 * field)
    b = unit(rng.standard_normal((*grid, dim)) * 0.15 + 2 * field)
    a_deb, b_deb = debiasing.debias(a, basis, 4), debiasing.debias(b, basis, 4)

    assert np.abs(a_deb @ v[1:4].T).max() < 1e-4  # the planted directions are gone
    same_pos_before = float((a * b).sum(-1).mean())
    same_pos_after = float((a_deb * b_deb).sum(-1).mean())
    assert same_pos_before > 0.5  # unrelated images match at equal positions ...
    assert abs(same_pos_after) < 0.1  # ... until the positional subspace is removed
    assert np.allclose(np.linalg.norm(a_deb, axis=-1), 1, atol=1e-5)


def test_debias_component_count_is_clamped() -> None:
    tokens = unit(np.random.default_rng(0).standard_normal((3, 3, 16)))
    basis, values = debiasing.positional_basis(tokens)
    assert basis.shape == (16, 8) and values.shape == (8,)  # rank ≤ h·w − 1
    assert debiasing.debias(tokens, basis, 500).shape == tokens.shape
    assert debiasing.default_components(1024) == 500 and debiasing.default_components(384) == 188


# ---- clustering, seed, aggregation ----------------------------------------------------


def regions_map(grid: tuple[int, int] = (10, 10)) -> np.ndarray:
    """(h, w) region ids: 0 background, 1 part A, 2 part B beside A, 3 region C."""
    reg = np.zeros(grid, np.int64)
    reg[1:5, 1:5], reg[5:9, 1:5], reg[1:5, 6:9] = 1, 2, 3
    return reg


def synthetic_target(noise: float = 0.01) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Tokens whose regions point at known directions: cos(A,B)=0.5, cos(A,C)=0.3, bg ⟂ all."""
    e = np.eye(16, dtype=np.float32)
    dirs = {
        "bg": e[3],
        "A": e[0],
        "B": 0.5 * e[0] + np.sqrt(0.75) * e[1],
        "C": 0.3 * e[0] + np.sqrt(0.91) * e[2],
    }
    reg = regions_map()
    table = np.stack([dirs["bg"], dirs["A"], dirs["B"], dirs["C"]])
    tokens = table[reg] + noise * np.random.default_rng(0).standard_normal((*reg.shape, 16))
    return unit(tokens), reg, dirs


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def test_clustering_recovers_regions_and_tau_sets_granularity() -> None:
    tokens, reg, _ = synthetic_target()
    assert same_partition(head.cluster_patches(tokens, tau=0.6), reg)
    coarse = head.cluster_patches(tokens, tau=0.45)  # distance 0.55 merges A with B (cos 0.5)
    assert (
        len(np.unique(coarse)) == 3
        and len(np.unique(coarse[reg == 1].tolist() + coarse[reg == 2].tolist())) == 1
    )


def test_seed_and_aggregation_known_answer() -> None:
    target, reg, dirs = synthetic_target()
    ref = unit(
        np.stack([dirs["bg"], dirs["A"]])[(regions_map() == 1).astype(int)]
    )  # A on background
    mask = regions_map() == 1
    reference = head.make_reference([ref], [mask], [ref[~mask]])
    labels = head.cluster_patches(target)

    cand = head.candidates(target, [ref], [mask], reference.proto)
    assert (
        cand[reg == 1].all()
        and cand[reg == 2].all()
        and cand[reg == 3].all()
        and not cand[reg == 0].any()
    )
    seed = head.select_seed(labels, cand, head.cluster_prototypes(target, labels), reference.proto)
    assert np.all(labels[reg == 1] == seed)

    scores = head.cluster_scores(labels, cand, seed, target, target, reference.proto)
    by_region = {r: float(scores[labels[reg == r][0]]) for r in range(4)}
    assert by_region[1] == pytest.approx(1.0, abs=0.02)
    assert by_region[2] == pytest.approx(0.25, abs=0.02)  # cross 0.5 × intra 0.5: merged
    assert by_region[3] == pytest.approx(0.09, abs=0.02)  # cross 0.3 × intra 0.3: dropped
    assert by_region[0] == pytest.approx(0.0, abs=0.01)  # no candidate patch

    prob = head.segment_clusters(reference, target, target, labels)[labels]
    assert np.array_equal(prob > 0.5, (reg == 1) | (reg == 2))


def test_negative_filter_drops_clusters_closer_to_the_negatives() -> None:
    target, reg, dirs = synthetic_target()
    mask = regions_map() == 1
    ref = unit(np.where(mask[..., None], dirs["A"], dirs["bg"]))
    labels = head.cluster_patches(target)
    negative_like_b = head.Reference([ref], [mask], dirs["A"], dirs["B"])
    kept = (
        head.segment_clusters(negative_like_b, target, target, labels, head.Insid3Params())[labels]
        > 0.5
    )
    assert kept[reg == 1].all() and not kept[reg == 2].any()
    off = head.segment_clusters(
        negative_like_b, target, target, labels, head.Insid3Params(negative_filter=False)
    )
    assert (off[labels] > 0.5)[reg == 2].all()


def test_object_absent_from_target_gives_empty_mask() -> None:
    target, _, dirs = synthetic_target()
    e = np.eye(16, dtype=np.float32)
    ref = np.stack([dirs["bg"], dirs["A"], dirs["B"], dirs["C"], e[5]])[None]  # (1, 5, D)
    mask = np.array([[False, False, False, False, True]])  # the object (e5) is not in the target
    reference = head.make_reference([ref], [mask], [ref[~mask]])
    labels = head.cluster_patches(target)
    probs, votes = head.segment_object(reference, target, target, labels)
    assert not votes.any() and not probs.any()


# ---- K-shot voting ---------------------------------------------------------------------


def test_backward_majority_vote_over_shots() -> None:
    e = np.eye(4, dtype=np.float32)
    target = e[None, :2]  # (1, 2, D): patches along e0 and e1
    refs = [e[None, :2]] * 3
    masks = [np.array([[True, True]]), np.array([[True, False]]), np.array([[False, False]])]
    votes = head.backward_votes(target, refs, masks)
    assert votes.tolist() == [[2, 1]]
    proto = unit(e[0] + e[1])
    assert head.candidates(target, refs, masks, proto).tolist() == [
        [True, False]
    ]  # needs ≥ ⌈3/2⌉ = 2
    assert head.candidates(target, refs[:2], masks[:2], proto).tolist() == [
        [True, True]
    ]  # ≥ 1 of 2


def test_prototype_averages_shot_means() -> None:
    e = np.eye(3, dtype=np.float32)
    shots = [np.stack([e[0], e[0], e[2]])[None], np.stack([e[1], e[2], e[2]])[None]]
    masks = [np.array([[True, True, False]]), np.array([[True, False, False]])]
    assert np.allclose(head.prototype(shots, masks), unit(e[0] + e[1]), atol=1e-6)


# ---- end to end on random weights ------------------------------------------------------


def scene(size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured (Y, X) float32 image with a bright disk (id 1) and a dark square (id 2).

    Random-weight ViT tokens describe local texture and contrast, not objects, so the two
    objects differ in appearance and are large enough to have interior patches.
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    one = (yy - 0.35) ** 2 + (xx - 0.33) ** 2 < 0.22**2
    two = (np.abs(yy - 0.72) < 0.17) & (np.abs(xx - 0.72) < 0.17)
    image = 0.45 + 0.04 * ndi.gaussian_filter(rng.standard_normal((size, size)), 2)
    image = image + 0.4 * one - 0.35 * two + 0.02 * rng.standard_normal((size, size))
    return image.astype(np.float32), (one + 2 * two).astype(np.int32)


@pytest.fixture
def scene_stack() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slices: 0 example, 1 identical, 2 shifted by (9, −7) px, 3 flipped left-right."""
    image, labels = scene()

    def shift(a: np.ndarray) -> np.ndarray:
        return np.roll(a, (9, -7), (0, 1))

    stack = np.stack([image, image, shift(image), image[:, ::-1]])
    truth = np.stack([labels, labels, shift(labels), labels[:, ::-1]])
    examples = np.zeros_like(truth)
    examples[0] = labels
    return stack, examples, truth


@pytest.mark.parametrize("name,size", [("dinov3-insid3", 128), ("dinov2-insid3", 126)])
def test_geometric_identity_end_to_end(name: str, size: int, scene_stack: tuple) -> None:
    stack, examples, truth = scene_stack
    torch.manual_seed(0)
    backend = build_backend(name, device="cpu", weights="random", input_size=size, dtype="float32")
    results = {r.index: r for r in propagate(stack, examples, backend)}
    for k in (1, 2):  # each id separately; the two objects never swap
        assert iou(results[1].labels == k, truth[1] == k) >= 0.9  # identical
        assert iou(results[3].labels == k, truth[3] == k) >= 0.9  # flipped
        # a half-patch shift moves every object boundary inside its patches
        assert iou(results[2].labels == k, truth[2] == k) >= 0.8
    assert results[1].timings["cached"] and "backbone" in results[2].timings  # slice 1 = slice 0
    assert {"debias", "clustering", "matching", "refine"} <= set(results[2].timings)
    assert results[1].confidence.min() >= 0 and results[1].confidence.max() <= 1


def test_k_shot_end_to_end(scene_stack: tuple) -> None:
    stack, _, truth = scene_stack
    examples = np.zeros_like(truth)
    examples[[0, 2]] = truth[[0, 2]]
    torch.manual_seed(0)
    backend = build_backend(
        "dinov3-insid3", device="cpu", weights="random", input_size=128, dtype="float32"
    )
    results = {r.index: r for r in propagate(stack, examples, backend)}
    assert [len(r.tokens) for r in backend._refs] == [2, 2]  # both slices are shots of each id
    for k in (1, 2):  # the shifted shot blurs the prototype a little
        assert iou(results[1].labels == k, truth[1] == k) >= 0.85
        assert iou(results[3].labels == k, truth[3] == k) >= 0.85


# ---- official checkpoints, registry, offline errors -------------------------------------


def official_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The DINOv3 repository's key names for a timm DINOv3 model (test fixture)."""
    out: dict[str, torch.Tensor] = {}
    dim = model.embed_dim
    for key, value in model.state_dict().items():
        if key.endswith(("q_bias", "v_bias")):
            continue
        key = key.replace("reg_token", "storage_tokens").replace("gamma_1", "ls1.gamma")
        out[key.replace("gamma_2", "ls2.gamma")] = value.clone()
        if key.endswith("attn.qkv.weight"):
            attn = model.blocks[int(key.split(".")[1])].attn
            bias = torch.full((3 * dim,), 3.0)  # the k third is masked out by the model
            bias[:dim] = 0.0 if attn.q_bias is None else attn.q_bias
            bias[2 * dim :] = 0.0 if attn.v_bias is None else attn.v_bias
            out[key[:-6] + "bias"] = bias
            out[key[:-6] + "bias_mask"] = torch.cat(
                [torch.ones(dim), torch.zeros(dim), torch.ones(dim)]
            )
    out["mask_token"] = torch.zeros(1, dim)
    out["rope_embed.periods"] = torch.ones(dim // 6 // 4)
    return out


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    reference = create_dinov3("vits16").eval()
    path = tmp_path_factory.mktemp("w") / "dinov3_vits16_test.pth"
    torch.save(official_layout(reference), path)
    return path, reference


def test_official_checkpoint_converts_exactly(official_checkpoint: tuple) -> None:
    path, reference = official_checkpoint
    model = build_dinov3("vits16", path)
    x = torch.randn(1, 3, 48, 64)
    assert torch.equal(model.forward_features(x), reference.forward_features(x))


def test_nonzero_qkv_bias_selects_qkvb_arch(tmp_path: Path) -> None:
    reference = create_dinov3("vits16", qkv_bias=True).eval()
    for block in reference.blocks:
        block.attn.q_bias.data.normal_()
        block.attn.v_bias.data.normal_()
    state = official_layout(reference)
    assert has_qkv_bias(state)
    torch.save(state, tmp_path / "b.pth")
    model = build_dinov3("vits16", tmp_path / "b.pth")
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(model.forward_features(x), reference.forward_features(x), atol=1e-5)


def test_timm_safetensors_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    reference = create_dinov3("vits16").eval()
    save_file(reference.state_dict(), str(tmp_path / "model.safetensors"))
    model = build_dinov3("vits16", tmp_path / "model.safetensors")
    x = torch.randn(1, 3, 32, 48)
    assert torch.equal(model.forward_features(x), reference.forward_features(x))


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from src_models import weights

    monkeypatch.setenv(weights.ENV_DIR, str(tmp_path / "env"))
    monkeypatch.setattr(weights, "cache_dir", lambda: tmp_path / "cache" / "weights")
    monkeypatch.setattr(weights, "_hf_cached", lambda spec: None)
    return tmp_path


def test_registry_entries_and_offline_error(no_weights: Path) -> None:
    assert {"dinov3-insid3", "dinov2-insid3"} <= set(BACKENDS)
    assert not BACKENDS["dinov3-insid3"].weights_available()
    with pytest.raises(RuntimeError) as error:
        build_backend("dinov3-insid3", device="cpu")
    message = str(error.value)
    assert "request access" in message and "dinov3_vits16_pretrain_lvd1689m-08c60483.pth" in message
    assert str(no_weights / "env") in message or "NAPARI_INCONTEXT_WEIGHTS" in message
    with pytest.raises(RuntimeError, match="dinov2_vits14"):
        build_backend("dinov2-insid3", device="cpu")
    assert (
        build_backend("dinov2-insid3", device="cpu", weights="random", input_size=56).name
        == "dinov2-insid3"
    )
    with pytest.raises(ValueError, match="input_size"):
        build_backend("dinov3-insid3", weights="random", inputsize=512)
    with pytest.raises(ValueError, match="dinov3_vits16"):
        build_backend("dinov3-insid3", weights="random", backbone="dinov3_vitx16")


def test_positional_basis_cached_on_disk(
    official_checkpoint: tuple, no_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = official_checkpoint
    image = np.random.default_rng(0).random((64, 48, 1), dtype=np.float32)
    first = build_backend(
        "dinov3-insid3", device="cpu", weights=path, input_size=64, dtype="float32"
    )
    timer = Timer()
    first.compute_features(image, timer)
    assert "debias_basis" in timer.seconds and "backbone" in timer.seconds
    stored = list((no_weights / "cache" / "insid3_debias").glob("*.npy"))
    assert len(stored) == 1

    def no_forward(self: PositionalDebias, grid: tuple[int, int]) -> np.ndarray:
        raise AssertionError("the basis should come from disk")

    monkeypatch.setattr(PositionalDebias, "constant_tokens", no_forward)
    second = build_backend(
        "dinov3-insid3", device="cpu", weights=path, input_size=64, dtype="float32"
    )
    tokens = second.compute_features(image).tokens
    assert np.array_equal(second.debiaser.basis(tokens.shape[:2]), np.load(stored[0]))


def test_predict_before_fit_and_empty_examples_fail() -> None:
    backend = build_backend(
        "dinov3-insid3", device="cpu", weights="random", input_size=32, dtype="float32"
    )
    features = backend.compute_features(np.zeros((32, 32, 1), np.float32))
    with pytest.raises(RuntimeError, match="fit"):
        backend.predict(features, (32, 32))
    with pytest.raises(ValueError, match="object"):
        backend.fit([Example(0, features, np.zeros((32, 32), np.int32))])
