# Switchyard: the two commands a newcomer needs are `make dev` and `make test`.
GO ?= go
SHELL := bash
# Stamped into the binary (switchyard version, switchyard_build_info); the Dockerfile takes the
# same two values as build arguments.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BIN ?= bin/switchyard
LDFLAGS := -X github.com/switchyard-dev/switchyard/internal/app.Version=$(VERSION) \
	-X github.com/switchyard-dev/switchyard/internal/app.Commit=$(COMMIT)

.PHONY: dev test bench build generate generate-go vet

## dev: run the embedded default (in-process broker, sample events, configs/dev.yaml);
## flags in DEV_FLAGS, e.g. make dev DEV_FLAGS='--rate 500'. It runs the built binary (exec,
## no `go run`): Ctrl-C reaches the daemon alone, which drains and exits 0, and so does make.
DEV_FLAGS ?=
dev: build
	@echo "starting $(BIN) dev $(DEV_FLAGS) (Ctrl-C drains in-flight events and exits)"
	@exec $(BIN) dev $(DEV_FLAGS)

## build: bin/switchyard (or BIN=path), version and commit stamped. The first build compiles every
## dependency and takes a few minutes; later ones take seconds.
build:
	@echo "building $(BIN) $(VERSION) (the first build compiles all dependencies: a few minutes, later ones seconds)"
	@$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/switchyard

## test: go.mod tidy, vet, then every test: unit, fuzz seed corpora, generated-docs drift, and integration tests
## against a real Apache Kafka broker and a real ClickHouse server started by the harness
## (.ci/setup first installs clickhouse-server and fetches the Kafka jars when missing).
## Progress: internal/testprogress prints each package's result as it finishes; the exit
## status is go test's (pipefail) or the formatter's, whichever fails.
test:
	bash .ci/setup
	$(GO) mod tidy -diff
	$(GO) vet ./...
	@echo "go test ./...: a line per package as it finishes, one per test of 10s or more (the integration tests take minutes)"
	set -o pipefail; $(GO) test -json -count=1 -timeout 30m ./... | $(GO) run ./internal/testprogress

## bench: throughput, CPU per event and peak RSS of the daemon through real Kafka, ClickHouse and
## the BigQuery fake, then the package microbenchmarks; ends with ONE table of every daemon scenario,
## also appended to $(BENCH_OUT) to compare runs (see docs/benchmarks.md)
BENCH_OUT ?= bench-results/$(shell date -u +%Y-%m-%dT%H%M%S).txt
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 300000x ./sinks/bigquery/
	$(GO) test -run '^$$' -bench . -benchmem ./transforms/ ./contract/
	SWITCHYARD_BENCH_OUT=$(abspath $(BENCH_OUT)) $(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 90m ./integration/bench/...

## generate: regenerate docs/config.md and docs/config.schema.json from the config declaration
generate:
	$(GO) run ./internal/config/gen

## generate-go: regenerate the Go types of contracts/ into gen/go (buf + protoc-gen-go from .ci/setup)
TOOLS ?= $(HOME)/.cache/switchyard/tools
generate-go:
	PATH="$(TOOLS)/bin:$(HOME)/.cache/switchyard/buf/node_modules/.bin:$$PATH" buf generate

vet:
	$(GO) vet ./...
