"""The project's own error types: what the user can fix (input, files, settings).

The command line (:func:`l2l.cli.main`) turns exactly these into one line ``l2l: error: …`` and exit
code 2; any other exception is a bug and keeps its traceback. Each also derives from the builtin
it refines (``ValueError``, ``FileNotFoundError``, …), so ``except ValueError`` still catches it.
"""

from __future__ import annotations


class L2LError(Exception):
    """Base class: a message for the user, naming the file, sample, key or value at fault."""

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UsageError(L2LError, ValueError):
    """A bad value: an option, a config key, a method or provider name, an input array."""


class MissingFileError(L2LError, FileNotFoundError):
    """A file or folder the command needs is not there."""


class ExistsError(L2LError, FileExistsError):
    """A file or folder is there and would be overwritten or mixed with other results."""


class NotFound(L2LError, KeyError):
    """A name (a split, a sample id) that the data does not hold."""


class DataError(UsageError):
    """A data or record file is damaged or does not hold what its format says (file, line or key named)."""
