"""Check that an installed transport is found the way the launcher and the workers find it."""

from __future__ import annotations

from importlib.metadata import entry_points

from scoop import _plugins
from scoop.transport import BindOptions, ConnectOptions, TransportInfo

#: How long the round trip through a freshly made pair of endpoints may take.
ROUND_TRIP_TIMEOUT = 10.0


class RegistrationError(AssertionError):
    """An installed transport is not registered as scoop needs it to be.

    An AssertionError, so that pytest reports it as a test failure with its message.
    """


def check_registration(name: str, distribution: str) -> TransportInfo:
    """Check that transport ``name`` is installed by ``distribution`` and works once found.

    Run it in your tests after installing your distribution (not from a source checkout). It
    checks what the launcher and the workers rely on:

    * a plugin in the ``scoop.transports`` entry point group returns a ``TransportInfo`` named
      ``name``, and that plugin comes from ``distribution``;
    * the info has URL schemes and a description (``--list-transports`` shows them);
    * ``--transport name`` selects it, and a worker loading it straight from the plugin module
      (the fast path the launcher hands to workers) gets the same transport;
    * its factories make a broker endpoint and a worker endpoint that exchange a message both ways.

    Returns the transport's ``TransportInfo``. Raises :class:`RegistrationError` naming the first
    problem found.
    """
    try:
        installed = _plugins.installed_transports()
    except Exception as exc:  # a broken plugin anywhere stops discovery: say so
        raise RegistrationError(f"transport discovery failed: {exc}") from exc
    found = installed.get(name)
    if found is None:
        declared = sorted(
            f"{ep.name} = {ep.value}" for ep in entry_points(group=_plugins.ENTRY_POINT_GROUP)
        )
        raise RegistrationError(
            f"no installed transport is named {name!r} (installed: "
            f"{', '.join(sorted(installed)) or 'none'}; entry points in the "
            f"{_plugins.ENTRY_POINT_GROUP!r} group: {'; '.join(declared) or 'none'}). Is "
            f"{distribution!r} installed, does it declare the entry point, and does its "
            "scoop_transports() hook return a TransportInfo with this name?"
        )
    if found.distribution.lower().replace("_", "-") != distribution.lower().replace("_", "-"):
        raise RegistrationError(
            f"transport {name!r} comes from distribution {found.distribution!r} "
            f"(plugin {found.plugin_name!r}), not {distribution!r}"
        )
    info = found.info
    if not info.schemes:
        raise RegistrationError(f"transport {name!r} declares no URL schemes")
    if not info.description:
        raise RegistrationError(f"transport {name!r} has no description")
    _check_plugin_module(name, found.module)
    # The launcher finds transports by a faster path than full discovery: both must agree.
    chosen = _plugins.choose_transport(name)
    if (chosen.info.name, chosen.module) != (name, found.module):
        raise RegistrationError(
            f"--transport {name} selects {chosen.info.name!r} from plugin module "
            f"{chosen.module!r}, not the installed transport from {found.module!r}"
        )
    _round_trip(info)
    return info


def _check_plugin_module(name: str, module: str) -> None:
    # Workers import the plugin module the launcher names instead of scanning entry points;
    # discovery still works if that fails, but every worker then pays for the scan.
    try:
        info = _plugins.transport_from_module(name, module)
    except Exception as exc:
        raise RegistrationError(
            f"transport {name!r}: importing its plugin module {module!r} and calling "
            f"scoop_transports() failed: {exc!r}"
        ) from exc
    if info is None:
        raise RegistrationError(
            f"transport {name!r}: scoop_transports() of module {module!r} returns no usable "
            "transport of that name (as workers load it)"
        )


def _round_trip(info: TransportInfo) -> None:
    broker = info.bind(BindOptions())
    try:
        worker = info.connect(ConnectOptions(address=broker.address))
        try:
            worker.send([b"ping"])
            received = broker.recv(ROUND_TRIP_TIMEOUT)
            if received is None or [bytes(f) for f in received[1]] != [b"ping"]:
                raise RegistrationError(
                    f"transport {info.name!r}: the broker endpoint at {broker.address} did not "
                    f"receive a worker's message within {ROUND_TRIP_TIMEOUT} s (got {received!r})"
                )
            broker.send(received[0], [b"pong"])
            answer = worker.recv(ROUND_TRIP_TIMEOUT)
            if answer is None or [bytes(f) for f in answer] != [b"pong"]:
                raise RegistrationError(
                    f"transport {info.name!r}: the worker endpoint did not receive the broker's "
                    f"answer within {ROUND_TRIP_TIMEOUT} s (got {answer!r})"
                )
        finally:
            worker.close()
    finally:
        broker.close()
