# gocr — checkpoint/restore of Linux process trees in pure Go.
#
#   make            build bin/gocr and bin/zdtm-workload (static)
#   make zdtm       the zdtm suite against this host's kernel (ENGINE=gocr)
#   make test       everything CI runs (.ci/run calls it)
#
# zdtm filters: T=regex (workload names), F=h,ns,uns (flavors),
# MODE=plain,leave-running,iter3, ENGINE=gocr|none|external:CMD,
# EXTERNAL='/path/test --opt;/path/test2' (any zdtm-protocol binaries).
#
#   make vmtest KERNEL=6.1   the suite inside QEMU on one of Debian's kernels
#   make matrix              the suite on every kernel of the matrix (5.10 6.1 6.12 7.2)
#
#   make bench               gocr and CRIU side by side on the bench cases
#                            (RUNS=3, BENCHFLAGS='-case bigmem,tree')
#
#   make zdtm-criu           CRIU's own zdtm.py, unmodified, over its static tests
#                            (ENGINE=gocr|criu, F=h,ns,uns, T=regex)
#
# vmtest takes T=, F=, MODE=, ENGINE= too; KCACHE=dir overrides the kernel
# cache ($XDG_CACHE_HOME/gocr/kernels), VMRESULTS= the results directory,
# VMFLAGS= more options of vmtest (go run ./vmtest/cmd/vmtest -h).

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

KERNEL     ?= 6.1
VMRESULTS  ?= /tmp/gocr-vmtest
VMFLAGS    ?=
# go test's own deadline for the suite: a hung spec ends the run with a
# goroutine dump naming it.
ZTIMEOUT   ?= 60m
ifneq ($(KCACHE),)
export KCACHE
endif

.PHONY: all build deps unit fuzz zdtm test vet bench clean vmdeps vmtest matrix test-vm proto \
	criu-deps zdtm-criu zdtm-criu-prepare zdtm-criu-external server-deps

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gocr ./cmd/gocr
	$(GO) build -o bin/zdtm-workload ./zdtm/cmd/zdtm-workload

# What the tests need from Debian, installed only when missing.
deps: server-deps
	@command -v $(GO) >/dev/null || { echo "make deps: Go is needed (https://go.dev/dl, or Debian's golang)"; exit 1; }
	@command -v gcc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev
	@bash ci/install-crit.sh

# The real servers the suite runs as workloads (redis_server,
# nginx_server), from Debian's packages. The workloads start their own
# instances, on ports of their own, whatever the packages start.
SERVER_DEPS := redis-server nginx-light
server-deps:
	@need=""; for p in $(SERVER_DEPS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || need="$$need $$p"; \
	done; \
	if [ -n "$$need" ]; then \
		echo "make server-deps: installing$$need"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$need || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$need; }; \
	fi

# gocr's own image messages (engine/image/gocrpb) from their .proto: needs
# protoc (Debian: protobuf-compiler); protoc-gen-go is built at go.mod's
# version. The generated code is committed, so builds need neither.
proto:
	$(GO) build -o bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	cd engine/image/gocrpb && protoc --plugin=protoc-gen-go=$(CURDIR)/bin/protoc-gen-go \
		--go_out=. --go_opt=paths=source_relative mqueue.proto pidfd.proto

vet:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# Unit tests: parsers, image codec, harness self-tests, engine primitives;
# then every fuzz target for 2000 executions (FUZZTIME=, a count or a duration).
FUZZTIME   ?= 2000x
unit: vet
	$(GO) test -count=1 $$($(GO) list ./... | grep -v '/zdtm$$')
	bash ci/fuzz.sh $(FUZZTIME)

# Every fuzz target for a minute each (FUZZTIME=10m for longer).
fuzz:
	bash ci/fuzz.sh $(if $(filter 2000x,$(FUZZTIME)),60s,$(FUZZTIME))

# The zdtm suite. Prints "zdtm: N passed, N failed, N skipped" and writes a
# JUnit report; failing specs keep their images and logs under $(RESULTS).
zdtm: deps
	@mkdir -p $(RESULTS)
	cd zdtm && ZDTM_ENGINE='$(ENGINE)' ZDTM_TESTS='$(T)' ZDTM_FLAVORS='$(F)' ZDTM_MODES='$(MODE)' \
		ZDTM_EXTERNAL='$(EXTERNAL)' ZDTM_RESULTS='$(RESULTS)' \
		$(GO) test -count=1 -v -timeout $(ZTIMEOUT) . -ginkgo.junit-report=$(RESULTS)/junit-$(subst :,_,$(subst /,_,$(ENGINE))).xml

# Every step of `make test` has a deadline of its own (ci/step.sh), well
# under CI's 90 minutes and together below them: a step that hangs fails
# with its name instead of eating the run. Steps take 1-5 minutes here.
STEP       := bash ci/step.sh
test:
	$(STEP) deps 10m $(MAKE) --no-print-directory deps
	$(STEP) unit 15m $(MAKE) --no-print-directory unit
	$(STEP) zdtm-none 10m $(MAKE) --no-print-directory zdtm ENGINE=none ZTIMEOUT=9m
	$(STEP) zdtm-gocr 30m $(MAKE) --no-print-directory zdtm ENGINE=gocr ZTIMEOUT=28m
	$(STEP) test-vm 20m $(MAKE) --no-print-directory test-vm

