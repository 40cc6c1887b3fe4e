"""Jetson power modes (``nvpmodel``) per module: which modes exist and which one is the fastest.

nvpmodel ids and names differ between modules and JetPack releases: on a Jetson Nano 0 is MAXN (10 W) and 1
is 5W; on an AGX Orin 0 is MAXN and 1..3 are 15W/30W/50W; on an Orin Nano with JetPack 6.0/6.1 0 is 15W, its
fastest mode, while JetPack 6.2 adds 25W and MAXN_SUPER (id 2). So nothing here assumes "mode 0 = MAXN":

1. the device's own ``/etc/nvpmodel.conf`` (L4T links it to its module's configuration; each mode is a line
   ``< POWER_MODEL ID=2 NAME=MAXN_SUPER >``) is read first (``$SNP_EDGE_NVPMODEL_CONF`` names another file);
2. where it cannot be read (a container), :data:`MODULES` below, keyed by ``/proc/device-tree/model``;
3. else mode 0, the fastest mode of every module in :data:`MODULES` on the JetPack it was written for.

The fastest mode is the first of :data:`FASTEST_NAMES` the module has, else the one with the most watts in
its name (Orin Nano on JetPack 6.0/6.1: 15W). Pure Python 3.6; nothing here runs a command.
"""

import os
import re

NVPMODEL_CONF = "/etc/nvpmodel.conf"
NVPMODEL_CONF_ENV = "SNP_EDGE_NVPMODEL_CONF"
DEVICE_TREE_MODEL = "/proc/device-tree/model"
FASTEST_NAMES = ("MAXN_SUPER", "MAXN")  # preferred in this order, where a module has them

# (what /proc/device-tree/model contains, {nvpmodel id: name}); the first match wins, so specific names first.
# From the power-mode tables of NVIDIA's Jetson Linux developer guides (L4T R32.7 for the Nano, R35/R36.4 for
# Orin); the device's /etc/nvpmodel.conf overrides them, so a JetPack that renumbers modes is still right.
MODULES = (
    ("Orin Nano", {0: "15W", 1: "7W"}),                       # Orin Nano 8GB, JetPack 5.1.1 - 6.1
    ("Orin NX", {0: "MAXN", 1: "10W", 2: "15W", 3: "25W"}),   # Orin NX 16GB
    ("AGX Orin", {0: "MAXN", 1: "15W", 2: "30W", 3: "50W"}),  # AGX Orin 64GB (32GB: 3 = 40W)
    ("Jetson Nano", {0: "MAXN", 1: "5W"}),                    # Jetson Nano 4GB: MAXN = 10 W
)

_POWER_MODEL = re.compile(r"^<\s*POWER_MODEL\s+ID\s*=\s*(\d+)\s+NAME\s*=\s*([^\s>]+)\s*>", re.MULTILINE)
_WATTS = re.compile(r"(\d+)W\b")


def parse_nvpmodel_conf(text):
    """``{id: name}`` of the ``< POWER_MODEL ID=.. NAME=.. >`` lines of an nvpmodel configuration ({} if none)."""
    return {int(i): name for i, name in _POWER_MODEL.findall(text or "")}


def modes_for_model(model):
    """``{id: name}`` of the module whose device-tree model string is ``model``, from :data:`MODULES`; None
    for a module the table does not know."""
    for key, modes in MODULES:
        if model and key.lower() in model.lower():
            return dict(modes)
    return None


def fastest(modes):
    """``{"id", "mode"}`` of the fastest mode in ``{id: name}`` (see the module docstring); None if empty."""
    if not modes:
        return None
    by_name = {name.upper(): i for i, name in modes.items()}
    for name in FASTEST_NAMES:
        if name in by_name:
            return {"id": by_name[name], "mode": modes[by_name[name]]}
    watts = [(int(m.group(1)), i) for i, name in modes.items() for m in [_WATTS.search(name)] if m]
    i = max(watts)[1] if watts else min(modes)
    return {"id": i, "mode": modes[i]}


def _read(path):
    try:
        with open(path, "r") as f:
            return f.read().strip("\x00\n ")
    except (OSError, UnicodeDecodeError):
        return None


def power_modes(conf_path=None, model=None):
    """What this Jetson offers: ``{"modes": {id: name}, "source": "nvpmodel.conf" | "table" | None,
    "fastest": {"id", "mode"}, "module": device-tree model}``. Reads ``conf_path`` (default
    ``$SNP_EDGE_NVPMODEL_CONF`` or /etc/nvpmodel.conf) and ``model`` (default /proc/device-tree/model)."""
    model = model if model is not None else _read(DEVICE_TREE_MODEL)
    modes = parse_nvpmodel_conf(_read(conf_path or os.environ.get(NVPMODEL_CONF_ENV) or NVPMODEL_CONF))
    source = "nvpmodel.conf" if modes else None
    if not modes:
        modes = modes_for_model(model) or {}
        source = "table" if modes else None
    best = fastest(modes) or {"id": 0, "mode": "mode 0"}
    return {"modes": modes, "source": source, "fastest": best, "module": model}


def is_fastest(mode, info):
    """Whether the current ``mode`` (``{"mode", "id"}`` from nvpmodel -q) is ``info``'s fastest mode."""
    if not mode:
        return False
    best = info["fastest"]
    if mode.get("id") is not None:
        return mode["id"] == best["id"]
    return mode.get("mode") == best["mode"]
