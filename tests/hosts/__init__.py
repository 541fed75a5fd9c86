"""Real "hosts" on this machine, for the launcher's ssh and SLURM tests.

Each host is a network namespace with its own address on a private bridge and its own hostname
(a UTS namespace). :mod:`tests.hosts.netns` builds ssh hosts (each with its own OpenSSH server),
:mod:`tests.hosts.slurm` a SLURM cluster (a controller and compute nodes, no sshd); both on the
machinery of :mod:`tests.hosts._netbase`. :mod:`tests.hosts.fixtures` holds the pytest fixtures
(``test_hosts``, ``slurm_cluster``).
"""
