"""The widget's keyboard shortcuts, as napari actions.

Registered with napari's action manager on the viewer keymap, they are listed (and can be
changed) in Preferences > Shortcuts under "Viewer key bindings". The default keys collide
with no napari binding (``tests/plugin/test_actions.py`` checks every action and app-model
keybinding napari has). Each action finds the widget docked on the viewer it was pressed
in; the shortcuts are unbound when the last widget closes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari.components import ViewerModel
from napari.utils.action_manager import action_manager

if TYPE_CHECKING:
    from napari_incontext._widget import InContextWidget

PREFIX = "napari-incontext"
# name: (default shortcut, description, widget method called)
ACTIONS: dict[str, tuple[str, str, str]] = {
    "next_lowest": ("Shift+N", "In-context: go to the next lowest-score proposal", "next_lowest"),
    "accept": ("Shift+Y", "In-context: accept the proposal on screen", "accept_current"),
    "reject": ("Shift+X", "In-context: reject the proposal on screen", "reject_current"),
    "accept_object": (
        "Shift+O",
        "In-context: accept the proposed object under the mouse",
        "accept_object_under_cursor",
    ),
    "next_image": ("Shift+Right", "In-context: show the next image of a set", "next_image"),
    "previous_image": (
        "Shift+Left",
        "In-context: show the previous image of a set",
        "previous_image",
    ),
}
_WIDGETS: weakref.WeakSet[InContextWidget] = weakref.WeakSet()


def action_name(name: str) -> str:
    return f"{PREFIX}:{name}"


def _unwrapped(viewer: Any) -> Any:
    """The viewer behind napari's plugin proxy (the proxy is a new object every time)."""
    return getattr(viewer, "__wrapped__", viewer)


def _docked(widget: InContextWidget) -> bool:
    """True while the widget sits in a dock (False once undocked or deleted by Qt)."""
    try:
        return widget.parent() is not None
    except RuntimeError:  # the Qt object is gone (its viewer was closed)
        return False


def _command(method: str) -> Callable[[ViewerModel], None]:
    def command(viewer: ViewerModel) -> None:
        for widget in list(_WIDGETS):
            if _docked(widget) and _unwrapped(widget.viewer) is _unwrapped(viewer):
                getattr(widget, method)()

    command.__name__ = f"incontext_{method}"  # napari lists active shortcuts by this name
    return command


def _user_shortcuts(name: str) -> list[str] | None:
    """The shortcuts the user chose in Preferences for an action, if any."""
    from napari.settings import get_settings

    chosen = get_settings().shortcuts.shortcuts.get(name)
    return [str(s) for s in chosen] if chosen is not None else None


def bind(widget: InContextWidget) -> None:
    """Register the actions (once) and bind their shortcuts while ``widget`` is open."""
    first = not _WIDGETS
    _WIDGETS.add(widget)
    if not first:
        return
    for name, (key, description, method) in ACTIONS.items():
        full = action_name(name)
        action_manager.register_action(full, _command(method), description, ViewerModel)
        for shortcut in _user_shortcuts(full) or [key]:
            action_manager.bind_shortcut(full, shortcut)


def release(widget: InContextWidget) -> None:
    """Forget ``widget``; unbind every shortcut when no docked widget is left."""
    _WIDGETS.discard(widget)
    for other in [w for w in _WIDGETS if not _docked(w)]:
        _WIDGETS.discard(other)
    if _WIDGETS:
        return
    for name in ACTIONS:
        action_manager.unbind_shortcut(action_name(name))


def shortcut_text(name: str) -> str:
    """The shortcut shown in a tooltip (the user's choice when they changed it)."""
    chosen = _user_shortcuts(action_name(name))
    return chosen[0] if chosen else ACTIONS[name][0]
