"""Sweeps, which src/run_multi.py runs: grid.py plans the runs, local.py runs them as parallel processes here (with
mps.py for runs sharing a GPU), slurm.py writes and submits them as a job array."""
