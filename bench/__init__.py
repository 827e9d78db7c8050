"""Measurements too heavy for the tests, and the scripts behind the docs' measured tables:

- speed/: speed benchmarks (our loop against the original's, the training step against the matmul rate, the GPU
  report, sweep throughput, an epoch of the later literature's networks); they print ratios measured side by side.
- tables/: the scripts that reproduce the docs' result tables on real data (every approach; the modern networks).
- common.py: what they and tools/parity.py (parity with the original code, a correctness check) share.

Each script runs from anywhere: `python bench/speed/epoch.py --help`.
"""
