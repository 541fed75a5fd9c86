#!/usr/bin/env bash
# Install what the network-namespace test hosts (tests/hosts) need: OpenSSH server, iproute2
# (ip netns), util-linux (unshare) and the OpenSSH client tools (ssh-keygen). Idempotent: calls
# apt-get only for what is missing. Needs root.
set -euo pipefail

missing=()
command -v /usr/sbin/sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-test-hosts: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's package may start the system sshd (it does not without systemd); the tests run their
# own daemons and never use it. sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd
chmod 0755 /run/sshd