# What vmtest needs from Debian, installed only when missing: QEMU, the
# archive keyring (kernels are fetched with a private apt configuration
# that leaves the system's sources alone), xz and zstd to unpack kernels.
vmdeps:
	@need=""; \
	command -v qemu-system-x86_64 >/dev/null || need="$$need qemu-system-x86"; \
	command -v xz >/dev/null || need="$$need xz-utils"; \
	command -v zstd >/dev/null || need="$$need zstd"; \
	test -e /usr/share/keyrings/debian-archive-keyring.gpg || need="$$need debian-archive-keyring"; \
	if [ -n "$$need" ]; then \
		echo "make vmdeps: installing$$need"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$need || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$need; }; \
	fi

# The suite inside QEMU on Debian's kernel KERNEL (5.10, 6.1, 6.12, 7.2,
# or a comma-separated list, or all). Prints a table and
# "vmtest: N passed, N failed, N skipped"; per-kernel results and JUnit
# reports go to $(VMRESULTS)/KERNEL/.
# vmtest is built and run as a binary of its own (not `go run`), so a
# SIGTERM or Ctrl-C reaches it: it stops every QEMU it started and exits.
vmtest: vmdeps
	$(GO) build -o bin/vmtest ./vmtest/cmd/vmtest
	./bin/vmtest -kernel '$(KERNEL)' -engine '$(ENGINE)' -T '$(T)' -F '$(F)' -mode '$(MODE)' \
		-out '$(VMRESULTS)' -ldflags '$(LDFLAGS)' $(VMFLAGS)

# Every kernel of the matrix, VMs side by side as the CPUs allow.
matrix:
	$(MAKE) --no-print-directory vmtest KERNEL=all

# The suite without checkpoints in a VM on Debian 12's kernel (about a
# minute under TCG once the kernel is cached): meant for `make test`.
test-vm:
	$(MAKE) --no-print-directory vmtest KERNEL=6.1 ENGINE=none VMFLAGS='-q -timeout 15m $(VMFLAGS)'

# CRIU's own suite: Debian sid's criu source package, fetched with a
# private apt configuration into $(CRIUCACHE) ($XDG_CACHE_HOME/gocr/criu
# or ~/.cache/gocr/criu when empty), built once there (CRIU, its zdtm
# library and static tests), then test/zdtm.py run unmodified with
# --criu-bin bin/gocr (ENGINE=gocr) or the CRIU it built (ENGINE=criu),
# one flavor at a time. Prints "zdtm-criu: N passed, N failed, N skipped
# (flavor F, engine E)" per flavor; per-test tables go to
# $(ZCRESULTS)/ENGINE-FLAVOR.tsv, zdtm.py's logs and reports beside them.
CRIUCACHE  ?=
ZCRESULTS  ?= /tmp/gocr-zdtm-criu
ZCDEADLINE ?= 3h
ZCJOBS     ?= 2
ZCFLAGS    ?=
CRIU_DEPS  := gcc make libc6-dev pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler \
	protobuf-compiler python3-protobuf libnl-3-dev libnl-route-3-dev libnet1-dev libcap-dev \
	libbsd-dev libgnutls28-dev libnftables-dev uuid-dev libaio-dev python3-yaml iptables nftables \
	debian-archive-keyring dpkg-dev
ZCRIU      = $(GO) run ./zdtm/criu $(if $(CRIUCACHE),-cache '$(CRIUCACHE)') -j $(ZCJOBS)

# What building CRIU and running zdtm.py need from Debian, installed only when missing.
criu-deps:
	@need=""; for p in $(CRIU_DEPS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || need="$$need $$p"; \
	done; \
	if [ -n "$$need" ]; then \
		echo "make criu-deps: installing$$need"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$need || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$need; }; \
	fi

zdtm-criu: build criu-deps
	$(ZCRIU) -engine '$(ENGINE)' -gocr bin/gocr -F '$(F)' -T '$(T)' -results '$(ZCRESULTS)' \
		-deadline '$(ZCDEADLINE)' $(ZCFLAGS)

# Only fetch and build CRIU and its tests (a later zdtm-criu reuses them).
zdtm-criu-prepare: criu-deps
	$(ZCRIU) -prepare

# CRIU's static test binaries under gocr's own harness (make zdtm
# EXTERNAL=...), T= selecting them as for zdtm-criu.
zdtm-criu-external: criu-deps
	@ext="$$($(ZCRIU) -list -T '$(T)' | paste -sd';')"; test -n "$$ext" || { echo "no static test matches T='$(T)'"; exit 1; }; \
	$(MAKE) --no-print-directory zdtm ENGINE=gocr T=ext/ EXTERNAL="$$ext"

# Speed of gocr and of CRIU side by side, each case RUNS times with each
# engine on the same workload, against this machine's limits measured in
# the same run. CRIU is the one zdtm-criu builds (fetched and built once,
# reused from $(CRIUCACHE) after); if it cannot be had, gocr runs alone
# and CRIU's column says why.
RUNS       ?= 3
BENCHFLAGS ?=
bench: build criu-deps
	$(GO) build -o bin/gocr-bench ./bench
	@criu="$$($(ZCRIU) -print-criu)" || { echo "make bench: no CRIU to compare with (go run ./zdtm/criu -print-criu failed)"; criu=; }; \
	./bin/gocr-bench -gocr bin/gocr -criu "$$criu" -workload bin/zdtm-workload -runs $(RUNS) $(BENCHFLAGS)

clean:
	rm -rf bin
