"""Issue 22 point 8: the notice a model pruned without calibration images carries names the prune step, not
``--calib`` in general (``snp-edge bundle --calib X`` printed "no --calib given")."""

from snp_edge.calib import load_calibration


def test_noise_calibration_notice_names_the_prune_step():
    cal = load_calibration(None, 2, {"input_size": (3, 8, 8)})
    assert cal.source == "noise" and cal.images.shape == (2, 3, 8, 8)
    assert cal.notice.startswith("pruned without calibration images (snp-edge prune --calib)")
    assert "no --calib given" not in cal.notice
