"""Real ssh "hosts" on this machine, for the launcher's ssh tests.

Each host is a network namespace with its own address on a private bridge, its own hostname (a
UTS namespace) and its own OpenSSH server. :mod:`tests.hosts.netns` holds the machinery and
:mod:`tests.hosts.fixtures` the pytest fixtures (``test_hosts``).
"""
