# Berth. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
PKGS := ./pkg/events/... ./pkg/platform/... ./services/api/... ./services/provisioner/... ./services/router-sync/... ./services/reaper/... ./cmd/workspace-demo/... ./cmd/berth-term/... ./cmd/berth-desktop/... ./cmd/benchtable/... ./cmd/probe/... ./cmd/berthctl/... ./cmd/testtimes/... ./tests/e2e/...
LINT_PKGS := $(PKGS) ./tests/compose/...
BIN := bin
IMAGE_CTX := .cache/images
# v3.7.x does not build here (some DNS-provider dependencies are not served).
TRAEFIK_VERSION := v3.6.12
TRAEFIK_BIN := $(BIN)/traefik-$(TRAEFIK_VERSION)

.PHONY: help build images traefik traefik-path up up-cluster down logs run test test-times test-compose stress bench lint fmt clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build every service into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/berth-api ./services/api
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/berth-provisioner ./services/provisioner
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/berth-router-sync ./services/router-sync
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/berth-reaper ./services/reaper
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/berthctl ./cmd/berthctl

traefik: $(TRAEFIK_BIN) ## build the pinned Traefik into bin/ (cached)

$(TRAEFIK_BIN):
	./scripts/build-traefik.sh $(TRAEFIK_VERSION) $@

traefik-path: # used by tests: where `make traefik` puts the binary
	@echo $(TRAEFIK_BIN)

images: $(TRAEFIK_BIN) ## build every local image, no pull: workspace-demo, workspace-debian (root; cached), workspace-jupyter and workspace-desktop (cached), api, provisioner, router-sync, reaper, nats, traefik
	./scripts/build-images.sh $(TRAEFIK_BIN)
	./scripts/build-workspace-debian.sh
	./scripts/build-workspace-jupyter.sh
	./scripts/build-workspace-desktop.sh

COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# make up: the compose stack on the local images (no pull), dev tokens on.
# The bus's passwords are generated once into NATS_ENV (0600).
NATS_ENV := data/compose-nats.env
COMPOSE_LOCAL := BERTH_NATS_IMAGE=berth/nats:local BERTH_TRAEFIK_IMAGE=berth/traefik:local \
	BERTH_PROJECTS_ROOT=$${BERTH_PROJECTS_ROOT:-$(CURDIR)/data/projects} BERTH_DEV_TOKENS=$${BERTH_DEV_TOKENS:-true} \
	$(COMPOSE) --env-file $(NATS_ENV) -p berth -f deploy/compose/compose.yaml

# Every run adds the passwords of identities the file lacks (a file from an
# older Berth gets the newer ones) and keeps the others.
.PHONY: $(NATS_ENV)
$(NATS_ENV):
	@mkdir -p $(dir $@)
	@umask 077 && touch $@ && for u in API PROVISIONER ROUTER_SYNC REAPER OPS INTAKE; do \
		grep -q "^BERTH_NATS_$${u}_PASSWORD=" $@ || \
		echo "BERTH_NATS_$${u}_PASSWORD=$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >> $@; done

up: images $(NATS_ENV) ## start Berth with compose on the local images (Traefik on 127.0.0.1:8000, API on 127.0.0.1:8080)
	@mkdir -p data/projects
	@if [ "$${BERTH_DEV_TOKENS:-true}" = true ] && [ "$${BERTH_BIND:-127.0.0.1}" != 127.0.0.1 ]; then \
		echo "refusing: development tokens with ports open to the network (BERTH_BIND=$$BERTH_BIND); set BERTH_DEV_TOKENS=false" >&2; exit 1; fi
	$(COMPOSE_LOCAL) up -d
	@echo "Berth is starting: API http://localhost:8080, workspaces http://localhost:8000/workspace-<name>/"
	@if [ "$${BERTH_DEV_TOKENS:-true}" = true ]; then echo "WARNING: development tokens are on: anyone who reaches the API port can mint an admin token (BERTH_DEV_TOKENS=false turns them off)"; fi

up-cluster: ## the compose stack with a three-node NATS cluster, every stream and bucket at three replicas (docs/scale.md)
	$(MAKE) up COMPOSE_LOCAL='$(COMPOSE_LOCAL) -f deploy/compose/compose.cluster.yaml'

down: $(NATS_ENV) ## stop the compose stack (volumes kept)
	$(COMPOSE_LOCAL) down --remove-orphans

logs: $(NATS_ENV) ## follow the compose stack's logs
	$(COMPOSE_LOCAL) logs -f

run: build $(TRAEFIK_BIN) ## start Berth locally (API + embedded NATS, provisioner, router-sync, reaper, Traefik); Ctrl-C stops it
	@docker image inspect berth/workspace-demo:latest >/dev/null 2>&1 || $(MAKE) images
	TRAEFIK_BIN=$(TRAEFIK_BIN) ./scripts/run.sh

test: ## unit and integration tests (in-process NATS; Docker-backed tests need an engine)
	$(GO) test -count=1 -race -timeout 15m $(PKGS)

test-times: ## make test's packages with per-package wall times and the slowest tests (data/test.json kept)
	@mkdir -p data
	$(GO) test -count=1 -race -timeout 15m -json $(PKGS) > data/test.json || true
	@$(GO) run ./cmd/testtimes < data/test.json
	@! grep -q '"Action":"fail"' data/test.json

stress: ## the bus-, Docker- and cluster-facing tests under -race, STRESS_COUNT times (5) beside STRESS_LOAD CPU loops (2); STRESS_RUN filters (docs/testing.md)
	GO=$(GO) ./scripts/stress.sh

test-compose: images ## the compose stack end to end (its own project and ports 18000/18080)
	$(GO) test -count=1 -timeout 15m ./tests/compose/...

bench: ## benchmarks, then one table of figures vs goals (docs/benchmarks.md); raw output in data/bench.out (needs Docker)
	@mkdir -p data
	{ BERTH_BENCH_REPLAY_EVENTS=$${BERTH_BENCH_REPLAY_EVENTS:-1000000} $(GO) test -run '^$$' -bench . -benchtime 2s ./pkg/events/... ./pkg/platform/... ./services/api/... ./services/reaper/... ./services/router-sync/...; \
	  $(GO) test -run '^$$' -bench . -skip 'BacklogDrain|Concurrent|IdleRSS|FirstUse' -benchtime 20x ./services/provisioner/... ./tests/e2e/...; \
	  $(GO) test -run '^$$' -bench 'FirstUse' -benchtime 5x ./tests/e2e/; \
	  $(GO) test -run '^$$' -bench 'Concurrent' -benchtime 3x ./services/provisioner/; \
	  $(GO) test -run '^$$' -bench 'IdleRSS' -benchtime 1x ./tests/e2e/; \
	  $(GO) test -run '^$$' -bench BacklogDrain -benchtime 1x ./services/provisioner/; } 2>&1 | tee data/bench.out
	@echo; $(GO) run ./cmd/benchtable < data/bench.out

lint: ## go vet and gofmt
	$(GO) vet $(LINT_PKGS)
	@out=$$(gofmt -l pkg services cmd tests); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean: ## remove built binaries (keeps data/)
	rm -rf $(BIN)
