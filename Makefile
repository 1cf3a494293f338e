# Switchyard: the two commands a newcomer needs are `make dev` and `make test`.
GO ?= go

.PHONY: dev test bench build generate generate-go vet

## dev: run the embedded default (in-process broker, sample events, configs/dev.yaml)
dev:
	$(GO) run ./cmd/switchyard dev

## test: go.mod tidy, vet, then every test: unit, fuzz seed corpora, generated-docs drift, and integration tests
## against a real Apache Kafka broker and a real ClickHouse server started by the harness
## (.ci/setup first installs clickhouse-server and fetches the Kafka jars when missing)
test:
	bash .ci/setup
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

## bench: throughput, CPU per event and peak RSS through real Kafka (see the Benchmarks section of README.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 60m ./integration/bench/...
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 300000x ./sinks/bigquery/
	$(GO) test -run '^$$' -bench . -benchmem ./transforms/ ./contract/

build:
	$(GO) build -o bin/switchyard ./cmd/switchyard

## generate: regenerate docs/config.md and docs/config.schema.json from the config declaration
generate:
	$(GO) run ./internal/config/gen

## generate-go: regenerate the Go types of contracts/ into gen/go (buf + protoc-gen-go from .ci/setup)
TOOLS ?= $(HOME)/.cache/switchyard/tools
generate-go:
	PATH="$(TOOLS)/bin:$(TOOLS)/npm/node_modules/.bin:$$PATH" buf generate

vet:
	$(GO) vet ./...
