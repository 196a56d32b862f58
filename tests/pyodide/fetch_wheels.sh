#!/bin/sh
# Download the wheels listed in requirements.txt into the git-ignored cache that
# run.mjs installs from. Idempotent: pip is only invoked when a pinned wheel is
# missing, so a warm run takes milliseconds and needs no network.
#
# Usage: sh tests/pyodide/fetch_wheels.sh   (cache dir: $PYODIDE_WHEEL_CACHE or
#        .cache/pyodide-wheels at the repo root)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${PYODIDE_WHEEL_CACHE:-$root/.cache/pyodide-wheels}
reqs=$here/requirements.txt
mkdir -p "$cache"

missing=0
for pin in $(sed -e 's/#.*//' "$reqs"); do
    # Wheel file names use the normalised project name (PEP 427: '-' -> '_').
    name=$(printf '%s' "${pin%%==*}" | tr 'A-Z.-' 'a-z__')
    ver=${pin#*==}
    set -- "$cache/$name-$ver-"*.whl
    [ -e "$1" ] || { missing=1; break; }
done
[ "$missing" = 0 ] && { echo "pyodide wheels: cache complete ($cache)"; exit 0; }

# One pip call for all pins. --platform names Pyodide 314's ABI (pyodide-lock.json
# info.abi_version 2026_0) so compiled Emscripten wheels (hypothesis) resolve;
# pure py3-none-any wheels match too. --no-deps: the pin list is the whole closure.
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform pyemscripten_2026_0_wasm32 --platform any \
    --python-version 3.14 --implementation cp --abi cp314 --abi abi3 --abi none \
    -d "$cache" -r "$reqs"
echo "pyodide wheels: downloaded into $cache"
