"""The shared kernel: what the device code and the host (``snp_edge``, ``export``, ``bench``) both import.
Python 3.6, standard library only at import time (numpy and ONNX Runtime inside functions); it imports nothing
of ``engines/`` outside this folder (tests/test_architecture.py checks it). Shipped in every bundle with the rest
of ``engines/``. Nothing is imported here: import the module you need (``from .common.errors import ...``).

    errors.py     exception types and exit statuses
    fileio.py     atomic writes, staged folders, the one JSON reader
    schema.py     field-by-field checks of parsed JSON/YAML (types, ranges, finite numbers): the one checker
    stats.py      latency statistics (mean, median, p90, p95, p99, throughput)
    argtypes.py   command-line building blocks: range-checked types, the help formatter
    targets.py    the device-target table (Nano, Orin, RTX 3090, CPU boards): profiles, alignment, DLA
    runner.py     the one command runner of both command lines: exception -> exit status and one line, signals
    degenerate.py outputs that carry no information, numbers FP16 cannot hold (shared by every gate)
    ort.py        the one place ONNX Runtime sessions are made
"""
