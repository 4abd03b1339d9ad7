"""Everything that reads or writes napari layers: identities, proposals, undoable accepts.

Layers are tracked by napari's ``unique_id``, never by Python identity (napari hands plugins
proxies, a new one on every access) and never by name alone (a deleted layer can be replaced
by another of the same name). A layer that is gone raises :class:`LayerGone`.

Two modes share one interface, :class:`Workspace`:

* stack: one image layer (N, Y, X[, C]) and one labels layer (N, Y, X); proposals go to one
  labels layer of the same shape, created on the first result.
* image set: a 2D example image layer and its 2D labels layer; every other 2D image layer of
  the viewer is a target. Each target gets its own proposals layer and, on the first accept,
  its own labels layer. Layers the plugin creates carry ``metadata["napari-incontext"]``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_incontext._backing import new_layer_data

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels, Layer

KEY = "napari-incontext"  # metadata key of the layers the plugin creates
PROPOSALS, CONFIDENCE, LABELS = "proposals", "confidence", "labels"
SET_NAME = "{role} [{name}]"


class LayerGone(ValueError):
    """A layer the workspace needs was deleted or replaced."""


def spatial_ndim(layer: Image) -> int:
    """Number of non-channel dimensions of an image layer (RGB(A) drops the last axis)."""
    return layer.data.ndim - (1 if layer.rgb else 0)


def channels_last(image: Image, labels: Layer | None = None) -> int:
    """C when ``image`` is one non-RGB layer with its C <= MAX_CHANNELS_LAST channels on the
    last axis: (N, Y, X, C), or (Y, X, C) whose ``labels`` layer is (Y, X); else 0."""
    from src_models.channels import MAX_CHANNELS_LAST

    shape = image.data.shape
    if image.rgb or len(shape) < 3 or shape[-1] > MAX_CHANNELS_LAST:
        return 0
    if len(shape) == 4 or (labels is not None and labels.data.shape == shape[:-1]):
        return int(shape[-1])
    return 0


def channel_note(workspace: Workspace) -> str:
    """The status line's words for a channel-last image ("" for any other)."""
    if not workspace.channels:
        return ""
    return f" on {workspace.channels} channels (the last axis of {workspace.image.name!r})"


def image_layers(viewer: napari.Viewer) -> list[Image]:
    from napari.layers import Image

    return [layer for layer in viewer.layers if isinstance(layer, Image)]


def labels_layers(viewer: napari.Viewer) -> list[Labels]:
    from napari.layers import Labels

    return [layer for layer in viewer.layers if isinstance(layer, Labels)]


def role(layer: Layer) -> str | None:
    """The plugin's role for a layer it created (proposals, confidence, labels), else None."""
    tag = layer.metadata.get(KEY)
    return tag.get("role") if isinstance(tag, dict) else None


def is_generated(layer: Layer) -> bool:
    """True for the proposals and confidence layers (never offered as the user's labels)."""
    return role(layer) in (PROPOSALS, CONFIDENCE)


def pixels(layer: Image) -> Any:
    """Full-resolution data of an image layer (level 0 of a multiscale one), not copied."""
    return layer.data[0] if layer.multiscale else layer.data


def channel_group(viewer: napari.Viewer, image: Image) -> list[Image]:
    """The image layers that look like channels of ``image`` (what ``viewer.add_image(...,
    channel_axis=...)`` creates): every non-RGB image layer of the same data shape that the
    plugin did not create, in layer-list order (``image`` included)."""
    shape = pixels(image).shape
    return [
        layer
        for layer in image_layers(viewer)
        if not layer.rgb and not role(layer) and pixels(layer).shape == shape
    ]


def _set_images(viewer: napari.Viewer, example: Image, channels: int = 0) -> list[Image]:
    """The 2D image layers of the viewer other than ``example`` and the plugin's own (with
    ``channels``: the (Y, X, C) layers of that many channels)."""

    def flat(layer: Image) -> bool:
        if channels:
            return not layer.rgb and layer.data.ndim == 3 and layer.data.shape[-1] == channels
        return spatial_ndim(layer) == 2

    return [
        layer
        for layer in image_layers(viewer)
        if layer.unique_id != example.unique_id and flat(layer) and not role(layer)
    ]


@dataclass
class LayerRef:
    """A layer remembered by its ``unique_id``; :meth:`get` finds it again or refuses."""

    viewer: napari.Viewer = field(repr=False)
    uid: Hashable
    name: str
    what: str

    @classmethod
    def of(cls, viewer: napari.Viewer, layer: Layer, what: str) -> LayerRef:
        return cls(viewer, layer.unique_id, layer.name, what)

    def find(self) -> Layer | None:
        for layer in self.viewer.layers:
            if layer.unique_id == self.uid:
                self.name = layer.name
                return layer
        return None

    def get(self) -> Layer:
        layer = self.find()
        if layer is None:
            raise LayerGone(
                f"the {self.what} layer {self.name!r} was deleted or replaced: choose the "
                "layers again in the widget, then Run"
            )
        return layer


