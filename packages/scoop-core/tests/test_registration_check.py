"""scoop.testing.check_registration names what is wrong with a transport's registration."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scoop import _plugins
from scoop.testing import RegistrationError, check_registration
from scoop.transport import API_VERSION, BindOptions, TransportInfo


def test_a_transport_nobody_installed_is_named_with_what_is_installed() -> None:
    with pytest.raises(RegistrationError) as caught:
        check_registration("carrier-pigeon", "scoop-carrier-pigeon")
    message = str(caught.value)
    assert "no installed transport is named 'carrier-pigeon'" in message
    assert "'scoop.transports' group" in message
    assert "scoop-carrier-pigeon" in message
    assert isinstance(caught.value, AssertionError)  # pytest reports it as a failed check


@pytest.fixture
def installed_one() -> _plugins.InstalledTransport:
    installed = _plugins.installed_transports()
    if not installed:
        pytest.skip("no transport is installed")
    return next(iter(installed.values()))


def test_the_wrong_distribution_is_named(installed_one) -> None:
    with pytest.raises(RegistrationError, match="comes from distribution"):
        check_registration(installed_one.info.name, "someone-else")


def test_a_plugin_module_that_does_not_provide_it_is_named(installed_one, monkeypatch) -> None:
    moved = _plugins.InstalledTransport(
        installed_one.info,
        installed_one.plugin_name,
        installed_one.distribution,
        installed_one.version,
        module="scoop.errors",  # importable, but has no scoop_transports()
    )
    name = installed_one.info.name
    monkeypatch.setattr(_plugins, "installed_transports", lambda: {name: moved})
    with pytest.raises(RegistrationError, match=r"importing its plugin module 'scoop\.errors'"):
        check_registration(name, installed_one.distribution)


def test_endpoints_that_do_not_deliver_are_named(installed_one, monkeypatch) -> None:
    from scoop.testing import memory_transport

    memory = memory_transport()
    elsewhere = memory.bind(BindOptions())
    # Workers of this transport connect to another endpoint than the broker's: nothing arrives.
    deaf = TransportInfo(
        name=installed_one.info.name,
        schemes=installed_one.info.schemes,
        api_version=API_VERSION,
        bind=memory.bind,
        connect=lambda options: memory.connect(replace(options, address=elsewhere.address)),
        description="deaf",
    )
    broken = _plugins.InstalledTransport(
        deaf,
        installed_one.plugin_name,
        installed_one.distribution,
        installed_one.version,
        installed_one.module,
    )
    monkeypatch.setattr(_plugins, "installed_transports", lambda: {deaf.name: broken})
    monkeypatch.setattr("scoop.testing._registration.ROUND_TRIP_TIMEOUT", 0.2)
    try:
        with pytest.raises(RegistrationError, match="did not receive a worker's message"):
            check_registration(deaf.name, installed_one.distribution)
    finally:
        elsewhere.close()
