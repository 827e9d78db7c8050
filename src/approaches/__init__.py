"""One module per approach; each exposes Appr (see _base.py for the shared training loop and its hooks)."""
