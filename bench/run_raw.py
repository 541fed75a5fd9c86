"""Raw pyzmq floors: what the transport alone can do, with no scheduler.

    python bench/run_raw.py --workload submit --mode quick    # the broker farm, tasks/s
    python bench/run_raw.py --workload latency --mode quick   # ping-pong, round trip in us

* farm: a client process (this one, DEALER) sends n pickled ``(neg, i)`` tasks to a broker
  process (ROUTER front, ROUTER back) that deals them round-robin to 2 worker processes
  (DEALER), which unpickle, run and send the pickled result back through the broker; one
  message per task, no batching. The same path as SCOOP's root -> broker -> worker.
* ping-pong: a 64-byte message between a DEALER here and a ROUTER echo in another process,
  over loopback TCP: the round trip of one small message between two processes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads as w


def _broker(front_port: int, back_port: int) -> None:
    import zmq

    context = zmq.Context()
    front = context.socket(zmq.ROUTER)
    front.bind(f"tcp://127.0.0.1:{front_port}")
    back = context.socket(zmq.ROUTER)
    back.bind(f"tcp://127.0.0.1:{back_port}")
    workers: list[bytes] = []
    while len(workers) < w.WORKERS:  # each worker says hello
        workers.append(back.recv_multipart()[0])
    front.send_multipart([front.recv_multipart()[0], b"ready"])
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    turn = 0
    while True:
        for sock, _ in poller.poll():
            if sock is front:
                client, body = front.recv_multipart()
                if body == b"stop":
                    for worker in workers:
                        back.send_multipart([worker, b"", b"stop"])
                    return
                back.send_multipart([workers[turn], client, body])
                turn = (turn + 1) % len(workers)
            else:
                _, client, body = back.recv_multipart()
                front.send_multipart([client, body])


def _farm_worker(back_port: int) -> None:
    import zmq

    sock = zmq.Context().socket(zmq.DEALER)
    sock.connect(f"tcp://127.0.0.1:{back_port}")
    sock.send_multipart([b"", b"hello"])
    while True:
        client, body = sock.recv_multipart()
        if body == b"stop":
            return
        fn, arg = pickle.loads(body)
        sock.send_multipart([client, pickle.dumps(fn(arg))])


def _echo(port: int) -> None:
    import zmq

    sock = zmq.Context().socket(zmq.ROUTER)
    sock.bind(f"tcp://127.0.0.1:{port}")
    while True:
        frames = sock.recv_multipart()
        if frames[1] == b"stop":
            return
        sock.send_multipart(frames)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_farm(size: dict[str, int]) -> None:
    import zmq

    n = size["tiny"]
    front_port, back_port = _free_port(), _free_port()
    procs = [multiprocessing.Process(target=_broker, args=(front_port, back_port))]
    procs += [
        multiprocessing.Process(target=_farm_worker, args=(back_port,)) for _ in range(w.WORKERS)
    ]
    for p in procs:
        p.start()
    sock = zmq.Context().socket(zmq.DEALER)
    sock.connect(f"tcp://127.0.0.1:{front_port}")
    sock.send(b"hello")
    sock.recv()

    def once() -> float:
        start = time.perf_counter()
        for i in range(n):
            sock.send(pickle.dumps((w.neg, i)))
        results = [pickle.loads(sock.recv()) for _ in range(n)]
        elapsed = time.perf_counter() - start
        if sorted(results) != sorted(-i for i in range(n)):  # the farm does not reorder
            raise AssertionError("farm: wrong results")
        return n / elapsed

    try:
        values = w.repeat(once, size["repeats"])
    finally:
        sock.send(b"stop")
        for p in procs:
            p.join(10)
    w.emit(
        "submit",
        "pyzmq farm (floor)",
        "tasks/s",
        "tasks/s",
        values,
        f"n={n}; client -> ROUTER/ROUTER broker -> 2 DEALER workers, one message per task",
    )


def bench_pingpong(size: dict[str, int]) -> None:
    import zmq

    count = 2000 if size["latency"] >= 100 else 50
    port = _free_port()
    echo = multiprocessing.Process(target=_echo, args=(port,))
    echo.start()
    sock = zmq.Context().socket(zmq.DEALER)
    sock.connect(f"tcp://127.0.0.1:{port}")
    message = b"x" * 64

    def once() -> float:
        start = time.perf_counter()
        for _ in range(count):
            sock.send(message)
            if sock.recv() != message:
                raise AssertionError("ping-pong: wrong message")
        return (time.perf_counter() - start) / count * 1e6

    try:
        values = w.repeat(once, size["repeats"])
    finally:
        sock.send(b"stop")
        echo.join(10)
    w.emit(
        "latency",
        "pyzmq ping-pong (floor)",
        "latency",
        "us",
        values,
        f"64-byte DEALER -> ROUTER echo in another process, round trip, mean of {count}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", required=True, choices=["submit", "latency"])
    parser.add_argument("--mode", default="full", choices=sorted(w.SIZES))
    options = parser.parse_args()
    size = w.sizes(options.mode)
    if options.workload == "submit":
        bench_farm(size)
    else:
        bench_pingpong(size)


if __name__ == "__main__":
    main()
