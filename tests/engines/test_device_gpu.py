"""The ctypes backend on CUDA's libcudart (engines/gpu.py) on a real GPU: device identity, copies, events,
CUDA graphs, use from another thread; and the trtexec builder identifying that GPU through it. Needs a CUDA
GPU and libcudart (skipped with the reason elsewhere); no TensorRT needed (trtexec is the stand-in)."""

import json
import threading

import numpy as np
import pytest
from snp_edge.engines.common.errors import EnginesError

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda():
    from snp_edge.engines.gpu import CudaRT

    try:
        return CudaRT()
    except (ImportError, EnginesError) as exc:
        pytest.skip(f"no CUDA GPU through libcudart here: {exc}")


def test_device_info(cuda):
    info = cuda.device_info()
    assert info["gpu_name"] and "\x00" not in info["gpu_name"]
    major, minor = info["compute_capability"].split(".")
    assert int(major) >= 5 and int(minor) >= 0 and info["total_memory_mib"] > 1024
    assert cuda.runtime_version >= 10000


def test_copies_round_trip(cuda):
    x = np.random.RandomState(0).standard_normal((3, 224, 224)).astype(np.float32)
    y = np.empty_like(x)
    a, b = cuda.alloc(x.nbytes), cuda.alloc(x.nbytes)
    stream = cuda.stream()
    try:
        cuda.htod(a, x, stream)
        cuda.dtod(b, a, x.nbytes, stream)
        cuda.dtoh(y, b, stream)
        cuda.synchronize(stream)
        assert np.array_equal(x, y)
    finally:
        cuda.free(a)
        cuda.free(b)


def test_events_time_a_copy(cuda):
    nbytes = 256 << 20
    a, b = cuda.alloc(nbytes), cuda.alloc(nbytes)
    stream = cuda.stream()
    start, end = cuda.event(), cuda.event()
    try:
        cuda.record(start, stream)
        for _ in range(4):
            cuda.dtod(b, a, nbytes, stream)
        cuda.record(end, stream)
        ms = cuda.elapsed_ms(start, end)
        assert isinstance(ms, float) and 0 < ms < 10000
    finally:
        cuda.free(a)
        cuda.free(b)


def test_cuda_graph_replays_the_captured_work(cuda):
    x = np.arange(1 << 16, dtype=np.float32)
    y = np.zeros_like(x)
    a, b = cuda.alloc(x.nbytes), cuda.alloc(x.nbytes)
    stream = cuda.stream()
    try:
        cuda.begin_capture(stream)
        cuda.dtod(b, a, x.nbytes, stream)
        graph = cuda.end_capture(stream)
        cuda.htod(a, x, stream)  # after capture: the graph copies what is in `a` when launched
        cuda.launch_graph(graph, stream)
        cuda.dtoh(y, b, stream)
        cuda.synchronize(stream)
        assert np.array_equal(x, y)
        cuda.free_graph(graph)
    finally:
        cuda.free(a)
        cuda.free(b)


def test_usable_from_another_thread(cuda):
    errors, results = [], []

    def work():
        try:
            x = np.full(1024, 7.0, dtype=np.float32)
            y = np.empty_like(x)
            buf, stream = cuda.alloc(x.nbytes), cuda.stream()
            cuda.htod(buf, x, stream)
            cuda.dtoh(y, buf, stream)
            cuda.synchronize(stream)
            cuda.free(buf)
            results.append(bool((y == 7.0).all()))
        except Exception as exc:  # asserted below
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert not errors and results == [True]


def test_open_cuda_picks_ctypes_and_identifies_for_trtexec(cuda, tmp_path, monkeypatch):
    """The trtexec builder on a GPU machine without TensorRT's bindings: the GPU comes from libcudart."""
    from snp_edge.engines import envinfo, gpu
    from snp_edge.engines.cli import main

    from tests.engines.device_fixtures import fake_trtexec, make_bundle

    assert gpu.open_cuda().name == "ctypes-cudart"
    monkeypatch.setenv("TRTEXEC", str(fake_trtexec(tmp_path)))
    monkeypatch.setattr(envinfo, "tensorrt_version", lambda: None)
    bundle = make_bundle(tmp_path / "bundle")
    out = tmp_path / "build.json"
    assert main(["build", str(bundle), "--json-file", str(out)]) == 0
    sidecar = json.loads(out.read_text())["sidecar"]
    info = cuda.device_info()
    assert sidecar["gpu_name"] == info["gpu_name"] and sidecar["compute_capability"] == info["compute_capability"]
    assert sidecar["trt_version"] == "8.2.1" and sidecar["builder"] == "trtexec"
