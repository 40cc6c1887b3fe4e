"""Run a serialized engine: load it (after its sidecar check), run numpy batches, time runs.

Engines here have one input (NCHW, dynamic batch) and any number of outputs. Device buffers grow to the
largest batch seen. Timing: :func:`time_runs` on a prepared :class:`EngineRunner` (what the bench stage's
TensorRT backend and ``python3 -m engines profile`` call); :func:`time_engine` does the same for an engine file.
"""

from . import trt_compat
from .common.errors import EnginesError
from .envinfo import device_identity
from .gpu import open_cuda
from .manifest import sha256_file
from .sidecar import check_compatible, check_signed, read_sidecar


def check_engine(engine_path, identity=None, signed=True):
    """Refuse an engine whose sidecar names another TensorRT/GPU than ``identity`` (default: this machine's),
    that this device's engine key did not sign (``signed``: a cached engine; an explicit ``--engine`` is not),
    or whose bytes changed since the build; returns the sidecar."""
    sidecar = read_sidecar(engine_path)
    check_compatible(sidecar, identity or device_identity())
    if signed:
        check_signed(sidecar, engine_path)
    if sha256_file(engine_path) != sidecar["engine_sha256"]:
        raise EnginesError(f"{engine_path}: sha256 differs from its sidecar (modified or truncated): rebuild it")
    return sidecar


class EngineRunner(object):
    """A deserialized engine with one execution context, a CUDA stream and device buffers."""

    def __init__(self, engine_path, check=True, signed=True):
        import numpy as np

        self._np = np
        self.sidecar = check_engine(engine_path, signed=signed) if check else None
        trt, self.api = trt_compat.installed_api()
        self.cuda = open_cuda()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        trt_compat.set_runtime_dla_core(self._runtime, (self.sidecar or {}).get("dla_core"))
        with open(engine_path, "rb") as f:
            self.engine = self._runtime.deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise EnginesError(f"TensorRT cannot deserialize {engine_path} (see the TensorRT log above)")
        self.context = self.engine.create_execution_context()
        tensors = trt_compat.io_tensors(trt, self.api, self.engine)
        inputs = [t for t in tensors if t.is_input]
        if len(inputs) != 1:
            raise EnginesError(f"{engine_path} has {len(inputs)} inputs; this runner handles one")
        self.input = inputs[0]
        self.outputs = [t for t in tensors if not t.is_input]
        self.stream = self.cuda.stream()
        self._handle = self.cuda.stream_handle(self.stream)
        self._buffers = {}  # name -> (device buffer, capacity in bytes)
        self._host_outputs = {}

    def input_shape(self, batch):
        """The input shape (tuple) for ``batch`` images."""
        shape = (batch,) + tuple(self.input.shape[1:])
        if any(d < 1 for d in shape):
            raise EnginesError(f"input {self.input.name} has dynamic non-batch dimensions {shape}")
        return shape

    def _buffer(self, name, nbytes):
        buf, capacity = self._buffers.get(name, (None, 0))
        if nbytes > capacity:
            if buf is not None:
                self.cuda.free(buf)
            buf = self.cuda.alloc(nbytes)
            self._buffers[name] = (buf, nbytes)
        return buf

    def prepare(self, batch):
        """Set the input shape for ``batch`` and size the buffers; allocates the host output arrays."""
        np = self._np
        shape = self.input_shape(batch)
        trt_compat.set_input_shape(self.api, self.engine, self.context, self.input.name, shape)
        self._buffer(self.input.name, int(np.prod(shape)) * np.dtype(self.input.dtype).itemsize)
        self._host_outputs = {}
        for out in self.outputs:
            out_shape = trt_compat.tensor_shape(self.api, self.engine, self.context, out.name)
            host = np.empty(out_shape, dtype=out.dtype)
            self._buffer(out.name, host.nbytes)
            self._host_outputs[out.name] = host

    def upload(self, x, sync=True):
        """Copy the input batch (numpy, any float dtype) to the device (and wait, unless ``sync`` is False;
        the array is kept alive until the next upload)."""
        self._staged = self._np.ascontiguousarray(x, dtype=self.input.dtype)
        self.cuda.htod(self._buffers[self.input.name][0], self._staged, self.stream)
        if sync:
            self.cuda.synchronize(self.stream)

    def download(self):
        """Enqueue the copies of every output to its host array (:attr:`_host_outputs`); no wait."""
        for name, host in self._host_outputs.items():
            self.cuda.dtoh(host, self._buffers[name][0], self.stream)

    def capture_graph(self):
        """One enqueue captured as a CUDA graph (ctypes-cudart backend): returns the instantiated graph for
        ``cuda.launch_graph``. Enqueues once first, as TensorRT needs before capture."""
        if not hasattr(self.cuda, "begin_capture"):
            raise EnginesError("CUDA graphs need the ctypes-cudart backend (this run uses {})".format(self.cuda.name))
        self.enqueue()
        self.cuda.synchronize(self.stream)
        self.cuda.begin_capture(self.stream)
        try:
            self.enqueue()
        finally:
            graph = self.cuda.end_capture(self.stream)
        return graph

    def enqueue(self):
        """Enqueue one inference on the stream (no copies, no wait)."""
        addresses = dict((name, self.cuda.pointer(buf)) for name, (buf, _) in self._buffers.items())
        trt_compat.execute_async(self.api, self.engine, self.context, addresses, self._handle)

    def infer(self, x):
        """Run one batch: ``x`` (N, C, H, W) numpy -> ``{output name: numpy array}``."""
        self.prepare(x.shape[0])
        self.upload(x)
        self.enqueue()
        self.download()
        self.cuda.synchronize(self.stream)
        return dict((name, host.copy()) for name, host in self._host_outputs.items())

    def close(self):
        """Free device buffers and drop the TensorRT objects (context before engine before runtime)."""
        for buf, _ in self._buffers.values():
            self.cuda.free(buf)
        self._buffers = {}
        self.context = self.engine = self._runtime = None


