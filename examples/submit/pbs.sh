#!/bin/bash
# Run examples/full_tree.py with SCOOP on a PBS / Torque allocation.
#
#   cd /path/to/scoop && qsub examples/submit/pbs.sh
#
# The launcher reads the allocation from $PBS_NODEFILE (one line per slot) and starts one worker
# per slot: 2 nodes x 4 = 8 workers here. The root worker, which runs the script's __main__, goes
# on the first node. Workers on the other nodes are started with pbsdsh (no ssh needed). pbsdsh
# carries no standard input, so each node's agent connects back to the launcher over TCP and
# shows a ticket from ~/.scoop/runs/ (readable by you only): the nodes must share your home
# directory (or $SCOOP_RUNS_DIR) and reach this node. Where that cannot be, add
# --launcher mpiexec (or --launcher ssh).
# Pass -n to the launcher to run more or fewer workers than the allocation has slots.
#
# Torque asks for nodes like this; on PBS Pro, use the select line instead (mpiprocs sets how
# many times each node appears in $PBS_NODEFILE).
#PBS -N scoop-full-tree
#PBS -l nodes=2:ppn=4
##PBS -l select=2:ncpus=4:mpiprocs=4
#PBS -l walltime=00:10:00
#PBS -j oe

set -euo pipefail

# PBS starts jobs in the home directory; go back to where qsub was called.
cd "$PBS_O_WORKDIR"

# Use the Python environment where SCOOP is installed, for example:
#   source .venv/bin/activate
python -m scoop_launch examples/full_tree.py
