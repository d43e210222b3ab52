# flowspan — build, test and lint. See README.md.
SHELL := /bin/bash
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

# Debian packages the integration tests, the demo and the benchmarks need.
DEB_PACKAGES := openvswitch-switch tcpdump iproute2 iperf3 ethtool iputils-ping
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The whole suite must stay well under 15 minutes on 2 cores.
TEST_TIMEOUT ?= 14m
FUZZTIME ?= 50000x

.PHONY: all deps build test test-unit fuzz lint models conformance bench demo clean

all: build

## deps: install missing Debian packages and download Go modules (idempotent, quiet when nothing is missing)
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: need root to install$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@$(GO) mod download

## build: bin/flowspan (the client-only build: every command but serve, which runs
## bin/flowspan-daemon) and bin/flowspan-daemon (the full build of the same command)
build:
	$(GO) build -tags flowspanclient -o bin/flowspan ./cmd/flowspan
	$(GO) build -o bin/flowspan-daemon ./cmd/flowspan

## test: unit and integration tests against a real (private) Open vSwitch, the conformance
## suite, and short fuzz runs
test: deps
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/test/conformance$$')
	$(MAKE) --no-print-directory conformance
	$(MAKE) --no-print-directory fuzz

## conformance: flowspan against OVS's own Mirror table, scenario by scenario (docs/conformance.md);
## run in the package directory so the scenario table is printed
conformance: deps
	cd test/conformance && $(GO) test -count=1 -timeout 10m

## test-unit: tests that need neither root nor Open vSwitch
test-unit:
	$(GO) test -short -race -count=1 ./...

## fuzz: each native fuzz target for a fixed number of inputs (a count, not a time: a time-based
## run can end in a fuzzing-engine "context deadline exceeded" on a loaded machine). A failure with an input (written
## under testdata/fuzz) fails at once; a fuzzing-engine failure without one (a worker that
## died or timed out under load) is shown in full and tried once more.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz: $$pkg $$f ($(FUZZTIME))"; \
	    log=$$(mktemp); \
	    if ! $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg >$$log 2>&1; then \
	      cat $$log; \
	      if grep -q "Failing input written to" $$log; then echo "fuzz: $$f found a failing input"; rm -f $$log; exit 1; fi; \
	      echo "fuzz: $$f: the fuzzing engine failed without an input; trying once more"; \
	      $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || { rm -f $$log; exit 1; }; \
	    fi; \
	    rm -f $$log; \
	  done; \
	done

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags flowspanclient ./cmd/flowspan
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tests=false -tags flowspanclient ./cmd/flowspan

## models: regenerate the OVSDB models from the installed vswitchd schema
models:
	cp /usr/share/openvswitch/vswitch.ovsschema ovsdb/vswitchd/vswitch.ovsschema
	$(GO) generate ./ovsdb/vswitchd

## bench: flowspan vs OVS's own tools on private OVS labs (root; a few minutes, bounded to ~15);
## prints the table and writes bench/results.md. A smoke run (TestSmoke in ./bench) is part of make test.
bench: deps build
	$(GO) run ./bench -flowspan bin/flowspan -out bench/results.md

## demo: a private OVS lab, flowspan serve, a filtered mirror, traffic, and what the mirror captured (root)
demo:
	bash demo/run.sh

clean:
	rm -rf bin
