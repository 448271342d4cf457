#!/usr/bin/env bash
# The main job for a newcomer: es2d on libvirt's embedded test driver (test:///default, no
# libvirtd needed) with a throwaway state dir and host root. It prints how to talk to it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/ensure.sh
exec node dist/src/daemon/demo.js "$@"
