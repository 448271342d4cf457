#!/usr/bin/env bash
# Puts es2 in place on a compute host: the es2 group, the libvirt hook, the es2d systemd unit,
# es2ctl on PATH, the config, the API token and the directory Nova reads provider configs from.
# Idempotent: each step says what it did or that it found the thing already in place, and a second
# run changes nothing.
# It neither enables nor starts es2d: review /etc/es2/es2d.yaml first (it says how at the end).
#
# Usage: deploy/install.sh [--prefix DIR] [--hook-env NAME=VALUE]... [--dry-run]
#   --prefix DIR          the built es2 checkout es2d.service runs (default: this script's checkout)
#   --hook-env NAME=VALUE set ES2_SOCKET, ES2_HOOK_TIMEOUT or ES2_HOOK_FAILURE for the hook; repeat
#                         it on every run (the hook is rendered from the flags given)
#   --dry-run             print what would be done, change nothing
# Environment: ES2_INSTALL_ROOT (default /) prefixes every path written, for tests and images.
set -euo pipefail

me=install.sh
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=$src
dry_run=0
hook_env=()

usage() { sed -n '/^# Usage:/,/^# Environment:/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
fail() { echo "$me: $*" >&2; exit 1; }
usage_fail() { echo "$me: $*" >&2; usage >&2; exit 2; }

while (($#)); do
  case $1 in
    --prefix) (($# >= 2)) || usage_fail "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --hook-env) (($# >= 2)) || usage_fail "--hook-env needs NAME=VALUE"; hook_env+=("$2"); shift 2 ;;
    --hook-env=*) hook_env+=("${1#*=}"); shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_fail "unknown argument: $1" ;;
  esac
done

# The hook's environment: libvirt runs hooks with only PATH, HOME, USER, LOGNAME, TMPDIR,
# LD_PRELOAD, LD_LIBRARY_PATH and LC_ALL=C, so ES2_* settings are written into the hook itself.
hook_vars=()
for pair in "${hook_env[@]}"; do
  name=${pair%%=*} value=${pair#*=}
  [[ $pair == *=* ]] || usage_fail "--hook-env $pair: expected NAME=VALUE"
  case $name in
    ES2_SOCKET) [[ $value =~ ^/[A-Za-z0-9._/+-]+$ ]] || usage_fail "--hook-env ES2_SOCKET: expected an absolute path, got '$value'" ;;
    ES2_HOOK_TIMEOUT) [[ $value =~ ^[0-9]+(\.[0-9]+)?$ && ! $value =~ ^0+(\.0+)?$ ]] || usage_fail "--hook-env ES2_HOOK_TIMEOUT: expected seconds > 0, got '$value'" ;;
    ES2_HOOK_FAILURE) [[ $value == fail || $value == open ]] || usage_fail "--hook-env ES2_HOOK_FAILURE: expected fail or open, got '$value'" ;;
    *) usage_fail "--hook-env $name: expected ES2_SOCKET, ES2_HOOK_TIMEOUT or ES2_HOOK_FAILURE" ;;
  esac
  hook_vars+=("$name=$value")
done

