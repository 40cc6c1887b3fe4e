"""``python -m snp_edge.train {finetune,eval} ...``: the stage's subcommands without the main CLI (torchrun-friendly)."""

import sys

from .cli import main

sys.exit(main())
