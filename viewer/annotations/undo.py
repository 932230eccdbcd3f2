"""A linear undo/redo stack of commands with a clean state, like Qt's QUndoStack (no Qt).

A command knows how to ``redo`` (do) and ``undo`` itself and has a ``text`` for menus
("Undo Move").  :meth:`UndoStack.push` runs the command and records it, dropping any
commands that had been undone.  The *clean* state is the position of the last save:
:attr:`UndoStack.is_clean` is true exactly when the document is as it was then, so
undoing back to the saved state makes it clean again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from psygnal import Signal


class Command(ABC):
    """One undoable step."""

    text: str = ""

    @abstractmethod
    def redo(self) -> None:
        """Do (or redo) the step."""

    @abstractmethod
    def undo(self) -> None:
        """Revert the step; called only after :meth:`redo`."""

    def merge(self, other: Command) -> bool:
        """Fold ``other`` (already done) into this command; return whether it was merged.

        A merged command undoes both steps at once (e.g. the many moves of one drag).
        """
        return False


class UndoStack:
    """Commands done (below the index) and undone (above it).

    ``changed`` fires after every push, undo, redo, clean-state change and clear.
    At most ``limit`` commands are kept; the oldest are forgotten first.
    """

    changed = Signal()

    def __init__(self, limit: int = 500) -> None:
        if limit < 1:
            raise ValueError("an undo stack keeps at least one command")
        self._limit = limit
        self._commands: list[Command] = []
        self._index = 0
        self._clean: int | None = 0

    @property
    def index(self) -> int:
        """How many commands are done (the position between done and undone ones)."""
        return self._index

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands)

    @property
    def undo_text(self) -> str:
        """The text of the command :meth:`undo` would revert (``""`` if none)."""
        return self._commands[self._index - 1].text if self.can_undo else ""

    @property
    def redo_text(self) -> str:
        return self._commands[self._index].text if self.can_redo else ""

    @property
    def is_clean(self) -> bool:
        """True when the state equals the one marked by :meth:`set_clean`."""
        return self._clean == self._index

    def set_clean(self) -> None:
        """Mark the current state as the saved one."""
        if self._clean != self._index:
            self._clean = self._index
            self.changed.emit()

    def set_dirty(self) -> None:
        """Mark no reachable state as saved (e.g. work recovered from an autosave)."""
        if self._clean is not None:
            self._clean = None
            self.changed.emit()

    def push(self, command: Command) -> None:
        """Run ``command.redo()`` and record it (or merge it into the previous command).

        If ``redo`` raises, nothing is recorded and the exception propagates.
        """
        command.redo()
        del self._commands[self._index :]
        if self._clean is not None and self._clean > self._index:
            self._clean = None  # the saved state was undone and is now unreachable
        top = self._commands[-1] if self._commands else None
        # Never merge into the saved state's command: the merged step would skip it.
        if top is not None and self._clean != self._index and top.merge(command):
            self.changed.emit()
            return
        self._commands.append(command)
        self._index += 1
        if len(self._commands) > self._limit:
            drop = len(self._commands) - self._limit
            del self._commands[:drop]
            self._index -= drop
            if self._clean is not None:
                self._clean = self._clean - drop if self._clean >= drop else None
        self.changed.emit()

    def undo(self) -> bool:
        """Revert the last done command; ``False`` if there is none."""
        if not self.can_undo:
            return False
        self._commands[self._index - 1].undo()
        self._index -= 1
        self.changed.emit()
        return True

    def redo(self) -> bool:
        """Redo the next undone command; ``False`` if there is none."""
        if not self.can_redo:
            return False
        self._commands[self._index].redo()
        self._index += 1
        self.changed.emit()
        return True

    def clear(self) -> None:
        """Forget all commands; the current state becomes the clean one if it was clean."""
        clean = self.is_clean
        self._commands.clear()
        self._index = 0
        self._clean = 0 if clean else None
        self.changed.emit()
