#!/usr/bin/env bash
# Fills Deno's cache (DENO_DIR, by default $HOME/.cache/deno) with everything `deno task test` would
# otherwise fetch from the npm registry while it runs, so that the test run needs no network:
#   - the npm packages of deno.json at the lockfile's versions (`deno install --frozen`; a lockfile
#     that no longer matches deno.json fails here, not halfway through the tests);
#   - the module graphs of main.ts, src, tests and scripts (`deno cache`): main.ts loads each mode by
#     a computed URL, and the tests run scripts/bench.ts, scripts/bench_startup.ts,
#     tests/e2e_client.ts and main.ts as subprocesses;
#   - esbuild, which `deno bundle` downloads from the npm registry (@esbuild/<platform>) on its first
#     use, and the package metadata it reads (scripts/bench_startup.ts, run by
#     tests/bench_startup_test.ts, bundles the sidecar as `deno task compile` does).
#
# Deno fetches some packages' metadata in the background and keeps only what arrived before it
# exits, so one pass can leave a file that the next command fetches again. The pass is repeated
# until one downloads nothing (at most 4 passes): that pass shows the cache is complete. Each
# command is tried again after a pause when it fails (scripts/retry.sh).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export NO_COLOR=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# step NAME COMMAND...: runs COMMAND with retries, its output kept in the pass's log (shown when the
# step fails, and read for the downloads).
step() {
  local name=$1
  shift
  scripts/retry.sh "$name" "$@" >>"$work/log" 2>&1 || {
    tail -30 "$work/log" >&2
    return 1
  }
}

pass() {
  : >"$work/log"
  step "deno install" deno install --frozen &&
    step "deno cache" deno cache --frozen main.ts src tests scripts &&
    step "deno bundle" deno bundle --frozen --platform deno --output "$work/sidecar.js" \
      src/sidecar/main.ts
}

for ((n = 1; n <= 4; n++)); do
  pass || { echo "cache_deno: cannot fill Deno's cache (see above)" >&2; exit 1; }
  downloads=$(grep -c '^Download ' "$work/log")
  if [[ "$downloads" == 0 ]]; then
    echo "cache_deno: Deno's cache ($(deno info --json | sed -n 's/.*"denoDir": "\(.*\)".*/\1/p')) is complete: pass $n downloaded nothing" >&2
    exit 0
  fi
  echo "cache_deno: pass $n downloaded $downloads files" \
    "($(grep '^Download ' "$work/log" | grep -oE '[^/]+$' | head -3 | tr '\n' ' ')...)" >&2
done
echo "cache_deno: warning: Deno still downloads after 4 passes; the tests may reach the registry" >&2
