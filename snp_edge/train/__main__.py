"""``python -m snp_edge.train {finetune,eval} ...`` (torchrun-friendly): the snp-edge command line."""

import sys

from snp_edge.cli import main

sys.exit(main())
