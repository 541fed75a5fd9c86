#!/bin/bash
# Run examples/full_tree.py with SCOOP on an LSF allocation.
#
#   cd /path/to/scoop && bsub < examples/submit/lsf.sh
#
# The launcher reads the allocation from $LSB_MCPU_HOSTS ("hostA 4 hostB 4") and starts one worker
# per slot: 8 workers here, 4 per host. The root worker, which runs the script's __main__, goes on
# the first host. Workers on the other hosts are started with blaunch (no ssh needed), and bkill
# ends them with the job.
# Pass -n to the launcher to run more or fewer workers than the allocation has slots.
#
#BSUB -J scoop-full-tree
#BSUB -n 8
#BSUB -R "span[ptile=4]"
#BSUB -W 00:10
#BSUB -o scoop-full-tree-%J.out

set -euo pipefail

# bsub starts the job in the directory it was called from (LS_SUBCWD).
cd "${LS_SUBCWD:-.}"

# Use the Python environment where SCOOP is installed, for example:
#   source .venv/bin/activate
python -m scoop_launch examples/full_tree.py
