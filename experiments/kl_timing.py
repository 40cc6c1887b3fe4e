"""How long ``--embed-score kl`` takes on DeiT-S (random weights, 64 noise images at 224 px, 1 thread):
the default scoring, and one kl estimate on 16 images, extrapolated to the 7 estimates x 4 batches of a prune.

    python -m experiments.kl_timing > kl_timing.json
"""

from __future__ import annotations

import json
import os
import time

import torch

from snp_edge.criteria import ScoreOptions, compute_scores
from snp_edge.criteria.residual import kl_curvature, reference_log_probs
from snp_edge.models import load_model


def main() -> None:
    torch.set_num_threads(1)
    model = load_model("deit_small_patch16_224", "random").model.eval()
    x = torch.randn(64, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    load0 = os.getloadavg()
    t = time.perf_counter()
    compute_scores(model, x, ScoreOptions())
    t_default = time.perf_counter() - t
    t = time.perf_counter()
    ref = reference_log_probs(model, x, 16)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    kl_curvature(model, x[:16], ref[:1], torch.ones(384), 16, torch.Generator().manual_seed(0))
    t_est16 = time.perf_counter() - t
    E, chunk, floor = 384, 32, 192
    est = (E - floor) // chunk + 1
    print(json.dumps({"default_scores_s": t_default, "reference_s": t_ref, "one_estimate_16_images_s": t_est16,
                      "estimates": est, "predicted_kl_s_64_images": t_ref + est * 4 * t_est16,
                      "load_before": load0, "load_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
