"""Bad input: a one-line error on stderr, exit status 2, nothing written."""

import pytest


@pytest.mark.parametrize("argv, message", [
    (["missing.onnx"], "missing.onnx not found"),
    (["dir/missing"], "dir/missing not found"),
    (["{wide}", "--backend", "tensorflow"], "argument --backend: invalid choice: 'tensorflow'"),
    (["{wide}", "--batch", "0"], "argument --batch: 0 is outside [1, 65536]"),
    (["{wide}", "--runs", "-3"], "argument --runs: -3 is outside [1, 10000000]"),
    (["{wide}", "--warmup", "-1"], "argument --warmup: -1 is outside >= 0"),
    (["{wide}", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["{wide}", "--fp16"], "--fp16 needs --backend torch --device cuda"),
    (["{wide}", "--backend", "torch"], "cannot run a onnx candidate on --backend torch"),
    (["{wide}", "--backend", "trt"], "cannot run a onnx candidate on --backend trt"),
    (["{wide}", "--baseline", "nope"], "--baseline 'nope' matches no candidate"),
    (["{wide}", "--baseline", "3"], "--baseline 3 is out of range"),
    (["{wide}", "--top1", "wide=150"], "--top1 expects NAME=PCT"),
    (["{wide}", "--top1", "other=70"], "--top1 'other' matches no candidate"),
    (["{wide}", "{times}"], "cannot mix measurement files with live candidates"),
    (["no_such_timm_model_xyz"], "unknown model"),
])
def test_bad_input(cli, onnx_pair, tmp_path, argv, message):
    times = tmp_path / "t.times.json"
    times.write_text('[{"computeMs": 1.0}]')
    argv = [a.format(wide=onnx_pair[0], times=times) for a in argv]
    out = tmp_path / "out"
    rc, stdout, err = cli("bench", *argv, "--quick", "--out", out)
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "results.json").exists()


def test_bad_measurement_files(cli, tmp_path):
    cases = {"a.json": "{not json", "b.json": '[{"latencyMs": 1}]', "c.json": "3", "d.log": "no summary here",
             "e.json": '{"schema": "snp-edge-device-bench/1", "latencies_ms": []}'}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        rc, _, err = cli("bench", tmp_path / name, "--out", tmp_path / "out")
        assert rc == 2 and str(tmp_path / name) in err and len(err.strip().splitlines()) == 1, err


def test_fixed_batch_onnx(cli, tmp_path):
    from tests.bench.bench_testutils import export, tiny_vit

    path = export(tiny_vit(96), tmp_path / "static.onnx", dynamic_batch=False)
    rc, _, err = cli("bench", path, "--batch", 2, "--quick", "--out", tmp_path / "out")
    assert rc == 2 and "exported with a fixed batch of 1" in err.strip().splitlines()[-1]
