"""TensorRT engines for munit-rt bundles: profiles, the engine cache, the builder and the runner.

Nothing here imports tensorrt or cuda-python at module level; `import_tensorrt()` and `import_cudart()`
do it on first use and turn a missing package into `BackendUnavailable` with the extra that installs it.

    profiles.py  ProfileOptions -> (min, opt, max) shapes for every input of every graph   (pure python)
    cache.py     engine cache key, engines/ layout, atomic writes, device facts             (pure python)
    builder.py   ONNX -> serialized engine (strongly typed), build_engines / ensure_engines
    runner.py    EngineRunner: one engine, device buffers allocated once, execute_async_v3
"""
from __future__ import annotations

from munit_rt.errors import BackendUnavailable, MunitRtError

TENSORRT_HINT = "pip install 'munit-rt[tensorrt]'"


class EngineBuildError(MunitRtError):
    """TensorRT could not parse a graph or build its engine; the message names the graph and every error."""


class ProfileError(MunitRtError):
    """An optimisation-profile option is invalid; the message names the option (e.g. --max-size)."""


class CudaError(MunitRtError):
    """A CUDA runtime call failed; the message names the call and the CUDA error."""


def import_tensorrt():
    """Return the `tensorrt` module or raise BackendUnavailable naming the extra that installs it."""
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailable("tensorrt", "the 'tensorrt' Python package is not installed", hint=TENSORRT_HINT) from None
    return tensorrt


def import_cudart():
    """Return cuda-python's runtime module (`cuda.bindings.runtime`, or `cuda.cudart` before 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise BackendUnavailable(
                "tensorrt", "the 'cuda-python' package is not installed", hint=TENSORRT_HINT) from None
    return runtime


def cuda_check(cudart, result, call: str):
    """cuda-python calls return (err, *values): raise CudaError naming `call` unless err is cudaSuccess.

    Returns None, the single value, or the tuple of values.
    """
    result = result if isinstance(result, tuple) else (result,)
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        raise CudaError(f"{call} failed: {getattr(err, 'name', err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def tensorrt_major(trt) -> int:
    """The major version of an imported tensorrt module (`trt.__version__` like '10.7.0.23')."""
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        return 0


__all__ = ["CudaError", "EngineBuildError", "ProfileError", "TENSORRT_HINT", "cuda_check", "import_cudart",
           "import_tensorrt", "tensorrt_major"]
