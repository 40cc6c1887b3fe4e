"""Reproducible experiments of snp-edge (run as ``python -m experiments.<name>``)."""
