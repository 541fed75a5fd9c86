"""An Executor whose workers run on other hosts (the ssh test hosts): ``executor_hosts.py CONFIG``.

Prints ``HOSTS [...]``, the hosts where a map's tasks ran (a function of this ``__main__``,
so it travels by value), then ``PIDS [...]``, the remote workers' process ids, once they ended.
"""

import json
import socket
import sys
import time

import scoop


def where(_):
    time.sleep(0.02)  # blocking, so that both workers get some
    return socket.gethostname()


if __name__ == "__main__":
    with scoop.Executor(hosts=["h0", "h1"], ssh_config=sys.argv[1]) as executor:
        hosts = sorted(set(executor.map(where, range(40))))
    print("HOSTS " + json.dumps(hosts), flush=True)
