# Cython finds the .pxd of module envoy_fast._worker by its dotted name; the
# declarations themselves live in worker.pxd beside worker.pyx.
include "worker.pxd"
