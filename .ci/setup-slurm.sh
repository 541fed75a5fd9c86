#!/usr/bin/env bash
# Install what the SLURM test cluster (tests/hosts/slurm.py) needs: the controller and node
# daemons, the client commands (sbatch, srun, squeue, scontrol, scancel) and munge. Idempotent:
# calls apt-get only for what is missing. Needs root. Starts no system service: the fixture runs
# its own daemons with its own configuration, and a system slurmctld/munged would be in the way.
set -euo pipefail

missing=()
[ -x /usr/sbin/slurmctld ] || missing+=(slurmctld)
[ -x /usr/sbin/slurmd ] || missing+=(slurmd)
for tool in sbatch srun squeue scontrol scancel sinfo; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing+=(slurm-client)
        break
    fi
done
[ -x /usr/sbin/munged ] || missing+=(munge)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-slurm: need root to install: ${missing[*]}" >&2
    exit 1
fi

# A policy-rc.d that exits 101 keeps the packages' maintainer scripts from starting the
# services (invoke-rc.d and deb-systemd-invoke both ask it). Put one in place for the install
# only, and put back whatever was there.
policy=/usr/sbin/policy-rc.d
saved=""
restore_policy() {
    if [ -n "$saved" ]; then
        mv -f "$saved" "$policy"
    else
        rm -f "$policy"
    fi
}
if ! { [ -x "$policy" ] && grep -qx 'exit 101' "$policy"; }; then
    if [ -e "$policy" ]; then
        saved="$(mktemp /usr/sbin/policy-rc.d.saved.XXXXXX)"
        cp -p "$policy" "$saved"
    fi
    printf '#!/bin/sh\n# setup-slurm.sh: start no service while installing\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap restore_policy EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
