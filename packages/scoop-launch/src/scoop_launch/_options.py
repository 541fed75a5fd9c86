"""Options for remote hosts, kept apart from the ssh code so that local runs never import it.

(paramiko takes most of a second to import; only a run with remote hosts pays for it.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Default time to wait for a host to answer, in seconds (``--ssh-timeout``).
CONNECT_TIMEOUT = 15.0
#: Default time a host may stay silent before the run is given up, in seconds
#: (``--ssh-keepalive``).
SILENCE_TIMEOUT = 30.0


class RemoteHostError(Exception):
    """A host could not be used; the message names the host and the cause."""


@dataclass
class SshOptions:
    """How to reach remote hosts and start workers there."""

    python: str
    path: str
    pythonpath: str | None = None
    prolog: str | None = None
    nice: int | None = None
    ssh_config: str | None = None
    accept_unknown_host_keys: bool = False
    connect_timeout: float = CONNECT_TIMEOUT
    #: A connection that carries nothing, keep-alive probes included, for this long is dead.
    silence_timeout: float = SILENCE_TIMEOUT
    extra_env: dict[str, str] = field(default_factory=dict)
