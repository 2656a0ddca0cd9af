#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end scenarios through real libpam.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo test --workspace "$@"
