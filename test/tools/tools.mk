# Make targets for the outside programs the end-to-end tests run. Included
# by the top-level Makefile; everything lives in test/tools/build.sh, which
# is idempotent (skips a tool whose binaries match its go.mod/go.sum stamp)
# and safe to run concurrently (a lock per tool).
#
# First builds on 2 cores with empty caches: SPIRE about 6 minutes, Hydra
# about 3 (download included).

TOOLS_BUILD := $(CURDIR)/test/tools/build.sh

.PHONY: tools tools-spire tools-hydra tools-kube tools-lint
tools: ## build SPIRE and Hydra for the end-to-end tests into ./bin (skipped when up to date)
	GO=$(GO) $(TOOLS_BUILD) all

tools-spire: ## build spire-server, spire-agent, oidc-discovery-provider into ./bin/spire
	GO=$(GO) $(TOOLS_BUILD) spire

tools-hydra: ## build Ory Hydra (sqlite tag, DSN=memory) into ./bin/hydra
	GO=$(GO) $(TOOLS_BUILD) hydra

tools-kube: ## build etcd, CoreDNS and the Kubernetes v1.37.2 programs for test/cluster into ./bin/{etcd,coredns,kube} (first build ~15 min on 2 cores)
	GO=$(GO) $(TOOLS_BUILD) etcd
	GO=$(GO) $(TOOLS_BUILD) coredns
	GO=$(GO) $(TOOLS_BUILD) kube

tools-lint: ## build golangci-lint (v2, for make lint) into ./bin/golangci-lint
	GO=$(GO) $(TOOLS_BUILD) golangci-lint
