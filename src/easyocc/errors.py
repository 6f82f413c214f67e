"""Errors the command line reports in one line (exit code 2), without a traceback."""

from __future__ import annotations

from os import PathLike


class EasyOccError(Exception):
    """A user-facing error: bad input, a missing file, an impossible request."""


class InputError(EasyOccError):
    """A file or directory that cannot be used; the message starts with its path."""

    def __init__(self, path: str | PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # Exceptions pickle through ``args`` (the message alone) by default; a worker process must be able to
        # send this error back to its parent.
        return type(self), (self.path, self.problem)
