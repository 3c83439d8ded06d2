# Maxine: `make run` starts it (local mode), `make test` runs every test.
GO      ?= go
BIN     ?= bin/maxine
VERSION ?= 0.1.0
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(shell git rev-parse --short HEAD 2>/dev/null)
# Packages with concurrent code: always tested under the race detector.
RACE_PKGS := ./registry/ ./lb/ ./gateway/ ./persistence/ ./coordination/ ./observe/ ./auth/ ./admin/ ./config/
# Fuzz runs are bounded by a count of inputs, never by time: a time-limited
# run can fail at its deadline on a loaded machine (a known Go 1.26 issue).
# 10000 inputs per target take a few seconds each (building the
# instrumented test binaries takes longer than fuzzing).
FUZZTIME ?= 10000x

.PHONY: all build run test unit race e2e fuzz lint bench bench-deps deps redis-deps clean chart chart-deps container

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/maxine

run: build
	./$(BIN)

# deps installs what the tests need on a fresh machine: the Go modules and
# the staticcheck tool pinned in go.mod.
deps: redis-deps
	$(GO) mod download
	$(GO) build -o /dev/null honnef.co/go/tools/cmd/staticcheck

# redis-deps installs redis-server and redis-sentinel (Debian packages) when
# missing: the redis-mode tests start real ones on free loopback ports.
redis-deps:
	@command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-sentinel; }

lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

race:
	$(GO) test -race -count=1 $(RACE_PKGS)

# The race packages' tests run under race; the allocation tests, which
# skip there (the detector allocates), run here without it.
# unit also runs every Benchmark once (-benchtime=1x), so benchmark-only
# code is compiled and exercised; ./bench/ includes a short end-to-end run
# of the bench harness against maxine, nginx, HAProxy, wrk and redis-server.
unit: bench-deps
	$(GO) test -count=1 ./bench/ ./trace/ ./internal/... ./cmd/...
	$(GO) test -count=1 -run 'Alloc' $(RACE_PKGS)
	$(GO) test -count=1 -run '^$$' -bench . -benchtime=1x ./...

e2e:
	$(GO) test -count=1 -timeout 10m ./e2e/

# Fuzz runs of every parser, by count (FUZZTIME); seed corpora live in testdata/fuzz.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRegistration$$' -fuzztime $(FUZZTIME) ./registry/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./auth/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./trace/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenLogFile$$' -fuzztime $(FUZZTIME) ./observe/
	$(GO) test -run '^$$' -fuzz '^FuzzValidPath$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzRequestHead$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzHeadScan$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzViaNames$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzSharedDecode$$' -fuzztime $(FUZZTIME) ./persistence/

# test is the whole suite; .ci/run calls exactly this.
test: lint race unit e2e fuzz chart container

# chart tests the Helm chart charts/maxine and the workflows (actionlint):
# charts/ is a Go module of its own (Helm's library stays out of go.mod).
# The chart tests start bin/maxine with the env a rendered Deployment gives
# it, against real redis-server and redis-sentinel processes.
chart: build chart-deps
	@start=$$(date +%s); \
	cd charts && $(GO) vet ./... && ../bin/staticcheck ./... && \
	MAXINE_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 20m ./... && \
	echo "chart: tests took $$(( $$(date +%s) - start ))s"

# chart-deps: redis for the run tests, shellcheck for actionlint, and the
# main module's pinned staticcheck built for the charts module.
chart-deps: redis-deps
	@command -v shellcheck >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck; }
	$(GO) build -o bin/staticcheck honnef.co/go/tools/cmd/staticcheck

# container builds the Dockerfile with local stand-in base images and runs
# the image for real (deploy/). docker-up.sh installs Docker's engine and
# busybox-static when missing and starts dockerd when none answers.
container:
	@deploy/docker-up.sh
	@start=$$(date +%s); \
	MAXINE_CONTAINER_TEST=1 $(GO) test -count=1 -v -timeout 30m -run '^TestContainerImage$$' ./deploy/ && \
	echo "container: test took $$(( $$(date +%s) - start ))s"

# bench-deps installs the comparison servers and wrk (Debian packages), and
# redis-server for the redis state-mode rows.
bench-deps: redis-deps
	@{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null && { command -v haproxy || test -x /usr/sbin/haproxy; } >/dev/null && command -v wrk >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy wrk; } || { \
		echo "bench-deps: cannot install nginx, haproxy and wrk (apt-get as root); the bench tests need them" >&2; exit 1; }

bench: build
	$(GO) run ./bench -maxine-bin $(BIN) $(BENCH_FLAGS)

clean:
	rm -rf bin
