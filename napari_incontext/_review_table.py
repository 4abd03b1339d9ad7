"""The review table: one row per slice, lowest score first, with the reasons.

A Qt model over the session's rows: refreshing resets the model (the view asks only for the
visible rows), and refreshes are coalesced so a fast run costs one update per 100 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer
from qtpy.QtWidgets import QHeaderView, QTableView

from napari_incontext._session import Session, SliceState

COLUMNS = ("slice", "score", "status", "why")


class ReviewModel(QAbstractTableModel):
    """Rows (index, state) with display names."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, SliceState]] = []
        self.names: Sequence[str] | None = None
        self.edited: set[int] = set()

    def set_rows(
        self, rows: list[tuple[int, SliceState]], names: Sequence[str] | None, edited: set[int]
    ) -> None:
        self.beginResetModel()
        self.rows, self.names, self.edited = rows, names, set(edited)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Any, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def text(self, row: int, column: int) -> str:
        index, state = self.rows[row]
        if column == 0:
            return self.names[index] if self.names else str(index)
        if column == 1:
            return "" if state.score is None else f"{state.score:.3f}"
        if column == 2:
            return state.status + (" (proposal edited)" if index in self.edited else "")
        return ", ".join(state.reasons)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self.text(index.row(), index.column())
        if role == Qt.ItemDataRole.UserRole:
            return self.rows[index.row()][0]
        return None


class ReviewTable(QTableView):
    """The table view; ``on_click(slice index)`` when a row is clicked."""

    def __init__(self, session: Session, on_click: Callable[[int], None]) -> None:
        super().__init__()
        self.session = session
        self.model_ = ReviewModel()
        self.setModel(self.model_)
        self.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.clicked.connect(lambda index: on_click(int(self.model_.rows[index.row()][0])))
        self._names: Callable[[], Sequence[str] | None] = lambda: None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self.refresh_now)

    def set_names(self, names: Callable[[], Sequence[str] | None]) -> None:
        self._names = names

    def refresh(self) -> None:
        """Update soon (coalesced)."""
        if not self._timer.isActive():
            self._timer.start()

    def refresh_now(self) -> None:
        self._timer.stop()
        self.model_.set_rows(self.session.review_rows(), self._names(), self.session.proposal_edits)

    def row_text(self, row: int, column: int) -> str:
        return self.model_.text(row, column)

    def row_index(self, row: int) -> int:
        return int(self.model_.rows[row][0])

    def click_row(self, row: int) -> None:
        """Click a row as a person does (tests and keyboard navigation)."""
        self.clicked.emit(self.model_.index(row, 0))
