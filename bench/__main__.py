"""``python -m bench ...`` is the snp-edge command line (``bench`` and ``compare`` are its subcommands)."""

import sys

from snp_edge.cli import main

sys.exit(main())
