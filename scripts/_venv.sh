# Sourced by setup.sh, setup-notorch.sh and examples.sh (from the top of the project):
# venv_install DIR PIP_ARGS... makes the virtual environment DIR (if missing) and runs
# `pip install PIP_ARGS` in it, unless nothing that decides the install changed since the last
# one: DIR/.cachemock-install records a hash of pyproject.toml, the venv's Python version and
# PIP_ARGS, written after an install that succeeded. A rerun then takes no pip call at all.
# Delete the file (or the venv) to force a reinstall.

venv_install() {
  local dir=$1
  shift
  if [ ! -x "$dir/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$dir"
  fi
  local stamp="$dir/.cachemock-install" want
  want=$("$dir/bin/python" - "$@" <<'PY'
import hashlib, sys
h = hashlib.sha256(sys.version.encode())
h.update("\0".join(sys.argv[1:]).encode())
with open("pyproject.toml", "rb") as f:
    h.update(f.read())
print(h.hexdigest())
PY
)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  rm -f "$stamp"
  # A pip older than 21.3 cannot make an editable install from pyproject.toml alone.
  if ! "$dir/bin/python" -c 'import sys, pip; v = pip.__version__.split(".")
sys.exit([int(x) for x in v[:2]] < [21, 3])'; then
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  fi
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
  VENV_INSTALLED=1
  printf '%s\n' "$want" >"$stamp"
}
