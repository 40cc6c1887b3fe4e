"""snp-edge: offline SNP (Structured Neuron-level Pruning) of timm Vision Transformers for edge GPUs.

Layers, bottom up (nothing imports a layer above its own; ``tests/test_architecture.py`` checks it):

* ``snp_edge.engines`` (folder ``engines/``): device code, Python 3.6-clean, and the definitions both sides
  share (device targets, exit statuses, atomic outputs, latency statistics, logit comparison, ORT sessions).
* host core (this package's modules): timm models (:mod:`.vit`, :mod:`.models`, :mod:`.sources`), dependency
  groups (:mod:`.groups`), the SNP criteria (:mod:`.criteria`), surgery (:mod:`.surgery`, :mod:`.arch`),
  width allocation (:mod:`.allocation`), what to prune as one object (:mod:`.spec`), targets and presets
  (:mod:`.targets`, :mod:`.presets`), the saved format (:mod:`.saved`), the host stage as one call (:mod:`.api`).
* stages: ``snp_edge.export`` (``export/``), ``snp_edge.bench`` (``bench/``), :mod:`snp_edge.train`.
* application: :mod:`snp_edge.cli`, the ``snp-edge`` command line and its ``run``/``compare`` orchestrator.

Library use: :func:`prune` a timm DeiT/ViT into a smaller dense model, :func:`save_pruned` it as
safetensors + JSON, :func:`load_pruned` it back. These names import torch on first use, not at import.
"""

__version__ = "0.2.0"

_LAZY = {
    "prune": "api", "prune_spec": "api", "PruneResult": "api", "PruneSpec": "spec",
    "SnpEdgeError": "errors",
    "ModelHandle": "models", "load_model": "models",
    "load_handle": "sources", "source_kind": "sources",
    "load_pruned": "saved", "load_pruned_handle": "saved", "save_pruned": "saved",
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
