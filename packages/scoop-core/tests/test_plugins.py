"""Transport discovery: the hook's results are checked and errors name the plugin."""

import pytest

from scoop import _plugins
from scoop.errors import UnknownTransportError
from scoop.hookspecs import hookimpl
from scoop.testing import memory_transport
from scoop.transport import API_VERSION, TransportInfo, lazy_factory


def manager_with(plugin, name="test-plugin"):
    manager = _plugins.new_manager()
    manager.register(plugin, name=name)
    return manager


def test_a_plugin_returning_a_transport_is_collected():
    class Plugin:
        @hookimpl
        def scoop_transports(self):
            return [memory_transport()]

    found = _plugins.collect(manager_with(Plugin()))
    assert list(found) == ["memory"] and found["memory"].plugin_name == "test-plugin"


def test_other_api_version_is_refused_naming_plugin_and_versions():
    info = memory_transport()

    class Plugin:
        @hookimpl
        def scoop_transports(self):
            return [TransportInfo(**{**info.__dict__, "api_version": API_VERSION + 1})]

    with pytest.raises(UnknownTransportError, match=r"'test-plugin'.*version 2.*version 1"):
        _plugins.collect(manager_with(Plugin()))


def test_wrong_return_type_names_the_plugin():
    class Plugin:
        @hookimpl
        def scoop_transports(self):
            return ["not a TransportInfo"]

    with pytest.raises(TypeError, match=r"plugin 'test-plugin'.*TransportInfo"):
        _plugins.collect(manager_with(Plugin()))


def test_lazy_factory_imports_on_first_call():
    factory = lazy_factory("scoop.testing._memory:bind")
    assert "lazy_factory" in factory.__qualname__
    endpoint = factory(__import__("scoop.transport").transport.BindOptions())
    try:
        assert endpoint.address.startswith("memory://")
    finally:
        endpoint.close()
    with pytest.raises(ValueError, match=r"package\.module:function"):
        lazy_factory("no-colon-here")
