#!/usr/bin/env bash
# Regenerate go.mod/go.sum of this wrapper module for another Kubernetes release.
#
#   scripts/k8s-build/bump.sh v1.37.2
#
# Reads the staging modules from that release's own go.mod (the `=> ./staging/...`
# replace directives) and replaces each with its published v0.<minor>.<patch>.
# Then `scripts/cluster install` builds into a new versioned bin folder.
set -euo pipefail

version="${1:?usage: $0 vX.Y.Z (see: go list -m -versions k8s.io/kubernetes)}"
here="$(cd "$(dirname "$0")" && pwd)"
staging_version="v0.${version#v1.}"

gomod="$(cd "${TMPDIR:-/tmp}" && go mod download -json "k8s.io/kubernetes@${version}" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
go_directive="$(awk '$1 == "go" {print $2; exit}' "$gomod")"

{
	echo '// Wrapper module that builds the Kubernetes control plane (and etcd) from the'
	echo '// Go module proxy. k8s.io/kubernetes replaces its staging modules with'
	echo '// ./staging paths, so it cannot be "go install"ed directly; here every staging'
	echo '// module is replaced with its published v0.X.Y instead. Regenerate with'
	echo '// scripts/k8s-build/bump.sh when changing the version.'
	echo 'module github.com/ai-traiding/k8s-build'
	echo
	echo "go ${go_directive}"
	echo
	echo "require k8s.io/kubernetes ${version}"
	echo
	echo 'replace ('
	# sample-* modules are examples that are not published for every release.
	awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod" | grep -v '/sample-' |
		while read -r module; do
			printf '\t%s => %s %s\n' "$module" "$module" "$staging_version"
		done
	echo ')'
	echo
	echo 'tool ('
	for cmd in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubelet; do
		printf '\tk8s.io/kubernetes/cmd/%s\n' "$cmd"
	done
	echo ')'
} >"$here/go.mod"
rm -f "$here/go.sum"
cd "$here"
GOFLAGS=-mod=mod go mod tidy
echo "go.mod now pins k8s.io/kubernetes ${version}; run scripts/cluster install" >&2
