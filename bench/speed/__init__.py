"""Speed benchmarks: epoch.py, core.py, networks.py on CPU or GPU; gpu.py and sweep.py, prepared runs for a GPU."""
