"""The analysis of results, which plot_results.py calls: results.py (result files written, then read with checks),
metrics.py (ACC, BWT, forgetting, intervals, paired tests: pure functions), tables.py (result tables as text, CSV,
Markdown, LaTeX), hat_masks.py (HAT's mask analysis)."""
