"""CUDA device memory, streams, events and graphs behind one small interface, through (first that works):

* ``ctypes-cudart``: ctypes on the CUDA runtime library ``libcudart.so`` that every JetPack and CUDA install
  has (no compiled binding, no pip, no internet: a stock JetPack 4.6 needs nothing more than TensorRT's own
  Python bindings);
* pycuda (``pycuda.driver``);
* cuda-python (``cuda.bindings.runtime`` or the older ``cuda.cudart``).

All use the device's primary context, the one TensorRT's runtime-API calls use. Pointers, stream and event
handles are plain ints (pycuda: its objects); times are milliseconds.
"""

import atexit
import ctypes
import os
import sys

from .common.errors import EnginesError, MissingPrerequisite, first_line

CUDART_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so.10.2",
                "libcudart.so.10.1", "libcudart.so.10.0")
CUDART_DIRS = ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/aarch64-linux/lib",
               "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu")
CUDA_ENV = "SNP_EDGE_CUDART"  # an explicit libcudart path
_MEMCPY_H2D, _MEMCPY_D2H, _MEMCPY_D2D = 1, 2, 3
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76
_PROPS_BYTES = 1 << 14  # larger than cudaDeviceProp in any CUDA release; name[256] is its first field


def _cudart_candidates():
    found = [os.environ.get(CUDA_ENV)] if os.environ.get(CUDA_ENV) else []
    found += list(CUDART_NAMES)
    found += [os.path.join(d, n) for d in CUDART_DIRS for n in CUDART_NAMES]
    for entry in sys.path:  # NVIDIA's pip wheel nvidia-cuda-runtime (x86 Python environments), where installed
        found += [os.path.join(entry, "nvidia", "cuda_runtime", "lib", n) for n in CUDART_NAMES]
    return found


def load_cudart():
    """The CUDA runtime library (ctypes.CDLL); ImportError when none loads (the next backend is tried)."""
    errors = []
    for name in _cudart_candidates():
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(first_line(exc))
    raise ImportError("libcudart not found (looked for {} in the loader path and {}; set ${} to its path)".format(
        ", ".join(CUDART_NAMES[:3]), ", ".join(CUDART_DIRS[:2]), CUDA_ENV))


