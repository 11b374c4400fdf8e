#!/usr/bin/env bash
# Set-up behind `make demo` and `make test`: system GL libraries, .venv, the package. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

GL_PACKAGES="libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 libgl1"
missing=()
for lib in libEGL.so.1 libEGL_mesa.so.0 libOpenGL.so.0 libGL.so.1; do
  ldconfig -p | grep -q "$lib" || missing+=("$lib")
done
compgen -G "/usr/lib/*/dri/swrast_dri.so" >/dev/null || missing+=("swrast_dri.so")
[ -e /usr/share/glvnd/egl_vendor.d/50_mesa.json ] || missing+=("50_mesa.json")
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: headless GL libraries missing (${missing[*]}); installing $GL_PACKAGES"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $GL_PACKAGES
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $GL_PACKAGES
  else
    echo "setup: cannot install them without root; run: sudo apt-get install -y --no-install-recommends $GL_PACKAGES" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "setup: Python 3.10 or newer is needed ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch 2.14.1 / torchvision 0.29.1 are pinned in pyproject.toml.
# (pip's notes about this machine's local package-index folders are filtered out of the log)
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' \
  2> >(grep -v "WARNING: Location" >&2)
