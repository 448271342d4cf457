#!/usr/bin/env bash
# The whole test suite: lint, type check, and every tier this machine can run (unit, integration on
# test:///default, system on a real libvirtd with QEMU, KVM where /dev/kvm is usable). System tests
# start libvirtd and virtlogd themselves when they are not running, and stop what they started.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/ensure.sh
echo "es2: lint"
npx eslint --max-warnings=0 .
# The type checker ran as part of the build in ensure.sh (tsc fails on any type error).
tiers=(dist/test/unit dist/test/integration dist/test/system dist/test/kvm)
echo "es2: tests (${tiers[*]})"
node --test --test-concurrency=1 --test-reporter=spec "${tiers[@]}"
