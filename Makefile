# gocr — checkpoint/restore of Linux process trees in pure Go.
#
#   make            build bin/gocr and bin/zdtm-workload (static)
#   make zdtm       the zdtm suite against this host's kernel (ENGINE=gocr)
#   make test       everything CI runs (.ci/run calls it)
#
# zdtm filters: T=regex (workload names), F=h,ns,uns (flavors),
# MODE=plain,leave-running,iter3, ENGINE=gocr|none|external:CMD,
# EXTERNAL='/path/test --opt;/path/test2' (any zdtm-protocol binaries).

SHELL      := /bin/bash
GO         ?= go
export CGO_ENABLED := 0
RESULTS    ?= /tmp/gocr-zdtm
ENGINE     ?= gocr
T          ?=
F          ?=
MODE       ?=
EXTERNAL   ?=
VERSION    := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X main.Version=$(VERSION)

.PHONY: all build deps unit zdtm test vet bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gocr ./cmd/gocr
	$(GO) build -o bin/zdtm-workload ./zdtm/cmd/zdtm-workload

# What the tests need from Debian, installed only when missing.
deps:
	@command -v $(GO) >/dev/null || { echo "make deps: Go is needed (https://go.dev/dl, or Debian's golang)"; exit 1; }
	@command -v gcc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev
	@bash ci/install-crit.sh

vet:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# Unit tests: parsers, image codec, harness self-tests, engine primitives.
unit: vet
	$(GO) test -count=1 $$($(GO) list ./... | grep -v '/zdtm$$')

# The zdtm suite. Prints "zdtm: N passed, N failed, N skipped" and writes a
# JUnit report; failing specs keep their images and logs under $(RESULTS).
zdtm: deps
	@mkdir -p $(RESULTS)
	cd zdtm && ZDTM_ENGINE='$(ENGINE)' ZDTM_TESTS='$(T)' ZDTM_FLAVORS='$(F)' ZDTM_MODES='$(MODE)' \
		ZDTM_EXTERNAL='$(EXTERNAL)' ZDTM_RESULTS='$(RESULTS)' \
		$(GO) test -count=1 -v -timeout 60m . -ginkgo.junit-report=$(RESULTS)/junit-$(subst :,_,$(subst /,_,$(ENGINE))).xml

test: deps unit
	$(MAKE) --no-print-directory zdtm ENGINE=none

# Speed against this machine's limits, measured in the same run.
bench: build
	$(GO) build -o bin/gocr-bench ./bench
	./bin/gocr-bench -gocr bin/gocr -workload bin/zdtm-workload

clean:
	rm -rf bin
