"""Built-in pruning configurations (``NAME.yaml`` here): the SNP paper's released widths and our own.

Listing and reading them needs no torch, so the command line's help and choices stay fast.
"""

from __future__ import annotations

from importlib import resources

import yaml

from ..errors import SnpEdgeError


def list_presets() -> list[str]:
    """Names of the built-in presets, sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(__name__).iterdir()
                  if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict:
    """The preset ``name`` as a configuration dict (see :mod:`snp_edge.targets` for its keys)."""
    if name not in list_presets():
        raise SnpEdgeError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
    return yaml.safe_load(resources.files(__name__).joinpath(f"{name}.yaml").read_text())
