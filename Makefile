# agentid — run `make help` for the targets.
#
# Everything here needs only Go (and, for the tests of later issues, the
# programs the tool modules under test/tools build). Tools are pinned in their
# own modules; nothing relies on a hand install.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
PKGS := ./...
# The test suites live in a module of their own under test/ (its go.mod
# carries the test-only dependencies: k8s.io/api, go-oidc, Prometheus's
# parsers), so a service importing pkg/verify inherits only what it runs.
# `$(GO) -C test` runs the go command inside that module.
TESTMOD := $(GO) -C test
# Benchmarks: override e.g. `make bench BENCH=BenchmarkCreate BENCHPKGS=./pkg/store/...`.
BENCH ?= .
BENCHPKGS ?= ./pkg/...
BENCHTIME ?= 1s

.DEFAULT_GOAL := help

include test/tools/tools.mk

.PHONY: help
help: ## show this help
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

.PHONY: build
build: ## build every binary into ./bin
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: test
test: unit e2e ## run every test: unit, then end to end on real SPIRE and Hydra (the README's test command; CI runs it)

.PHONY: ci
ci: ## what CI (.ci/run) runs: lint, tidy-check, generate-check, checksums-check, the unit tests under -race, then make test
	@t=$$SECONDS; $(MAKE) --no-print-directory lint; echo "ci: lint $$((SECONDS - t))s"
	@t=$$SECONDS; $(MAKE) --no-print-directory tidy-check; echo "ci: tidy-check $$((SECONDS - t))s"
	@t=$$SECONDS; $(MAKE) --no-print-directory generate-check; echo "ci: generate-check $$((SECONDS - t))s"
	@t=$$SECONDS; $(MAKE) --no-print-directory checksums-check; echo "ci: checksums-check $$((SECONDS - t))s"
	@t=$$SECONDS; $(MAKE) --no-print-directory unit-race; echo "ci: unit-race $$((SECONDS - t))s"
	@t=$$SECONDS; $(MAKE) --no-print-directory test; echo "ci: test $$((SECONDS - t))s"

.PHONY: unit-race
unit-race: ## the main module's unit tests under the race detector (part of make ci)
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

.PHONY: demo
demo: tools ## the main job: on real SPIRE and Hydra, a user delegates to an agent, it calls a service, sub-delegates, the user revokes
	$(TESTMOD) run ./demo

.PHONY: unit
unit: ## run the unit and integration tests (no outside programs), the chart tests among them
	$(GO) test -count=1 -timeout 20m $(PKGS)
	$(TESTMOD) test -count=1 -timeout 20m ./...

.PHONY: e2e
e2e: tools ## run the end-to-end suites on real SPIRE and Hydra (builds them first when missing)
	$(TESTMOD) test -count=1 -tags e2e -timeout 30m ./e2e/... ./harness/... ./bench/...

# golangci-lint, built by test/tools/build.sh from its tool module (pinned in
# test/tools/golangci-lint/go.mod) into the shared bin dir.
GOLANGCI_LINT := $(or $(AGENTID_TOOLS_BIN),$(BIN))/golangci-lint/golangci-lint

.PHONY: lint
lint: tools-lint ## golangci-lint (.golangci.yml: staticcheck, errorlint, gosec, revive, …), go vet, gofmt and buf lint
	$(GOLANGCI_LINT) run ./...
	cd test && $(GOLANGCI_LINT) run ./...
	$(GO) vet $(PKGS)
	$(TESTMOD) vet ./...
	$(TESTMOD) vet -tags e2e ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	./proto/generate.sh lint

.PHONY: generate
generate: ## regenerate the Go code of proto/ with the pinned tools
	./proto/generate.sh

.PHONY: generate-check
generate-check: ## fail when generated code differs from what is committed
	./proto/generate.sh check

.PHONY: tidy-check
tidy-check: ## fail when go.mod/go.sum are not tidy
	$(GO) mod tidy -diff
	$(TESTMOD) mod tidy -diff

.PHONY: chart-test
chart-test: ## helm lint/template the chart and check every manifest (Helm v3.22.0 as a pinned go tool; part of unit)
	$(TESTMOD) test -count=1 -timeout 20m ./chart/...

.PHONY: checksums checksums-check
checksums: ## rebuild the SPIRE plugins reproducibly; pin their sha256 in the chart and examples
	GO=$(GO) ./charts/images/checksums.sh write

checksums-check: ## fail when the pinned plugin checksums differ from a fresh build
	GO=$(GO) ./charts/images/checksums.sh check

IMAGE_REGISTRY ?= ghcr.io/agentid
IMAGE_TAG ?= dev
PLATFORMS ?= linux/amd64
.PHONY: images
images: ## build the images with docker buildx (needs a docker engine; not run in CI)
	IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG) PLATFORMS=$(PLATFORMS) ./charts/images/images.sh

# Flags for bench-spire, e.g. BENCHSPIRE_FLAGS='-rounds 20 -min-ratio 0'.
BENCHSPIRE_FLAGS ?=

.PHONY: bench-spire
bench-spire: tools-spire ## issuance on real SPIRE: agentid-composer vs the shaped composer (same claims, no work); fails below 0.98 throughput or above 1.02x CPU per token; not in make test
	$(TESTMOD) test -v -count=1 -tags e2e -run '^$$' -bench BenchmarkIssuance -benchtime 1x -timeout 20m ./bench/ $(BENCHSPIRE_FLAGS)

.PHONY: bench
bench: ## run benchmarks (BENCH, BENCHPKGS, BENCHTIME select)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) $(BENCHPKGS)