def find_tagged(viewer: napari.Viewer, **tag: Any) -> Layer | None:
    """The layer whose plugin metadata holds every ``tag`` item."""
    for layer in viewer.layers:
        meta = layer.metadata.get(KEY)
        if isinstance(meta, dict) and all(meta.get(k) == v for k, v in tag.items()):
            return layer
    return None


def _accept_pixels(
    layer: Labels, proposal: np.ndarray, prefix: tuple[int, ...], label: int | None
) -> int:
    """Copy nonzero proposal pixels (only id ``label`` if given) where ``layer`` is 0, as an
    undoable napari edit; return the number of pixels written."""
    user = np.asarray(layer.data[prefix])
    take = (proposal == label) if label is not None else (proposal != 0)
    ys, xs = np.nonzero(take & (user == 0))
    if len(ys) == 0:
        return 0
    indices = tuple(np.full(len(ys), p) for p in prefix) + (ys, xs)
    layer.data_setitem(indices, proposal[ys, xs].astype(layer.data.dtype), refresh=False)
    return len(ys)


@dataclass
class Workspace:
    """The layers of one annotation task: images, the user's labels, proposals.

    Attributes:
        viewer: the napari viewer (a plugin proxy or the viewer itself).
        image: the stack, or the example image of a set.
        labels: the user's labels layer for ``image``.
        targets: the other image layers of a set (empty for a stack).
        channels: C when the image layers hold C channels on their last axis
            (:func:`channels_last`), else 0.
    """

    viewer: napari.Viewer = field(repr=False)
    image: LayerRef
    labels: LayerRef
    targets: list[LayerRef] = field(default_factory=list)
    channels: int = 0

    @classmethod
    def from_layers(cls, viewer: napari.Viewer, image: Image, labels: Labels) -> Workspace:
        """Build and validate a workspace; a 2D image layer means "image set" mode."""
        channels = channels_last(image, labels)
        ndim = spatial_ndim(image) - (1 if channels else 0)
        shape = image.data.shape[:ndim]
        if labels.data.shape != shape:
            raise ValueError(
                f"labels layer {labels.name!r} has shape {labels.data.shape} but image "
                f"{image.name!r} is {shape}: choose matching layers"
            )
        refs = LayerRef.of(viewer, image, "image"), LayerRef.of(viewer, labels, "labels")
        if ndim == 3:
            return cls(viewer, *refs, channels=channels)
        if ndim != 2:
            raise ValueError(
                f"image {image.name!r} has {ndim} spatial dimensions: give a stack (N, Y, X) "
                "or 2D images"
            )
        found = _set_images(viewer, image, channels)
        targets = [LayerRef.of(viewer, layer, "image") for layer in found]
        if not targets:
            raise ValueError(
                f"{image.name!r} is a 2D image and the viewer holds no other 2D image: add the "
                "images to label, or stack them into one (N, Y, X) layer"
            )
        return cls(viewer, *refs, targets, channels)

    def same_as(self, other: Workspace | None) -> bool:
        """Same image and labels layers (an image set keeps its targets' order)."""
        return other is not None and (self.image.uid, self.labels.uid) == (
            other.image.uid,
            other.labels.uid,
        )

    def add_new_targets(self) -> None:
        """Image sets: 2D images opened since are appended (the others keep their index)."""
        if self.is_set:
            known = {ref.uid for ref in self.items}
            self.targets += [
                LayerRef.of(self.viewer, layer, "image")
                for layer in _set_images(self.viewer, self.image.get(), self.channels)
                if layer.unique_id not in known
            ]

    # ------------------------------------------------------------------ reading
    @property
    def is_set(self) -> bool:
        return bool(self.targets)

    @property
    def items(self) -> list[LayerRef]:
        return [self.image, *self.targets]

    def __len__(self) -> int:
        return len(self.items) if self.is_set else int(self.image.get().data.shape[0])

    def names(self) -> list[str]:
        if self.is_set:
            return [ref.get().name for ref in self.items]
        name = self.image.get().name
        return [f"{name}[{i}]" for i in range(len(self))]

    def images(self) -> Any:
        """The pixels, not copied: the worker only reads them (lazy arrays load there)."""
        if self.is_set:
            return [pixels(ref.get()) for ref in self.items]
        return pixels(self.image.get())

    def channel_images(self) -> tuple[Any, list[str]]:
        """Stacks: the image's channel group (:func:`channel_group`) as one lazy
        (N, Y, X, C) array, and the layer names in channel order."""
        if self.is_set:
            raise ValueError(
                "all channels works on stacks: for 2D images, open them as one (N, Y, X) "
                "stack per channel"
            )
        import dask.array as da

        group = channel_group(self.viewer, self.image.get())
        stacked = da.stack([da.asarray(pixels(layer)) for layer in group], axis=-1)
        return stacked, [layer.name for layer in group]

    def check_alive(self) -> None:
        """Raise :class:`LayerGone` when an image or the labels layer was deleted."""
        for ref in [self.labels, *self.items]:
            ref.get()

    def user_layer(self, index: int, create: bool = False) -> Labels | None:
        """The labels layer holding the user's labels of slice/image ``index``."""
        if not self.is_set or index == 0:
            return self.labels.get()
        item = self.items[index]
        layer = find_tagged(self.viewer, role=LABELS, image=str(item.uid))
        if layer is None and create:
            # the user's labels' dtype, so that uint64 ids are never wrapped
            shape, dtype = item.get().data.shape[:2], self.labels.get().data.dtype
            layer = self._add(LABELS, item, np.zeros(shape, dtype), 0.7)
        return layer

    def slice_reader(self, index: int) -> Any:
        """An array the worker can read slice ``index`` of the user's labels from (a view
        or the layer's data; never copied here)."""
        if not self.is_set:
            return self.labels.get().data[index]
        layer = self.user_layer(index)
        return None if layer is None else layer.data

    def user_labels(self) -> list[np.ndarray]:
        """A copy of every slice's user labels (call it in a worker: it reads everything)."""
        return [np.array(self.user_slice(i)) for i in range(len(self))]

    def user_slice(self, index: int) -> np.ndarray:
        """(Y, X) user labels of one slice/image (zeros when a set target has none yet)."""
        data = self.slice_reader(index)
        if data is None:
            shape = self.items[index].get().data.shape[:2]
            return np.zeros(shape, self.labels.get().data.dtype)
        return np.asarray(data)

    # ------------------------------------------------------------------ generated layers
    def _add(self, what: str, item: LayerRef, data: Any, opacity: float) -> Layer:
        """Add a plugin layer for ``item``; the layer that was active stays active."""
        active = self.viewer.layers.selection.active
        like = item.get()
        tag = {"role": what, "image": str(item.uid), "labels": str(self.labels.uid)}
        name = what if not self.is_set else SET_NAME.format(role=what, name=like.name)
        common = {
            "name": name,
            "opacity": opacity,
            "scale": like.scale[: data.ndim],
            "translate": like.translate[: data.ndim],
            "metadata": {KEY: tag},
        }
        if what == CONFIDENCE:
            layer = self.viewer.add_image(
                data, colormap="magma", contrast_limits=(0, 255), visible=True, **common
            )
        else:
            layer = self.viewer.add_labels(data, **common)
        if what == PROPOSALS:
            layer.contour = 2  # outlines: proposals never look like the user's own labels
        self.viewer.layers.selection.active = active or self.labels.get()
        return layer

    def generated(self, what: str, index: int = 0, create: bool = False) -> Layer | None:
        """The proposals / confidence layer of the stack, or of image ``index`` of a set."""
        item = self.items[index] if self.is_set else self.image
        tag = {"role": what, "image": str(item.uid), "labels": str(self.labels.uid)}
        layer = find_tagged(self.viewer, **tag)
        if layer is not None or not create:
            return layer
        shape = item.get().data.shape[:2] if self.is_set else self.labels.get().data.shape
        dtype = np.uint8 if what == CONFIDENCE else self.labels.get().data.dtype
        data = new_layer_data(shape, dtype, self.viewer)  # a big stack's: zarr on disk
        return self._add(what, item, data, 1.0 if what == PROPOSALS else 0.5)

    def proposal(self, index: int) -> np.ndarray:
        layer = self.generated(PROPOSALS, index)
        if layer is None:
            return np.zeros(self.items[index].get().data.shape[:2] if self.is_set else (0, 0))
        return np.asarray(layer.data if self.is_set else layer.data[index])

    def write(self, what: str, index: int, data: np.ndarray, visible: bool) -> None:
        """Show one slice's proposal or confidence (main thread); refresh only when shown."""
        layer = self.generated(what, index, create=True)
        if self.is_set:
            layer.data = data.astype(layer.data.dtype)
            return
        layer.data[index] = data
        if visible:
            layer.refresh()

    def clear_generated(self) -> None:
        """Remove the proposals / confidence layers of this workspace (a new review)."""
        for what in (PROPOSALS, CONFIDENCE):
            for i in range(len(self.items) if self.is_set else 1):
                layer = self.generated(what, i)
                if layer is not None:
                    self.viewer.layers.remove(layer)

    # ------------------------------------------------------------------ accepting
    def accept(self, index: int, label: int | None = None, grouped: bool = False) -> int:
        """Copy the proposal of ``index`` (only object ``label`` if given) into the user's
        labels, never over painted pixels, as one napari undo step (``grouped``: the caller
        holds the layer's ``block_history`` and refreshes). Returns the pixels written."""
        layer = self.user_layer(index, create=True)
        prefix = () if self.is_set else (index,)
        if grouped:
            return _accept_pixels(layer, self.proposal(index), prefix, label)
        with layer.block_history():
            written = _accept_pixels(layer, self.proposal(index), prefix, label)
        layer.refresh()
        return written

    def show_only(self, index: int) -> None:
        """Image sets: show image ``index`` with its labels and proposals, hide the others."""
        for i, item in enumerate(self.items):
            layers = [item.find(), self.generated(PROPOSALS, i), self.generated(CONFIDENCE, i)]
            if i > 0:
                layers.append(self.user_layer(i))
            for layer in filter(None, layers):
                layer.visible = i == index
        self.labels.get().visible = index == 0