root=${ES2_INSTALL_ROOT:-/}
[[ $root == /* ]] || fail "ES2_INSTALL_ROOT must be an absolute path, got $root"
root=${root%/}
target() { printf '%s%s' "$root" "$1"; }

changes=0
say() { printf '%-46s %s\n' "$1" "$2"; }
# Reports a change (done, or only announced under --dry-run) and counts it.
changed() {
  changes=$((changes + 1))
  if ((dry_run)); then say "$1" "would be $2"; else say "$1" "$2"; fi
}
# Runs a command that changes the host, unless this is a dry run.
act() { ((dry_run)) || "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- checks ---------------------------------------------------------------------------------------

((dry_run)) || [[ $(id -u) -eq 0 ]] || fail "run as root (it writes /etc and creates a group), or try --dry-run"
[[ $root == "" ]] || say "install root" "$root (ES2_INSTALL_ROOT)"

# es2d.service hides /home, /root and /run/user (ProtectHome=yes): nothing it runs may live there.
under_home() { [[ $1 == /home/* || $1 == /root/* || $1 == /run/user/* ]]; }
# Paths go into ExecStart and the hook's #! line unquoted.
plain_path() { [[ $1 =~ ^/[A-Za-z0-9._/+-]*$ ]]; }

node=$(command -v node) || fail "node is not on PATH: es2 needs Node 20 installed system-wide"
node_version=$("$node" -p 'process.versions.node')
[[ ${node_version%%.*} == 20 ]] || fail "$node is Node $node_version; es2 needs Node 20"
plain_path "$node" || fail "the path $node has characters a unit's ExecStart cannot take unquoted"
under_home "$node" && fail "$node is under a home directory, which es2d.service cannot see (ProtectHome=yes); install Node 20 system-wide"
say "node" "$node (v$node_version)"
# The libvirt hook is POSIX sh forwarding to es2d with curl (a Node start per hook call would
# add ~50 ms to each of the three calls of every domain start).
curl=$(command -v curl) || fail "curl is not on PATH: the libvirt hook needs it (apt-get install curl)"
plain_path "$curl" || fail "the path $curl has characters the hook cannot take unquoted"
say "curl" "$curl"

[[ -d $prefix ]] || fail "--prefix $prefix: no such directory"
prefix=$(cd "$prefix" && pwd)
plain_path "$prefix" || fail "--prefix $prefix has characters a unit's ExecStart cannot take unquoted"
under_home "$prefix" && fail "--prefix $prefix is under a home directory, which es2d.service cannot see (ProtectHome=yes); use /opt/es2"
if [[ -f $prefix/dist/src/daemon/main.js ]]; then
  say "es2 checkout $prefix" "built"
else
  say "es2 checkout $prefix" "NOT BUILT: run 'bash scripts/ensure.sh' there before starting es2d"
fi

hook_src=$src/deploy/libvirt/hooks/qemu.d/50-es2
unit_src=$src/deploy/systemd/es2d.service
config_src=$src/deploy/es2d.yaml
for f in "$hook_src" "$unit_src" "$config_src"; do [[ -f $f ]] || fail "$f is missing from $src"; done

# --- helpers --------------------------------------------------------------------------------------

# ensure_dir PATH MODE: creates the directory when absent (an existing one is left as it is).
ensure_dir() {
  local dir
  dir=$(target "$1")
  if [[ -d $dir ]]; then
    say "directory $1" "in place"
  else
    act install -d -m "$2" "$dir"
    changed "directory $1" "created"
  fi
}

# ensure_file RENDERED PATH MODE: installs RENDERED as PATH when the content or the mode differs.
# Sets file_state to new, updated or same.
ensure_file() {
  local rendered=$1 path=$2 mode=$3 dest
  dest=$(target "$path")
  if [[ ! -e $dest ]]; then
    file_state=new
    act install -D -m "$mode" "$rendered" "$dest"
    changed "$path" "installed"
  elif ! cmp -s "$rendered" "$dest"; then
    file_state=updated
    act install -m "$mode" "$rendered" "$dest"
    changed "$path" "updated"
  elif [[ $(stat -c %a "$dest") != "${mode#0}" ]]; then
    file_state=updated
    act chmod "$mode" "$dest"
    changed "$path" "given mode $mode"
  else
    file_state=same
    say "$path" "in place"
  fi
}

# --- group ----------------------------------------------------------------------------------------

if [[ $root == "" ]]; then
  if getent group es2 >/dev/null; then has_group=1; else has_group=0; fi
else
  if grep -q '^es2:' "$root/etc/group" 2>/dev/null; then has_group=1; else has_group=0; fi
fi
if ((has_group)); then
  say "group es2" "in place"
else
  if [[ $root == "" ]]; then act groupadd --system es2; else act groupadd --prefix "$root" --system es2; fi
  changed "group es2" "created"
fi

# --- directories ----------------------------------------------------------------------------------

ensure_dir /etc/es2 0755
ensure_dir /etc/libvirt/hooks/qemu.d 0755
# es2d writes es2.yaml here; under ProtectSystem=strict the directory must exist before it starts.
# It is Nova's default [compute] provider_config_location.
ensure_dir /etc/nova/provider_config 0755
# nova-compute refuses to start when two files there both identify `$COMPUTE_NODE`, as es2.yaml does.
provider_conflicts=()
for f in "$(target /etc/nova/provider_config)"/*.yaml; do
  [[ -f $f && ${f##*/} != es2.yaml ]] || continue
  grep -Eq '^[^#]*[$]COMPUTE_NODE' "$f" && provider_conflicts+=("/etc/nova/provider_config/${f##*/}")
done
for f in "${provider_conflicts[@]}"; do
  say "$f" "CONFLICT: also identifies \$COMPUTE_NODE (see Next)"
done

# --- libvirt hook ---------------------------------------------------------------------------------

hook_path=/etc/libvirt/hooks/qemu.d/50-es2
# Hooks libvirtd may already run: it looks for them only when it starts.
other_hooks=0
[[ -x $(target /etc/libvirt/hooks/qemu) ]] && other_hooks=1
for f in "$(target /etc/libvirt/hooks/qemu.d)"/*; do
  [[ -f $f && -x $f && ${f##*/} != 50-es2 ]] && other_hooks=1
