"""The per-host agent removes what its killed workers left in /tmp (scoop._direct)."""

import os
import sys

import pytest

from scoop._direct import DirectChannel
from scoop._protocol import Codec
from scoop_launch._agent import _remove_channels


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the direct path is Linux's")
def test_the_agent_clears_its_killed_workers_channels():
    secret = os.urandom(32)
    channel = DirectChannel(Codec(secret), 4, "worker 4")
    channel._socket.close()  # its process was killed: the socket's file stays
    assert os.listdir(channel.directory) == ["4"]
    _remove_channels({"worker": {"secret": secret.hex()}, "indices": [4]})
    assert not os.path.exists(channel.directory)
