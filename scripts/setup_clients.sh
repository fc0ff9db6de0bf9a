#!/usr/bin/env bash
# Installs the real AWS clients that tests/clients_test.ts runs against the sidecar's credentials
# (and the AWS SDK for Java v2 from Maven Central, below):
# boto3, pyarrow, DuckDB (with its httpfs and aws extensions, from PyPI's duckdb-ext packages, since
# DuckDB would otherwise download them at run time) and polars into .venv/clients, and polars alone
# (no boto3, so it uses Rust's object_store) into .venv/clients-noboto. Prints the first venv's
# path. Idempotent: a venv whose pins match is reused. Only this script reaches the network (PyPI),
# each download retried; the tests never do.
set -euo pipefail

readonly BOTO3_VERSION="1.44.8" PYARROW_VERSION="26.0.1" POLARS_VERSION="2.1.0"
# The extension packages are built for one DuckDB release: keep the three pins together.
readonly DUCKDB_VERSION="1.4.4" DUCKDB_EXT_VERSION="1.4.4.20260205"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv/clients"
noboto="$repo_root/.venv/clients-noboto"
pins="boto3==$BOTO3_VERSION pyarrow==$PYARROW_VERSION polars==$POLARS_VERSION duckdb==$DUCKDB_VERSION"
pins+=" duckdb-ext-httpfs==$DUCKDB_EXT_VERSION duckdb-ext-aws==$DUCKDB_EXT_VERSION"

python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || { echo "setup_clients: cannot find \"$python\"" >&2; exit 1; }

make_venv() { # venv, pins...
  local dir="$1"; shift
  if [[ -f "$dir/.pins" && "$(cat "$dir/.pins")" == "$*" ]]; then return 0; fi
  echo "setup_clients: installing $* into $dir" >&2
  "$python" -m venv "$dir" >&2 || { echo "setup_clients: \"$python -m venv\" failed" >&2; exit 1; }
  # shellcheck disable=SC2086
  "$repo_root/scripts/retry.sh" "pip install $*" "$dir/bin/python" -m pip install --quiet \
    --disable-pip-version-check $* >&2
  echo "$*" >"$dir/.pins"
}

make_venv "$venv" $pins
make_venv "$noboto" "polars==$POLARS_VERSION"
if "$noboto/bin/python" -c 'import boto3' 2>/dev/null; then
  echo "setup_clients: $noboto must not hold boto3" >&2
  exit 1
fi

# The extensions load from the venv, never from DuckDB's repository.
"$venv/bin/python" - "$venv" >&2 <<'PY' || { echo "setup_clients: DuckDB cannot load httpfs and aws" >&2; exit 1; }
import glob, sys, duckdb
extensions = glob.glob(sys.argv[1] + "/lib/python3*/site-packages/duckdb_ext/extensions")[0]
con = duckdb.connect(config={"autoinstall_known_extensions": False})
con.execute(f"SET extension_directory = '{extensions}'")
con.execute("LOAD httpfs")
con.execute("LOAD aws")
PY

# The JVM client: the AWS SDK for Java v2 from Maven Central into ~/.m2 (outside the clone), and
# its classpath for `java -cp` (tests/clients/jvm/pom.xml pins it through the SDK's BOM).
classpath="$repo_root/.venv/jvm-classpath.txt"
pom="$repo_root/tests/clients/jvm/pom.xml"
if [[ ! -s "$classpath" || "$pom" -nt "$classpath" ]]; then
  command -v mvn >/dev/null 2>&1 || { echo "setup_clients: mvn is missing (Maven 3, with Java 17)" >&2; exit 1; }
  "$repo_root/scripts/retry.sh" "mvn dependency:build-classpath" mvn -q -B -f "$pom" \
    dependency:build-classpath "-Dmdep.outputFile=$classpath" >&2
fi
echo "$venv"
