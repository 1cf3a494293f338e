# Switchyard: the two commands a newcomer needs are `make dev` and `make test`.
GO ?= go

.PHONY: dev test bench build generate vet

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

## bench: throughput, CPU per event and peak RSS of the daemon through real Kafka, ClickHouse and
## the BigQuery fake, then the package microbenchmarks; ends with ONE table of every daemon scenario,
## also appended to $(BENCH_OUT) to compare runs (see docs/benchmarks.md)
BENCH_OUT ?= bench-results/$(shell date -u +%Y-%m-%dT%H%M%S).txt
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 300000x ./sinks/bigquery/
	$(GO) test -run '^$$' -bench . -benchmem ./transforms/ ./contract/
	SWITCHYARD_BENCH_OUT=$(abspath $(BENCH_OUT)) $(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 90m ./integration/bench/...

build:
	$(GO) build -o bin/switchyard ./cmd/switchyard

## generate: regenerate docs/config.md and docs/config.schema.json from the config declaration
generate:
	$(GO) run ./internal/config/gen

vet:
	$(GO) vet ./...
