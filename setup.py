"""Build of gonogo's C extensions; everything else about the package is in pyproject.toml.

`pip install -e '.[dev]'` (what `make test` and `make demo` run) compiles it in place.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gonogo.loadgen._engine",
            sources=["src/gonogo/loadgen/_engine.c"],
            extra_compile_args=["-O2", "-Wall"],
            libraries=["m"],
        ),
        Extension(
            "gonogo.faults._relay",
            sources=["src/gonogo/faults/_relay.c"],
            extra_compile_args=["-O2", "-Wall"],
        ),
    ]
)
