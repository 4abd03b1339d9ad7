"""Everything that reads or writes napari layers: names, proposals, undoable accepts.

Two modes share one interface, :class:`Workspace`:

* stack: one image layer (N, Y, X[, C]) and one labels layer (N, Y, X); proposals go to a
  labels layer named :data:`PROPOSALS` of the same shape.
* image set: a 2D example image layer and its 2D labels layer; every other 2D image layer
  of the viewer is a target. Target ``name`` gets its proposals in ``"proposals [name]"``
  and its accepted labels in ``"labels [name]"`` (created on the first accept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

PROPOSALS = "proposals"
SET_PROPOSALS = "proposals [{}]"
SET_LABELS = "labels [{}]"


def is_generated(name: str) -> bool:
    """True for the layers this plugin creates for proposals."""
    return name == PROPOSALS or name.startswith(SET_PROPOSALS.split("{")[0])


def spatial_ndim(layer: Image) -> int:
    """Number of non-channel dimensions of an image layer (RGB(A) drops the last axis)."""
    return layer.data.ndim - (1 if layer.rgb else 0)


def image_layers(viewer: napari.Viewer) -> list[Image]:
    from napari.layers import Image

    return [layer for layer in viewer.layers if isinstance(layer, Image)]


def labels_layers(viewer: napari.Viewer) -> list[Labels]:
    from napari.layers import Labels

    return [layer for layer in viewer.layers if isinstance(layer, Labels)]


def _pixels(layer: Image) -> np.ndarray:
    """Full-resolution data of an image layer (level 0 of a multiscale one)."""
    return layer.data[0] if layer.multiscale else layer.data


def _find(viewer: napari.Viewer, name: str) -> Labels | None:
    from napari.layers import Labels

    if name not in viewer.layers:
        return None
    layer = viewer.layers[name]
    return layer if isinstance(layer, Labels) else None


def _ensure_labels(
    viewer: napari.Viewer,
    name: str,
    like: Image,
    shape: tuple[int, ...],
    opacity: float,
    dtype: np.dtype | type = np.int32,
) -> Labels:
    """The labels layer ``name`` with this shape, created empty (of ``dtype``, the user's
    labels' type, so uint64 ids are never wrapped) when missing."""
    layer = _find(viewer, name)
    if layer is not None and layer.data.shape == shape:
        return layer
    if layer is not None:
        raise ValueError(
            f"layer {name!r} has shape {layer.data.shape} but {shape} is needed: "
            "rename or delete it and run again"
        )
    return viewer.add_labels(
        np.zeros(shape, dtype),
        name=name,
        opacity=opacity,
        scale=like.scale[: len(shape)],
        translate=like.translate[: len(shape)],
    )


def _accept_into(layer: Labels, proposal: np.ndarray, prefix: tuple[int, ...]) -> int:
    """Copy nonzero proposal pixels where ``layer`` is 0, as one undoable napari edit.

    Args:
        layer: the user's labels layer.
        proposal: (Y, X) int proposal for the slice ``layer.data[prefix]``.
        prefix: leading indices of the slice ((i,) for a stack, () for a 2D layer).

    Returns:
        Number of pixels written.
    """
    user = np.asarray(layer.data[prefix])
    ys, xs = np.nonzero((proposal != 0) & (user == 0))
    if len(ys) == 0:
        return 0
    indices = tuple(np.full(len(ys), p) for p in prefix) + (ys, xs)
    layer.data_setitem(indices, proposal[ys, xs].astype(layer.data.dtype))
    return len(ys)


@dataclass
class Workspace:
    """The layers of one run: images, the user's labels and the proposals.

    Attributes:
        viewer: the napari viewer.
        image: the stack, or the example image of a set.
        labels: the user's labels layer for ``image``.
        targets: the other image layers of a set (empty for a stack).
    """

    viewer: napari.Viewer
    image: Image
    labels: Labels
    targets: list[Image] = field(default_factory=list)

    @classmethod
    def from_layers(cls, viewer: napari.Viewer, image: Image, labels: Labels) -> Workspace:
        """Build and validate a workspace; a 2D image layer means "image set" mode."""
        ndim = spatial_ndim(image)
        shape = image.data.shape[:ndim]
        if labels.data.shape != shape:
            raise ValueError(
                f"labels layer {labels.name!r} has shape {labels.data.shape} but image "
                f"{image.name!r} is {shape}: choose matching layers"
            )
        if ndim == 3:
            return cls(viewer, image, labels)
        if ndim != 2:
            raise ValueError(
                f"image {image.name!r} has {ndim} spatial dimensions: give a stack (N, Y, X) "
                "or 2D images"
            )
        targets = [
            layer
            for layer in image_layers(viewer)
            if layer is not image and spatial_ndim(layer) == 2
        ]
        if not targets:
            raise ValueError(
                f"{image.name!r} is a 2D image and the viewer holds no other 2D image: add the "
                "images to label, or stack them into one (N, Y, X) layer"
            )
        return cls(viewer, image, labels, targets)

    # ------------------------------------------------------------------ reading
    @property
    def is_set(self) -> bool:
        return bool(self.targets)

    @property
    def items(self) -> list[Image]:
        return [self.image, *self.targets]

    def __len__(self) -> int:
        return len(self.items) if self.is_set else int(self.image.data.shape[0])

    def names(self) -> list[str]:
        if self.is_set:
            return [layer.name for layer in self.items]
        return [f"{self.image.name}[{i}]" for i in range(len(self))]

    def images(self) -> np.ndarray | list[np.ndarray]:
        """The pixels, not copied: the worker only reads them (lazy arrays load there)."""
        if self.is_set:
            return [_pixels(layer) for layer in self.items]
        return _pixels(self.image)

    def user_layer(self, index: int, create: bool = False) -> Labels | None:
        """The labels layer holding the user's labels of slice/image ``index``."""
        if not self.is_set or index == 0:
            return self.labels
        item = self.items[index]
        name = SET_LABELS.format(item.name)
        if create:
            shape, dtype = item.data.shape[:2], self.labels.data.dtype
            return _ensure_labels(self.viewer, name, item, shape, 0.7, dtype)
        return _find(self.viewer, name)

    def user_slice(self, index: int) -> np.ndarray:
        """(Y, X) user labels of one slice/image (zeros when a set target has none yet)."""
        if not self.is_set:
            return np.asarray(self.labels.data[index])
        layer = self.user_layer(index)
        if layer is None or layer.data.shape != self.items[index].data.shape[:2]:
            return np.zeros(self.items[index].data.shape[:2], np.int32)
        return np.asarray(layer.data)

    def user_labels(self) -> list[np.ndarray]:
        """A copy of every slice's user labels, safe to hand to a worker thread."""
        if not self.is_set:
            return list(np.array(self.labels.data))
        return [np.array(self.user_slice(i)) for i in range(len(self))]

    # ------------------------------------------------------------------ proposals
    def proposals_layer(self, index: int = 0) -> Labels:
        """The proposals layer of a stack, or of image ``index`` of a set (created if missing)."""
        dtype = self.labels.data.dtype
        if not self.is_set:
            shape = self.labels.data.shape
            return _ensure_labels(self.viewer, PROPOSALS, self.image, shape, 0.5, dtype)
        item = self.items[index]
        name = SET_PROPOSALS.format(item.name)
        return _ensure_labels(self.viewer, name, item, item.data.shape[:2], 0.5, dtype)

    def clear_proposals(self) -> None:
        """Empty the existing proposals layer(s) of this workspace (a new review starts)."""
        names = [SET_PROPOSALS.format(item.name) for item in self.items]
        for name in names if self.is_set else [PROPOSALS]:
            layer = _find(self.viewer, name)
            if layer is not None and layer.data.any():
                layer.data = np.zeros_like(layer.data)

    def proposal(self, index: int) -> np.ndarray:
        layer = self.proposals_layer(index)
        return np.asarray(layer.data[index] if not self.is_set else layer.data)

    def write_proposal(self, index: int, labels: np.ndarray) -> None:
        """Show one proposal (main thread only)."""
        layer = self.proposals_layer(index)
        if self.is_set:
            layer.data = labels.astype(layer.data.dtype)
            return
        layer.data[index] = labels
        layer.refresh()

    def accept(self, indices: list[int]) -> int:
        """Copy the proposals of ``indices`` into the user's labels, never over painted pixels.

        Each labels layer gets one undo step (napari's undo / Ctrl+Z reverts it).

        Returns:
            Number of pixels written.
        """
        written = 0
        if not self.is_set:
            with self.labels.block_history():
                for i in indices:
                    written += _accept_into(self.labels, self.proposal(i), (i,))
            return written
        for i in indices:
            layer = self.user_layer(i, create=True)
            with layer.block_history():
                written += _accept_into(layer, self.proposal(i), ())
        return written
