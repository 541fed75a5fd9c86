#!/bin/bash
# Run examples/full_tree.py with SCOOP on a SLURM allocation.
#
#   cd /path/to/scoop && sbatch examples/submit/slurm.sh
#
# The launcher finds the allocation by itself (SLURM_JOB_NODELIST and SLURM_TASKS_PER_NODE) and
# starts one worker per task: 2 nodes x 4 tasks = 8 workers here. The root worker, which runs the
# script's __main__, goes on the first node. Workers on the other nodes are started with srun (one
# job step per node, beside this batch step): no ssh to the nodes is needed, and scancel ends
# every process on every node. `python -m scoop_launch --dry-run ...` prints the srun commands.
# Pass -n to the launcher to run more or fewer workers than the allocation has tasks.
#
#SBATCH --job-name=scoop-full-tree
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --time=00:10:00
#SBATCH --output=scoop-full-tree-%j.out

set -euo pipefail

# sbatch starts in the directory it was called from; be explicit about it.
cd "${SLURM_SUBMIT_DIR:-.}"

# Use the Python environment where SCOOP is installed, for example:
#   source .venv/bin/activate
python -m scoop_launch examples/full_tree.py
