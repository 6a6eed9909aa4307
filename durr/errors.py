"""Errors the project raises for bad input: one clear line naming the file and the problem."""

from __future__ import annotations

import os


class ScanError(ValueError):
    """A file that cannot be read or written as a scan.

    ``str(err)`` is one line ``"<path>: <problem>"``; the CLI prints it and exits with status 2.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{self.path}: {problem}")


class ModelError(ValueError):
    """A model folder or checkpoint that cannot be loaded (wrong architecture, corrupt file)."""
