"""snp-edge: offline SNP (Structured Neuron-level Pruning) of timm Vision Transformers.

Host stage: :func:`prune` a timm DeiT/ViT into a smaller dense model, :func:`save_pruned` it as
safetensors + JSON, :func:`load_pruned` it back. See README.md for the pipeline around it.
"""

__version__ = "0.1.0"

from .api import PruneResult, prune  # noqa: E402
from .errors import SnpEdgeError  # noqa: E402
from .models import ModelHandle, load_model, resolve_model  # noqa: E402
from .saved import load_pruned, load_pruned_handle, save_pruned  # noqa: E402

__all__ = ["ModelHandle", "PruneResult", "SnpEdgeError", "load_model", "load_pruned", "load_pruned_handle",
           "prune", "resolve_model", "save_pruned", "__version__"]
