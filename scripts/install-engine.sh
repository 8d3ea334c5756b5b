#!/usr/bin/env bash
# Provides the OCI engine (Debian 13 podman/buildah/runc in its own mount namespace) and the
# stand-in base images the image tests build on; .tools/bin/podman runs it. Cached in
# ~/.cache/svcgen/engine, idempotent. Details: scripts/install_engine.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$root/.venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"
exec "$python" "$root/scripts/install_engine.py" "$@"
