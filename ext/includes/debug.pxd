# EF_DEBUG builds: live-object counting (debug.h). Release builds never call
# these; `if EF_DEBUG:` around a call compiles to nothing.
from cpython.object cimport PyTypeObject

cdef extern from "debug.h":
    int ef_debug_track(PyTypeObject *t)
    Py_ssize_t ef_debug_live(PyTypeObject *t)
