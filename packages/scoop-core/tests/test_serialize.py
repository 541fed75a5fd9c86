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
