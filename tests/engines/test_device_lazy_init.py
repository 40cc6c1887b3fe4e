"""``engines/__init__`` is lazy: importing the shared kernel (errors, fileio, ...) does not load the application
chain; ``Classifier`` is imported on first use."""

import subprocess
import sys

CODE = """
import sys
import snp_edge.engines.common.errors
loaded = sorted(m for m in sys.modules if m.startswith("snp_edge.engines"))
assert loaded == ["snp_edge.engines", "snp_edge.engines.common", "snp_edge.engines.common.errors"], loaded
import snp_edge.engines as engines
from snp_edge.engines import Classifier
assert engines.Classifier is Classifier and Classifier.__module__ == "snp_edge.engines.classify"
try:
    engines.no_such_name
except AttributeError as exc:
    assert str(exc) == "module 'snp_edge.engines' has no attribute 'no_such_name'", exc
else:
    raise AssertionError("no AttributeError")
print("ok")
"""


def test_importing_the_kernel_does_not_load_the_classifier():
    res = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
