#!/usr/bin/env bash
# generate.sh builds the pinned protobuf tools and runs them on proto/.
#
#   proto/generate.sh            regenerate the *.pb.go files beside the .proto files
#   proto/generate.sh check      fail if the committed *.pb.go files differ from
#                                what generation produces (the tree is not touched)
#   proto/generate.sh lint       buf lint (STANDARD + COMMENTS, see buf.yaml)
#
# It works from any directory. The tools are the versions pinned in
# proto/tools/go.mod (buf, protoc-gen-go, protoc-gen-go-grpc), built with
# `go build` into bin/proto-tools/ at the repository root (git-ignored, or
# $AGENTID_PROTO_TOOLS_BIN); Go's build cache makes rebuilding them cheap.
# Nothing from PATH but `go` itself is used.
set -euo pipefail

proto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "${proto_dir}/.." && pwd)"
bin_dir="${AGENTID_PROTO_TOOLS_BIN:-${repo_dir}/bin/proto-tools}"

die() {
	echo "generate.sh: $*" >&2
	exit 1
}

# The generated code is compiled against the main module's protobuf runtime,
# so the generator must come from the very same release.
check_versions() {
	local main_pb tools_pb
	main_pb="$(cd "${repo_dir}" && go list -m -f '{{.Version}}' google.golang.org/protobuf)"
	tools_pb="$(cd "${proto_dir}/tools" && go list -m -f '{{.Version}}' google.golang.org/protobuf)"
	if [[ "${main_pb}" != "${tools_pb}" ]]; then
		die "google.golang.org/protobuf is ${main_pb} in go.mod but ${tools_pb} in proto/tools/go.mod; make them equal"
	fi
}

build_tools() {
	mkdir -p "${bin_dir}"
	(cd "${proto_dir}/tools" && go build -o "${bin_dir}/" \
		github.com/bufbuild/buf/cmd/buf \
		google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc)
}

# buf runs with the pinned plugins first on PATH (buf.gen.yaml names them as
# `local:` plugins) and with its cache under bin_dir, so no state outside the
# repository leaks in.
buf() {
	PATH="${bin_dir}:${PATH}" BUF_CACHE_DIR="${bin_dir}/buf-cache" "${bin_dir}/buf" "$@"
}

# generate_into writes the generated files for every .proto under proto/ into
# the directory $1 (paths relative to proto/).
generate_into() {
	(cd "${proto_dir}" && buf generate --template buf.gen.yaml --output "$1")
}

# generated_files lists the *.pb.go files under directory $1, relative to it,
# sorted, leaving out the tool module.
generated_files() {
	(cd "$1" && find . -path ./tools -prune -o -name '*.pb.go' -type f -print | LC_ALL=C sort)
}

# check_callers fails when an RPC's comment does not say who may call it
# (a paragraph starting "Callers:"); buf's COMMENTS rules only check that a
# comment exists.
check_callers() {
	local missing
	missing="$(cd "${proto_dir}" && find . -path ./tools -prune -o -name '*.proto' -type f -print |
		LC_ALL=C sort | xargs awk '
			FNR == 1 { comment = "" }
			/^[[:space:]]*\/\// { comment = comment $0 "\n"; next }
			/^[[:space:]]*rpc[[:space:]]/ {
				if (comment !~ /\/\/ Callers:/) { print FILENAME ":" FNR ": " $2 }
			}
			{ comment = "" }
		')"
	if [[ -n "${missing}" ]]; then
		echo "${missing}" >&2
		die "these RPCs do not say who may call them (add a \"Callers:\" paragraph)"
	fi
}

cmd="${1:-generate}"
case "${cmd}" in
generate)
	check_versions
	build_tools
	# Remove what an earlier run produced, so a renamed or deleted .proto
	# leaves no stale Go file behind.
	(cd "${proto_dir}" && find . -path ./tools -prune -o -name '*.pb.go' -type f -exec rm -f {} +)
	generate_into .
	;;
check)
	check_versions
	build_tools
	tmp="$(mktemp -d)"
	trap 'rm -rf "${tmp}"' EXIT
	generate_into "${tmp}"
	if ! diff -u <(generated_files "${proto_dir}") <(generated_files "${tmp}") >/dev/null; then
		echo "generate.sh: generated files differ in name (left: committed, right: generated):" >&2
		diff -u <(generated_files "${proto_dir}") <(generated_files "${tmp}") >&2 || true
		die "run make generate and commit the result"
	fi
	status=0
	while IFS= read -r f; do
		if ! cmp -s "${proto_dir}/${f}" "${tmp}/${f}"; then
			diff -u "${proto_dir}/${f}" "${tmp}/${f}" >&2 || true
			status=1
		fi
	done < <(generated_files "${tmp}")
	if [[ ${status} -ne 0 ]]; then
		die "generated code is out of date: run make generate and commit the result"
	fi
	;;
lint)
	build_tools
	(cd "${proto_dir}" && buf lint)
	check_callers
	;;
*)
	die "unknown command ${cmd@Q}; use generate, check or lint"
	;;
esac
