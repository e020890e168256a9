"""Fakes the tests share (import them as `fakes.X`; tests/ is on sys.path, as for `conftest`).

    tensorrt.py   TensorRT and cuda-python stand-ins (engines are JSON plans run as numpy functions, "device"
                  memory is real host memory), a MUNIT bundle whose graphs declare I/O only, and `install`,
                  which puts the fakes behind munit_rt.tensorrt's import seams
    imports.py    a meta-path hook that makes chosen top-level packages unimportable (e.g. torch), as source
                  to prepend to a `python -c` script: the layer tests run the runtime in a subprocess with it
"""
