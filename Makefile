# Berth. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
PKGS := ./pkg/events/... ./pkg/platform/... ./services/api/... ./services/provisioner/... ./cmd/workspace-demo/...
IMAGE_CTX := .cache/images
BIN := bin

.PHONY: help build images run test bench lint fmt clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build every service into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/berth-api ./services/api
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/berth-provisioner ./services/provisioner

images: ## build the local images (no pull): berth/workspace-demo
	@rm -rf $(IMAGE_CTX)/workspace-demo && mkdir -p $(IMAGE_CTX)/workspace-demo
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(IMAGE_CTX)/workspace-demo/workspace-demo ./cmd/workspace-demo
	cp deploy/images/workspace-demo/Dockerfile $(IMAGE_CTX)/workspace-demo/
	mkdir -p $(IMAGE_CTX)/workspace-demo/home
	docker build -q -t berth/workspace-demo:latest $(IMAGE_CTX)/workspace-demo

run: build ## start Berth locally (API with embedded NATS, provisioner; dev tokens on); Ctrl-C stops it
	@docker image inspect berth/workspace-demo:latest >/dev/null 2>&1 || $(MAKE) images
	./scripts/run.sh

test: ## unit and integration tests (in-process NATS; Docker-backed tests need an engine)
	$(GO) test -count=1 -race -timeout 15m $(PKGS)

bench: ## benchmarks: log append rate; launch latency vs raw docker run (20 launches each, needs Docker)
	$(GO) test -run '^$$' -bench . -benchtime 2s ./pkg/events/... ./pkg/platform/... ./services/api/...
	$(GO) test -run '^$$' -bench . -benchtime 20x ./services/provisioner/...

lint: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l pkg services); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean: ## remove built binaries (keeps data/)
	rm -rf $(BIN)
