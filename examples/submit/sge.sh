#!/bin/bash
# Run examples/full_tree.py with SCOOP on a Grid Engine (SGE, OGE, SoGE, UGE) allocation.
#
#   cd /path/to/scoop && qsub examples/submit/sge.sh
#
# The launcher reads the allocation from $PE_HOSTFILE (host, slots, queue, processors) and starts
# one worker per slot: 8 workers here, spread over hosts as the parallel environment decides.
# The root worker, which runs the script's __main__, goes on the first host listed. Workers on
# other hosts are started with `qrsh -inherit` (no ssh needed): the parallel environment must
# allow it ("control_slaves TRUE" in `qconf -sp mpi`).
# Pass -n to the launcher to run more or fewer workers than the allocation has slots.
#
# Parallel environment names are site specific ("qconf -spl" lists them); replace "mpi" with one
# that spreads slots over several hosts.
#$ -N scoop-full-tree
#$ -S /bin/bash
#$ -cwd
#$ -j y
#$ -pe mpi 8
#$ -l h_rt=00:10:00

set -euo pipefail

# Use the Python environment where SCOOP is installed, for example:
#   source .venv/bin/activate
python -m scoop_launch examples/full_tree.py
