# Developer shortcuts (uvloop-style). The README's two commands are all a
# newcomer needs; these are for working on the Cython data plane.
PYTHON ?= python

.PHONY: build debug annotate test test-debug bench clean

build:            ## release build in place (-O2)
	$(PYTHON) setup.py build_ext --inplace --cython-always

debug:            ## EF_DEBUG checks, line tracing, -O0 -g
	EF_DEBUG=1 $(PYTHON) setup.py build_ext --inplace --cython-always

annotate:         ## Cython annotate HTML beside each .pyx (read it for hot files you change)
	$(PYTHON) setup.py build_ext --inplace --cython-always --cython-annotate

test: build
	$(PYTHON) -m pytest -q tests

# Every envoy_fast these tests start must end with its workers' live objects
# back to their start counts (tests/integration/conftest.py): the files where
# connections, pools and timers churn. Leaves a debug build in place.
DEBUG_TESTS = tests/ext tests/integration/test_tcp_proxy_*.py tests/integration/test_chaos.py \
	tests/integration/test_upstream_outage.py tests/integration/test_close_accounting.py

test-debug: debug ## the leak-checked subset on an EF_DEBUG build
	$(PYTHON) -m pytest -q $(DEBUG_TESTS)

bench: build
	$(PYTHON) bench/run.py

clean:
	rm -rf build dist *.egg-info envoy_fast/*.so
	find ext -name '*.c' -o -name '*.html' | xargs rm -f
