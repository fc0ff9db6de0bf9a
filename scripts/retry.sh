#!/usr/bin/env bash
# retry.sh WHAT COMMAND...: runs COMMAND, and again after a pause if it fails, up to
# IRSA_RETRY_TRIES times in all (default 3); the pause is IRSA_RETRY_PAUSE seconds (default 10),
# doubled after each failed try. For the steps that reach a package registry (npm, pip, go, apt,
# Deno's npm cache): a registry that answers slowly or drops a connection once does not fail CI.
#
# COMMAND's standard output and exit status pass through (the last try's); the notes about tries go
# to standard error. WHAT names the step in those notes. A compound command goes through
# `bash -c '...'`.
set -uo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: retry.sh WHAT COMMAND..." >&2
  exit 64
fi
what=$1
shift
tries=${IRSA_RETRY_TRIES:-3}
pause=${IRSA_RETRY_PAUSE:-10}

for ((try = 1; ; try++)); do
  "$@"
  status=$?
  [[ $status == 0 ]] && exit 0
  if ((try >= tries)); then
    echo "retry: $what failed $try times (exit $status); giving up" >&2
    exit "$status"
  fi
  echo "retry: $what failed (exit $status, try $try of $tries); trying again in ${pause}s" >&2
  sleep "$pause"
  pause=$((pause * 2))
done