done
# The settings go under the #! line, curl's path among them: libvirtd's PATH need not have it.
# Values were checked above (or are plain paths), so they need no quoting.
{
  head -n 1 "$hook_src"
  echo "# Written by deploy/install.sh:"
  echo "ES2_CURL=$curl"
  for pair in "${hook_vars[@]}"; do echo "$pair"; done
  tail -n +2 "$hook_src"
} >"$work/hook"
ensure_file "$work/hook" "$hook_path" 0755
hook_state=$file_state

# --- systemd unit ---------------------------------------------------------------------------------

unit_path=/etc/systemd/system/es2d.service
# Node's flags between the binary and the script are kept.
sed -e "/^ExecStart=/s#^ExecStart=/usr/bin/node #ExecStart=$node #" -e "/^ExecStart=/s# /opt/es2/# $prefix/#" \
  -e "s#^Documentation=file:/opt/es2/#Documentation=file:$prefix/#" "$unit_src" >"$work/unit"
grep -Eq "^ExecStart=$node( --[a-z0-9=-]+)* $prefix/dist/src/daemon/main.js " "$work/unit" ||
  fail "$unit_src: its ExecStart is no longer /usr/bin/node [flags] /opt/es2/dist/..., so it cannot be rendered"
ensure_file "$work/unit" "$unit_path" 0644
if [[ $file_state != same ]]; then
  if [[ $root != "" ]]; then
    say "systemctl daemon-reload" "skipped: the install root is not /"
  elif ! command -v systemctl >/dev/null || [[ ! -d /run/systemd/system ]]; then
    say "systemctl daemon-reload" "skipped: systemd is not running here"
  else
    act systemctl daemon-reload
    changed "systemctl daemon-reload" "run"
  fi
fi

# --- es2ctl on PATH -------------------------------------------------------------------------------

ctl_path=/usr/local/bin/es2ctl
printf '#!/bin/sh\n# es2ctl, installed by the deploy/install.sh of %s.\nexec %s %s/dist/src/cli/main.js "$@"\n' \
  "$prefix" "$node" "$prefix" >"$work/es2ctl"
ensure_file "$work/es2ctl" "$ctl_path" 0755

# --- config and token -----------------------------------------------------------------------------

config_path=/etc/es2/es2d.yaml
config=$(target "$config_path")
if [[ -e $config ]]; then
  if cmp -s "$config_src" "$config"; then
    say "$config_path" "in place"
  else
    say "$config_path" "kept (yours; compare with $config_src for new options)"
  fi
else
  act install -m 0640 "$config_src" "$config"
  changed "$config_path" "installed from $config_src"
  if ((dry_run)); then config=$config_src; fi
fi

# The API token file the config names, when there is one: a TCP listener cannot start without it.
token_path=$(sed -n -E "s/^tokenFile:[[:space:]]*['\"]?([^'\"#[:space:]]+).*/\1/p" "$config" | head -n 1)
if [[ -n $token_path ]]; then
  token=$(target "$token_path")
  if [[ -s $token ]]; then
    say "$token_path" "in place"
  else
    if ((!dry_run)); then
      (umask 077 && mkdir -p "$(dirname "$token")" && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$token" && echo >>"$token")
    fi
    changed "$token_path" "created (random, mode 0600)"
  fi
fi

# --- what is left to the operator -----------------------------------------------------------------

echo
if ((changes == 0)); then
  echo "Nothing to change: everything was already in place."
elif ((dry_run)); then
  echo "Dry run: $changes change(s) would be made; nothing was changed."
else
  echo "$changes change(s) made."
fi
echo "Next:"
if [[ $hook_state == new ]]; then
  if ((other_hooks)); then
    echo "  - libvirtd runs the new hook from its next call if it already found a qemu hook when it"
    echo "    started; if unsure: systemctl restart libvirtd (running domains keep running)"
  else
    echo "  - systemctl restart libvirtd: libvirt looks for hook scripts only when it starts."
    echo "    Running domains keep running; nova-compute reconnects."
  fi
fi
if ((${#provider_conflicts[@]})); then
  echo "  - ${provider_conflicts[*]} identifies \$COMPUTE_NODE like es2d's es2.yaml: nova-compute"
  echo "    would refuse to start with both. Set providerConfig: false in $config_path and add the"
  echo "    host's CUSTOM_ES2_* traits to that file yourself (docs/OPERATIONS.md, Nova integration)."
fi
echo "  - review $config_path (cpuPool, rules, orchestrator), then: systemctl enable --now es2d"
echo "  - let operators use es2ctl without sudo: usermod -aG es2 USER"
echo "  - once es2d has written /etc/nova/provider_config/es2.yaml: systemctl restart nova-compute"
