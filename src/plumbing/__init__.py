"""The run's plumbing, shared by run.py, run_multi.py and plot_results.py: utils.py (paths, errors, flag types,
modules found by name, device and seeds), hparams.py (an approach's hyperparameters and their flags), files.py
(atomic writes and the lock on a run's output), checkpoints.py (--resume), logs.py (the per-epoch log and console
reports), interrupts.py (Ctrl-C, SIGTERM and SIGUSR1 turned into a clean stop)."""
