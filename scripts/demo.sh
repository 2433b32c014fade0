#!/usr/bin/env bash
# Placeholder: the demo (start the portal with its services and sample data) is written by the lead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
echo "demo.sh: TODO — not written yet"
