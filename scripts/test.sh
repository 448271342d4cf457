#!/usr/bin/env bash
# The whole test suite: lint, type check, and every tier this machine can run (unit, integration on
# test:///default, system on a real libvirtd with QEMU, KVM where /dev/kvm is usable, reliability:
# faults, fuzzing, concurrency and access against real processes). System tests start libvirtd and
# virtlogd themselves when they are not running, and stop what they started.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/ensure.sh
echo "es2: lint"
npx eslint --max-warnings=0 .
# The type checker ran as part of the build in ensure.sh (tsc fails on any type error).
tiers=(dist/test/unit dist/test/integration dist/test/system dist/test/kvm dist/test/reliability)
echo "es2: tests (${tiers[*]})"
# The reliability tier appends what it observed (faults injected, requests fuzzed, reports pushed,
# lost updates, data lost) to this file; the summary is printed at the end, also after a failure.
figures_dir=$(mktemp -d)
trap 'rm -rf "$figures_dir"' EXIT
export ES2_RELIABILITY_FIGURES="$figures_dir/figures.jsonl"
status=0
node --test --test-concurrency=1 --test-reporter=spec "${tiers[@]}" || status=$?
echo
node dist/test/reliability/summary.js "$ES2_RELIABILITY_FIGURES"
exit "$status"
