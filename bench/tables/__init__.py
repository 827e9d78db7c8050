"""The scripts that reproduce the docs' result tables on real data: approaches.py, modern.py."""
