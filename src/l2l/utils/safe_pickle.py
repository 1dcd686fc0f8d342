"""A restricted unpickler for REFER's ``refs(*).p`` files.

Those files hold only lists, dicts, strings and numbers, but a pickle can name any
callable, and plain ``pickle.load`` would call it. This unpickler admits no global at all
except a few plain container types, so a malicious file raises ``UnpicklingError``
before anything in it runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

# (module, name) pairs a REFER refs file may legitimately need: plain containers only.
_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("__builtin__", "set"),
        ("__builtin__", "frozenset"),
        ("collections", "OrderedDict"),
        # protocol 0-2 pickles rebuild byte strings with _codecs.encode(str, "latin1"): a pure function
        ("_codecs", "encode"),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """Refuses every global outside :data:`_ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only plain containers and scalars are allowed in this file"
        )


def restricted_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` (Python 2 pickles too: byte strings decode as latin-1)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f"{source}: {e}") from None
    except (EOFError, ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
        raise pickle.UnpicklingError(f"{source}: not a valid refs pickle ({type(e).__name__}: {e})") from None


def restricted_load(path: str | Path) -> Any:
    """Unpickle a file with :class:`RestrictedUnpickler`."""
    return restricted_loads(Path(path).read_bytes(), source=str(path))
