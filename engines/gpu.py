"""CUDA device memory, streams and events through pycuda (JetPack 4.6, older x86 setups) or cuda-python
(``cuda.bindings.runtime`` or the older ``cuda.cudart``), behind one small interface.

Both backends use the device's primary context, the one TensorRT's runtime-API calls use. Pointers and
stream handles are plain ints; times are milliseconds.
"""

import atexit

from .errors import EnginesError, first_line


class PyCuda(object):
    """pycuda backend (``pycuda.driver``)."""

    name = "pycuda"

    def __init__(self, device=0):
        import pycuda.driver as drv

        drv.init()
        self._drv = drv
        self._device = drv.Device(device)
        self._context = self._device.retain_primary_context()
        self._context.push()
        atexit.register(self._context.pop)

    def device_info(self):
        """``{"gpu_name": str, "compute_capability": "M.m", "total_memory_mib": int}``."""
        major, minor = self._device.compute_capability()
        return {"gpu_name": self._device.name(), "compute_capability": f"{major}.{minor}",
                "total_memory_mib": self._device.total_memory() >> 20}

    def alloc(self, nbytes):
        return self._drv.mem_alloc(max(int(nbytes), 1))

    def pointer(self, buf):
        return int(buf)

    def free(self, buf):
        buf.free()

    def stream(self):
        return self._drv.Stream()

    def stream_handle(self, stream):
        return stream.handle

    def htod(self, buf, array, stream):
        self._drv.memcpy_htod_async(buf, array, stream)

    def dtoh(self, array, buf, stream):
        self._drv.memcpy_dtoh_async(array, buf, stream)

    def synchronize(self, stream):
        stream.synchronize()

    def event(self):
        return self._drv.Event()

    def record(self, event, stream):
        event.record(stream)

    def elapsed_ms(self, start, end):
        end.synchronize()
        return end.time_since(start)


class CudaPython(object):
    """cuda-python backend (runtime API)."""

    name = "cuda-python"

    def __init__(self, device=0):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self._rt = cudart
        self._device = device
        self._call(cudart.cudaSetDevice(device))

    def _call(self, result):
        err, values = result[0], result[1:]
        if err != self._rt.cudaError_t.cudaSuccess:
            raise EnginesError(f"CUDA error {self._rt.cudaGetErrorName(err)[1].decode()}")
        return values[0] if len(values) == 1 else values

    def device_info(self):
        props = self._call(self._rt.cudaGetDeviceProperties(self._device))
        name = props.name.decode("utf-8", "replace").rstrip("\x00") if isinstance(props.name, bytes) \
            else str(props.name)
        return {"gpu_name": name, "compute_capability": f"{props.major}.{props.minor}",
                "total_memory_mib": int(props.totalGlobalMem) >> 20}

    def alloc(self, nbytes):
        return self._call(self._rt.cudaMalloc(max(int(nbytes), 1)))

    def pointer(self, buf):
        return int(buf)

    def free(self, buf):
        self._call(self._rt.cudaFree(buf))

    def stream(self):
        return self._call(self._rt.cudaStreamCreate())

    def stream_handle(self, stream):
        return int(stream)

    def htod(self, buf, array, stream):
        self._call(self._rt.cudaMemcpyAsync(buf, array.ctypes.data, array.nbytes,
                                            self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))

    def dtoh(self, array, buf, stream):
        self._call(self._rt.cudaMemcpyAsync(array.ctypes.data, buf, array.nbytes,
                                            self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))

    def synchronize(self, stream):
        self._call(self._rt.cudaStreamSynchronize(stream))

    def event(self):
        return self._call(self._rt.cudaEventCreate())

    def record(self, event, stream):
        self._call(self._rt.cudaEventRecord(event, stream))

    def elapsed_ms(self, start, end):
        self._call(self._rt.cudaEventSynchronize(end))
        return self._call(self._rt.cudaEventElapsedTime(start, end))


_BACKENDS = (PyCuda, CudaPython)
_opened = []


def open_cuda():
    """The first backend that imports (pycuda, then cuda-python), opened once per process."""
    if _opened:
        return _opened[0]
    errors = []
    for backend in _BACKENDS:
        try:
            _opened.append(backend())
            return _opened[0]
        except ImportError as exc:
            errors.append(f"{backend.name}: {exc}")
        except EnginesError:
            raise
        except Exception as exc:  # pycuda raises its own driver errors, e.g. no GPU or no driver
            raise EnginesError(f"{backend.name} cannot open GPU 0: {first_line(exc)}") from None
    raise EnginesError("no CUDA Python bindings ({}): install pycuda (Jetson) or cuda-python (x86)".format(
        "; ".join(errors)))