class CudaRT(object):
    """ctypes backend on libcudart (runtime API)."""

    name = "ctypes-cudart"

    def __init__(self, device=0):
        self._lib = load_cudart()
        self._device = device
        version = ctypes.c_int(0)
        self._call("cudaRuntimeGetVersion", ctypes.byref(version))
        self.runtime_version = version.value  # e.g. 10020 for CUDA 10.2
        count = ctypes.c_int(0)
        try:
            self._call("cudaGetDeviceCount", ctypes.byref(count))
            if count.value <= device:
                raise EnginesError("no CUDA GPU {} (cudaGetDeviceCount = {})".format(device, count.value))
            self._call("cudaSetDevice", ctypes.c_int(device))
        except EnginesError as exc:
            raise MissingPrerequisite("no usable CUDA GPU: {}".format(exc)) from None

    def _call(self, fn, *args):
        func = getattr(self._lib, fn)
        func.restype = ctypes.c_int
        err = func(*args)
        if err != 0:
            describe = self._lib.cudaGetErrorString
            describe.restype = ctypes.c_char_p
            text = (describe(ctypes.c_int(err)) or b"").decode("utf-8", "replace")
            raise EnginesError("CUDA error {} in {}: {}".format(err, fn, text))

    def _handle(self, fn, *args):
        out = ctypes.c_void_p()
        self._call(fn, ctypes.byref(out), *args)
        return out.value or 0

    def device_info(self):
        """``{"gpu_name": str, "compute_capability": "M.m", "total_memory_mib": int}``."""
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        self._call("cudaDeviceGetAttribute", ctypes.byref(major), ctypes.c_int(_ATTR_CC_MAJOR), ctypes.c_int(self._device))
        self._call("cudaDeviceGetAttribute", ctypes.byref(minor), ctypes.c_int(_ATTR_CC_MINOR), ctypes.c_int(self._device))
        props = ctypes.create_string_buffer(_PROPS_BYTES)
        fn = "cudaGetDeviceProperties_v2" if hasattr(self._lib, "cudaGetDeviceProperties_v2") \
            else "cudaGetDeviceProperties"
        self._call(fn, props, ctypes.c_int(self._device))
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        self._call("cudaMemGetInfo", ctypes.byref(free), ctypes.byref(total))
        name = props.raw[:256].split(b"\0", 1)[0].decode("utf-8", "replace")
        return {"gpu_name": name, "compute_capability": "{}.{}".format(major.value, minor.value),
                "total_memory_mib": total.value >> 20}

    def alloc(self, nbytes):
        return self._handle("cudaMalloc", ctypes.c_size_t(max(int(nbytes), 1)))

    def pointer(self, buf):
        return int(buf)

    def free(self, buf):
        self._call("cudaFree", ctypes.c_void_p(buf))

    def stream(self):
        return self._handle("cudaStreamCreate")

    def stream_handle(self, stream):
        return int(stream)

    def _copy(self, dst, src, nbytes, kind, stream):
        self._call("cudaMemcpyAsync", ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes),
                   ctypes.c_int(kind), ctypes.c_void_p(stream))

    def htod(self, buf, array, stream):
        self._copy(buf, array.ctypes.data, array.nbytes, _MEMCPY_H2D, stream)

    def dtoh(self, array, buf, stream):
        self._copy(array.ctypes.data, buf, array.nbytes, _MEMCPY_D2H, stream)

    def dtod(self, dst, src, nbytes, stream):
        self._copy(dst, src, nbytes, _MEMCPY_D2D, stream)

    def synchronize(self, stream):
        self._call("cudaStreamSynchronize", ctypes.c_void_p(stream))

    def event(self):
        return self._handle("cudaEventCreate")

    def record(self, event, stream):
        self._call("cudaEventRecord", ctypes.c_void_p(event), ctypes.c_void_p(stream))

    def elapsed_ms(self, start, end):
        self._call("cudaEventSynchronize", ctypes.c_void_p(end))
        ms = ctypes.c_float(0.0)
        self._call("cudaEventElapsedTime", ctypes.byref(ms), ctypes.c_void_p(start), ctypes.c_void_p(end))
        return ms.value

    # CUDA graphs: capture what is enqueued on a stream once, replay it with one launch
    def begin_capture(self, stream):
        self._call("cudaStreamBeginCapture", ctypes.c_void_p(stream), ctypes.c_int(2))  # relaxed mode

    def end_capture(self, stream):
        """The captured work as an instantiated graph (an int handle for :meth:`launch_graph`)."""
        out = ctypes.c_void_p()
        self._call("cudaStreamEndCapture", ctypes.c_void_p(stream), ctypes.byref(out))
        graph = out.value
        exec_ = ctypes.c_void_p()
        if self.runtime_version >= 11040:
            self._call("cudaGraphInstantiateWithFlags", ctypes.byref(exec_), ctypes.c_void_p(graph),
                       ctypes.c_ulonglong(0))
        else:  # CUDA 10.x / 11.0-11.3: (exec, graph, error node, log buffer, log size)
            self._call("cudaGraphInstantiate", ctypes.byref(exec_), ctypes.c_void_p(graph), None, None,
                       ctypes.c_size_t(0))
        self._call("cudaGraphDestroy", ctypes.c_void_p(graph))
        return exec_.value

    def launch_graph(self, graph_exec, stream):
        self._call("cudaGraphLaunch", ctypes.c_void_p(graph_exec), ctypes.c_void_p(stream))

    def free_graph(self, graph_exec):
        self._call("cudaGraphExecDestroy", ctypes.c_void_p(graph_exec))


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


_BACKENDS = (CudaRT, PyCuda, CudaPython)
_opened = []


def open_cuda():
    """The first backend that loads (ctypes on libcudart, pycuda, cuda-python), opened once per process."""
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
    raise MissingPrerequisite("no CUDA runtime for Python ({}): CUDA's libcudart, pycuda or cuda-python".format(
        "; ".join(errors)))
