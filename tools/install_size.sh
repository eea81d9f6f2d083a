#!/usr/bin/env bash
# Install time and size of hournas_tf: the core install and with the qat
# and test extras, each into a fresh virtual environment, plus the core
# install of an earlier commit (BEFORE, default 1398a0d^: QAT still in the
# core). Prints one JSON line per install (docs/install.md).
#
#   tools/install_size.sh [ROOT]   # default ROOT=/tmp/install_size
#
# The first install fills an empty pip cache (ROOT/cache): its time
# includes the downloads. The others reuse the cache: install time only.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-/tmp/install_size}
before=${BEFORE:-1398a0d^}
python=${PYTHON:-python3}
rm -rf "$root"
mkdir -p "$root/src"
export PIP_CACHE_DIR="$root/cache"
commit=$(git -C "$repo" rev-parse --short HEAD)
git -C "$repo" archive "$commit" | tar -x -C "$root/src"
mkdir -p "$root/before"
git -C "$repo" archive "$before" | tar -x -C "$root/before"

measure() {  # name, cache, pip install arguments...
  local name=$1 cache=$2 venv="$root/venv-$1"
  shift 2
  "$python" -m venv "$venv"
  local start end
  start=$(date +%s.%N)
  "$venv/bin/python" -m pip install -q "$@" > "$root/$name.log" 2>&1
  end=$(date +%s.%N)
  local site
  site=$(echo "$venv"/lib/python*/site-packages)
  printf '{"install": "%s", "cache": "%s", "seconds": %.0f, ' \
    "$name" "$cache" "$(echo "$end - $start" | bc)"
  printf '"site_packages_mb": %s, "packages": %s}\n' \
    "$(du -sm "$site" | cut -f1)" \
    "$(("$("$venv/bin/python" -m pip list --format=freeze | wc -l)"))"
}

measure core-cold-cache cold "$root/src"
measure core warm "$root/src"
measure core+qat warm "$root/src[qat]"
measure core+test warm "$root/src[test]"
measure before-core warm "$root/before"
echo "{\"date\": \"$(date -u +%Y-%m-%dT%H:%MZ)\", \"python\": \"$("$python" --version 2>&1)\", \"pip\": \"$("$python" -m pip --version | cut -d' ' -f2)\", \"machine\": \"$(uname -m), $(nproc) cores\", \"commit\": \"$commit\", \"before\": \"$(git -C "$repo" rev-parse --short "$before")\"}"
