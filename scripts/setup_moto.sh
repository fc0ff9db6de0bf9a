#!/usr/bin/env bash
# Installs moto's server (the local IAM and STS the tests talk to) into .venv/moto; prints its path.
#
# Idempotent: an existing venv with the pinned moto is reused, so tests can call this every run.
# Everything but the final path goes to standard error, so callers can read stdout as the path.
# PYTHON picks the interpreter (default python3); moto 5.2 needs Python 3.10 or later.
set -euo pipefail

readonly MOTO_VERSION="5.2.5"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv/moto"
server="$venv/bin/moto_server"

installed_version() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true
}

if [[ -x "$server" && "$(installed_version)" == "$MOTO_VERSION" ]]; then
  echo "$server"
  exit 0
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup_moto: cannot find \"$python\"; moto $MOTO_VERSION needs Python 3.10 or later" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "setup_moto: moto $MOTO_VERSION needs Python 3.10 or later, but \"$python\" is" \
    "$("$python" -V 2>&1); set PYTHON to a newer interpreter" >&2
  exit 1
fi

echo "setup_moto: installing moto[server]==$MOTO_VERSION into $venv" >&2
# Re-running venv over a half-made one (e.g. an interrupted pip) repairs it rather than failing.
if ! "$python" -m venv "$venv" >&2; then
  echo "setup_moto: \"$python -m venv\" failed; on Debian or Ubuntu install python3-venv" >&2
  exit 1
fi
# The only step that reaches the network (PyPI): tried again after a pause when it fails.
"$repo_root/scripts/retry.sh" "pip install moto[server]==$MOTO_VERSION" \
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "moto[server]==$MOTO_VERSION" >&2

if [[ ! -x "$server" ]]; then
  echo "setup_moto: pip finished but $server is missing" >&2
  exit 1
fi
echo "$server"
