#!/usr/bin/env bash
# Installs the verification tools into .tools/ (placeholder; see issue 5).
set -euo pipefail
mkdir -p "$(dirname "$0")/../.tools/bin"
