"""The classes made of mixins: no method of theirs resolves to a mixin's stub.

A mixin declares what it uses of the others as a stub that raises NotImplementedError; if it
comes before the one that implements it in the base order, the stub wins, and the method fails
only when it is called (a worker's loss, say). This looks at every method of the composed class.
"""

import dis
import importlib

import pytest

COMPOSED = [
    ("scoop._worker", "WorkerScheduler"),
    ("scoop._client", "ClientScheduler"),
    ("scoop._broker", "Broker"),
    ("scoop_launch._lifecycle", "Run"),
    ("scoop_launch._join", "Joining"),
    ("scoop_launch._session", "Session"),
]


def _is_stub(fn: object) -> bool:
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    names = [
        i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    ]
    return names == ["NotImplementedError"] and len(code.co_code) < 40


@pytest.mark.parametrize(("module", "name"), COMPOSED)
def test_no_method_of_a_composed_class_is_a_stub(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    stubs = [attr for attr in dir(cls) if _is_stub(getattr(cls, attr, None))]
    assert not stubs, f"{name}: {stubs} resolve to a stub (a mixin before its implementation)"


def test_the_check_sees_a_stub_that_wins() -> None:
    class Uses:
        def helper(self) -> int:
            raise NotImplementedError

    class Provides:
        def helper(self) -> int:
            return 1

    class Wrong(Uses, Provides):
        pass

    class Right(Provides, Uses):
        pass

    assert _is_stub(Wrong.helper) and not _is_stub(Right.helper)