def padded(chunk, min_batch):
    """``chunk`` (n, ...) with its last row repeated up to ``min_batch`` rows (a static-batch engine, as DLA
    builds are, takes no fewer); the caller keeps the first n rows of each output."""
    import numpy as np

    if len(chunk) >= min_batch:
        return chunk
    return np.concatenate([chunk, np.repeat(chunk[-1:], min_batch - len(chunk), axis=0)])


def run_batches(runner, inputs, max_batch, min_batch=1):
    """Run ``inputs`` (N, C, H, W) through ``runner`` in chunks of at most ``max_batch`` (a short last chunk
    padded to ``min_batch``); returns ``{output name: (N, ...) array}``."""
    import numpy as np

    chunks = []
    for i in range(0, len(inputs), max_batch):
        chunk = inputs[i:i + max_batch]
        out = runner.infer(padded(chunk, min_batch))
        chunks.append(dict((name, value[:len(chunk)]) for name, value in out.items()))
    return dict((name, np.concatenate([c[name] for c in chunks])) for name in chunks[0])


def time_engine(engine_path, batch, warmup, runs):
    """Per-run latencies in ms of ``runs`` inferences of ``batch`` images, after ``warmup`` untimed ones.
    Each run is timed with CUDA events around one enqueue and waited for before the next; the input stays
    on the device (no host<->device copies), like trtexec's --noDataTransfers."""
    import numpy as np

    if batch < 1 or warmup < 0 or runs < 1:
        raise EnginesError(f"need batch >= 1, warmup >= 0, runs >= 1; got {batch}, {warmup}, {runs}")
    runner = EngineRunner(engine_path)
    try:
        runner.prepare(batch)
        runner.upload(np.random.RandomState(0).standard_normal(runner.input_shape(batch)))
        return time_runs(runner, warmup, runs)
    finally:
        runner.close()


def time_runs(runner, warmup, runs):
    """Per-run latencies in ms of ``runs`` enqueues on a prepared :class:`EngineRunner`, after ``warmup``
    untimed ones: CUDA events around each enqueue, each waited for before the next."""
    cuda, stream = runner.cuda, runner.stream
    for _ in range(warmup):
        runner.enqueue()
    cuda.synchronize(stream)
    start, end = cuda.event(), cuda.event()
    times = []
    for _ in range(runs):
        cuda.record(start, stream)
        runner.enqueue()
        cuda.record(end, stream)
        times.append(float(cuda.elapsed_ms(start, end)))
    return times
