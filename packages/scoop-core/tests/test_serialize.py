import pickle
import threading

import pytest

from scoop import _serialize
from scoop.errors import SerializationError


def test_large_buffers_travel_out_of_band():
    data = b"x" * (_serialize.OUT_OF_BAND_MIN_BYTES * 2)
    mutable = bytearray(data)
    frames = _serialize.dumps(((data, 1), {"buffer": mutable, "small": b"s"}))
    assert len(frames) == 3
    assert [memoryview(f).nbytes for f in frames[1:]] == [len(data), len(data)]
    (got, one), kwargs = _serialize.loads(frames)
    assert got == data and type(got) is bytes and one == 1
    assert kwargs["buffer"] == mutable and type(kwargs["buffer"]) is bytearray


def test_lambdas_and_closures_fall_back_to_cloudpickle():
    offset = 5
    frames = _serialize.dumps((lambda x: x + offset, [1]))
    fn, args = _serialize.loads(frames)
    assert fn(*args) == 6


def test_unpicklable_argument_is_named():
    with pytest.raises(SerializationError, match=r"argument 1 .*lock"):
        _serialize.dumps_call((1, threading.Lock()), {})


def test_unpicklable_keyword_is_named():
    with pytest.raises(SerializationError, match="keyword argument 'guard'"):
        _serialize.dumps_call((), {"guard": threading.Lock()})


def test_in_band_function_pickle_is_one_frame():
    big = bytearray(_serialize.OUT_OF_BAND_MIN_BYTES * 2)

    def uses_big():
        return len(big)

    frame = _serialize.dumps_in_band(uses_big)
    assert pickle.loads(frame)() == len(big)


def _guarded_function(x: int) -> int:
    return x + 1


def test_data_takes_the_fast_path_when_the_script_binds_names_under_its_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Most scripts bind something under their main guard: that must not slow every pickle."""
    monkeypatch.setattr(_serialize, "main_only_names", frozenset({"pool"}))
    ways: list[bool] = []
    real = _serialize._pickle

    def spy(obj: object, fast: bool) -> list[object]:
        ways.append(fast)
        return real(obj, fast)

    monkeypatch.setattr(_serialize, "_pickle", spy)
    data = ([{"a": 1}, (2.5, "b")], {"k": [3]})
    assert pickle.loads(_serialize.dumps(data)[0]) == data
    assert ways == [True]


def test_a_function_bound_only_under_the_guard_travels_by_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    main = __import__("sys").modules["__main__"]
    monkeypatch.setattr(_guarded_function, "__module__", "__main__")
    monkeypatch.setattr(_guarded_function, "__qualname__", "guarded")
    monkeypatch.setattr(main, "guarded", _guarded_function, raising=False)
    monkeypatch.setattr(_serialize, "main_only_names", frozenset({"guarded"}))
    call = _serialize.dumps((_guarded_function, 41))
    frame = _serialize.dumps_in_band(_guarded_function)
    monkeypatch.delattr(main, "guarded")  # as on a worker: its __main__ never ran the guard
    fn, arg = _serialize.loads(call)
    assert fn(arg) == 42
    assert pickle.loads(frame)(1) == 2
