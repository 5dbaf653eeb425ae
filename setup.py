"""Build envoy_fast's Cython data plane.

One extension, ``envoy_fast._worker``, is compiled from ``ext/worker.pyx``,
which includes every subsystem's files so that cdef calls between them are
direct C calls (see docs/decisions.md).

Switches (as uvloop's setup.py):
  EF_DEBUG=1               debug build: EF_DEBUG checks, line tracing, -O0 -g
  EF_OPT_CFLAGS="-O3 ..."  override the optimisation flags (default -O2)
  EF_CYTHON_ANNOTATE=1     write the annotate HTML beside each .pyx
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

CYTHON_MIN = (3, 0, 10)
HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("EF_DEBUG", "") not in ("", "0")


class build_ext(_build_ext):
    user_options = _build_ext.user_options + [
        ("cython-always", None, "run cythonize even if the .c files exist"),
        ("cython-annotate", None, "produce the Cython annotate HTML"),
        ("cython-directives=", None, "extra Cython compiler directives"),
    ]
    boolean_options = _build_ext.boolean_options + ["cython-always", "cython-annotate"]

    def initialize_options(self):
        super().initialize_options()
        self.cython_always = False
        self.cython_annotate = bool(os.environ.get("EF_CYTHON_ANNOTATE"))
        self.cython_directives = None

    def finalize_options(self):
        import Cython
        from Cython.Build import cythonize

        version = tuple(int(p) for p in Cython.__version__.split(".")[:3] if p.isdigit())
        if version < CYTHON_MIN:
            raise RuntimeError(
                "envoy_fast needs Cython >= %s, found %s"
                % (".".join(map(str, CYTHON_MIN)), Cython.__version__)
            )
        directives = {
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": False,
        }
        if DEBUG:
            directives.update({"linetrace": True, "boundscheck": True})
        if self.cython_directives:
            for item in self.cython_directives.split(","):
                key, _, value = item.partition("=")
                directives[key.strip()] = value.strip() in ("1", "True", "true") if value else True
        self.distribution.ext_modules[:] = cythonize(
            self.distribution.ext_modules,
            compiler_directives=directives,
            compile_time_env={"EF_DEBUG": DEBUG},
            annotate=self.cython_annotate,
            force=self.cython_always,
            include_path=[os.path.join(HERE, "ext")],
        )
        super().finalize_options()


opt = os.environ.get("EF_OPT_CFLAGS", "-O0 -g" if DEBUG else "-O2")
extra_compile_args = opt.split() + ["-Wall", "-Wno-unused-function", "-Wno-unreachable-code"]
macros = [("EF_DEBUG", "1" if DEBUG else "0")]
if DEBUG:
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]

setup(
    ext_modules=[
        Extension(
            "envoy_fast._worker",
            ["ext/worker.pyx"],
            include_dirs=[os.path.join(HERE, "ext"), os.path.join(HERE, "ext", "includes")],
            define_macros=macros,
            extra_compile_args=extra_compile_args,
        )
    ],
    cmdclass={"build_ext": build_ext},
)
