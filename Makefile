# Developer shortcuts (uvloop-style). The README's two commands are all a
# newcomer needs; these are for working on the Cython data plane.
PYTHON ?= python

.PHONY: build debug annotate test bench clean

build:            ## release build in place (-O2)
	$(PYTHON) setup.py build_ext --inplace

debug:            ## EF_DEBUG checks, line tracing, -O0 -g
	EF_DEBUG=1 $(PYTHON) setup.py build_ext --inplace --cython-always

annotate:         ## Cython annotate HTML beside each .pyx (read it for hot files you change)
	$(PYTHON) setup.py build_ext --inplace --cython-always --cython-annotate

test: build
	$(PYTHON) -m pytest -q tests

bench: build
	$(PYTHON) bench/run.py

clean:
	rm -rf build dist *.egg-info envoy_fast/*.so
	find ext -name '*.c' -o -name '*.html' | xargs rm -f
