"""Pickling of tasks, results and constants: pickle protocol 5 with out-of-band buffers.

The C pickler is tried first (fast, and pickles module-level functions and classes by reference,
which workers resolve against their own import of the user's script). What it cannot pickle
(lambdas, closures, functions defined in an interactive session...) goes through cloudpickle, by
value; but a class whose metaclass registered its own reduction with ``copyreg`` (DEAP's creator
classes) goes that way, as the C pickler sends it. Buffers of at least ``OUT_OF_BAND_MIN_BYTES``
(bytearrays, NumPy arrays, PickleBuffers) travel as their own frames instead of being copied
into the pickle stream.
"""

from __future__ import annotations

import copyreg
import functools
import io
import pickle
import sys
import types
from collections.abc import Sequence
from typing import Any

from scoop.errors import SerializationError
from scoop.transport import Frame

OUT_OF_BAND_MIN_BYTES = 64 * 1024

#: Names defined only inside the ``if __name__ == "__main__":`` block of the user's script. Workers
#: import the script without running that block, so these are pickled by value.
main_only_names: frozenset[str] = frozenset()
#: True in a process that opened a ``scoop.Executor``: its ``__main__`` (a notebook, the script
#: that opened it) exists there alone, so every object of ``__main__`` is pickled by value.
main_by_value = False


@functools.cache
def _by_value_pickler() -> type[pickle.Pickler]:
    """The pickler of what the C pickler cannot send: cloudpickle, imported on first need.

    Many runs never need it (the broker never does), and importing it is a good part of a
    process's start (about 8 ms).
    """
    import cloudpickle

    class ScoopPickler(cloudpickle.Pickler):  # type: ignore[misc]
        """cloudpickle, but ``__main__`` objects that workers also define go by reference."""

        def reducer_override(self, obj: Any) -> Any:
            if (
                isinstance(obj, type | types.FunctionType)
                and getattr(obj, "__module__", None) == "__main__"
                and not main_by_value
                and obj.__qualname__.split(".", 1)[0] not in main_only_names
                and "<" not in obj.__qualname__
                and _resolves(obj)
            ):
                return NotImplemented  # the standard by-reference path
            if isinstance(obj, type) and type(obj) in copyreg.dispatch_table:
                # A class whose metaclass says how to pickle it (DEAP's creator classes are
                # rebuilt by name wherever they land, and may so be replaced in sys.modules):
                # as the C pickler does, not by value (which such a metaclass may refuse).
                return NotImplemented
            return super().reducer_override(obj)

    return ScoopPickler


def _resolves(obj: Any) -> bool:
    target: Any = sys.modules.get("__main__")
    for part in obj.__qualname__.split("."):
        target = getattr(target, part, None)
    return target is obj


def _pickle(obj: Any, fast: bool) -> list[Frame]:
    buffers: list[pickle.PickleBuffer] = []

    def keep_large(buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < OUT_OF_BAND_MIN_BYTES:
            return True  # in-band
        buffers.append(buffer)
        return False

    if fast:
        main = pickle.dumps(obj, protocol=5, buffer_callback=keep_large)
    else:
        stream = io.BytesIO()
        _by_value_pickler()(stream, protocol=5, buffer_callback=keep_large).dump(obj)
        main = stream.getvalue()
    return [main, *(buffer.raw() for buffer in buffers)]


class _LargeBytes:
    """Carries a large bytes/bytearray out of band (pickle keeps those in-band by itself)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        rebuild = bytes if type(self.data) is bytes else bytearray
        return rebuild, (pickle.PickleBuffer(self.data),)


_BUFFERS = (bytes, bytearray)
_CONTAINERS = (tuple, list)


def _has_large(obj: Any, depth: int) -> bool:
    kind = type(obj)
    if kind in _BUFFERS:
        return len(obj) >= OUT_OF_BAND_MIN_BYTES
    if depth == 0:
        return False
    if kind in _CONTAINERS:
        return any(_has_large(item, depth - 1) for item in obj)
    if kind is dict:
        return any(_has_large(item, depth - 1) for item in obj.values())
    return False


def _wrap_large(obj: Any, depth: int = 2) -> Any:
    # Only the object and the containers right around it are looked at: arguments and results.
    # Most calls have no large buffer: find that out without building anything.
    if not _has_large(obj, depth):
        return obj
    kind = type(obj)
    if kind in _BUFFERS:
        return _LargeBytes(obj)
    if kind in _CONTAINERS:
        return kind(_wrap_large(item, depth - 1) for item in obj)
    return {key: _wrap_large(value, depth - 1) for key, value in obj.items()}


def dumps(obj: Any) -> list[Frame]:
    """Pickle ``obj`` into frames: the pickle stream, then its out-of-band buffers."""
    obj = _wrap_large(obj)
    try:
        frames = _pickle(obj, fast=True)
    except Exception:
        pass
    else:
        if not _names_main(frames[0]):
            return frames
    return _pickle(obj, fast=False)


def _names_main(stream: Frame) -> bool:
    # The C pickler refers to __main__ objects by name: fine for those workers define too (they
    # import the script), not for those only the main guard defines, nor for an Executor's
    # client. Only then, and only if the stream names __main__ at all, does cloudpickle redo
    # it (a cheap byte search; a false hit only costs cloudpickle). Most scripts bind something
    # under their guard: their data, which names nothing of __main__, still goes the fast way.
    return (main_by_value or bool(main_only_names)) and b"__main__" in stream


#: Results of these types always pickle: no need to check them.
_ATOMS = frozenset({int, float, str, bytes, bytearray, bool, type(None), complex})


def _out_of_band(_buffer: pickle.PickleBuffer) -> bool:
    return False  # out of band: the check below never copies a large buffer


def check_picklable(obj: Any) -> None:
    """Raise if ``obj`` cannot be pickled to travel; cheap for the usual results.

    Plain pickle's C code first (large buffers out of band, so not copied), then the pickler
    that sends travels use (cloudpickle), whose error is the one raised.
    """
    if type(obj) in _ATOMS:
        return
    try:
        pickle.dumps(obj, protocol=5, buffer_callback=_out_of_band)
    except Exception:
        _pickle(obj, fast=False)


def loads(frames: Sequence[Frame]) -> Any:
    """Rebuild an object from the frames :func:`dumps` made."""
    return pickle.loads(frames[0], buffers=frames[1:])


def describe(obj: Any, limit: int = 80) -> str:
    """A short, safe description of ``obj`` for error messages."""
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__} object>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} (type {type(obj).__module__}.{type(obj).__qualname__})"


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder if the exception's ``__str__`` fails (it is user code)."""
    try:
        return str(exc)
    except Exception as str_error:
        return f"<str() of the {type(exc).__qualname__} failed: {type(str_error).__qualname__}>"


def exception_summary(exc: BaseException) -> str:
    """``module.Class: message`` of ``exc``, even if its ``__str__`` fails."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {safe_str(exc)}"


def dumps_or_explain(obj: Any, what: str) -> list[Frame]:
    """Like :func:`dumps`, but failure raises SerializationError naming ``what`` and the cause."""
    try:
        return dumps(obj)
    except Exception as exc:
        raise SerializationError(
            f"{what} cannot be pickled to travel to another worker: {safe_str(exc)}"
        ) from exc


def dumps_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Frame]:
    """Pickle a call's arguments; on failure, name the exact argument that cannot travel."""
    try:
        return dumps((args, kwargs))
    except Exception as exc:
        culprit = "the arguments"
        for label, value in (
            *((f"argument {i}", arg) for i, arg in enumerate(args)),
            *((f"keyword argument {name!r}", arg) for name, arg in kwargs.items()),
        ):
            try:
                dumps(value)
            except Exception:
                culprit = f"{label} {describe(value)}"
                break
        raise SerializationError(
            f"{culprit} cannot be pickled to travel to another worker: {safe_str(exc)}"
        ) from exc


def dumps_in_band(obj: Any) -> bytes:
    """Pickle ``obj`` into one frame, buffers included (for task functions)."""
    # Plain pickle sends a function of __main__ by name: right for one workers define too
    # (they import the script), wrong for one defined under the main guard. Then the pickler
    # that tells the two apart redoes it (as in dumps).
    try:
        frame = pickle.dumps(obj, protocol=5)
    except Exception:
        pass
    else:
        if not _names_main(frame):
            return frame
    stream = io.BytesIO()
    _by_value_pickler()(stream, protocol=5).dump(obj)
    return stream.getvalue()
