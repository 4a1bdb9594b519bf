# meshca — see README.md. Every tool and test server is installed by these targets; nothing by hand.
# meshca needs Go 1.27 (crypto/mldsa, ML-DSA in crypto/x509 and crypto/tls). The go command fetches this
# toolchain from the module proxy the first time (~76 MB); a machine with Go 1.26 needs nothing else. Exported,
# so every target and every script it runs uses it; `make GOTOOLCHAIN=go1.27.x` picks another patch release.
export GOTOOLCHAIN := go1.27.3
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
DEV_DIR  ?= .dev
# make run listens on 127.0.0.1:$(DEV_PORT_BASE)+12 (gRPC) and +14 (HTTP); set DEV_PORT_BASE=25000, or
# GRPC_ADDR/HTTP_ADDR, to run a second checkout beside the first.
DEV_PORT_BASE ?= 15000
GRPC_ADDR ?= 127.0.0.1:$(shell echo $$(($(DEV_PORT_BASE)+12)))
HTTP_ADDR ?= 127.0.0.1:$(shell echo $$(($(DEV_PORT_BASE)+14)))
FUZZTIME ?= 20s
# Container image (make image): repository and tag. Released manifests pin IMAGE_REPO:<vX.Y.Z> (README.md,
# "Versions and releases"); a build off a tag gets the git describe version, never latest.
IMAGE_REPO ?= ghcr.io/meshca/meshca
IMAGE      ?= $(IMAGE_REPO):$(VERSION)
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
IMAGE_TAR  ?= bin/meshca-image.tar
# Debian's ca-certificates bundle goes into the image when installed here (for OIDC issuers on public HTTPS).
CA_BUNDLE  ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
# Nested Go modules with heavy dependencies (istio.io/istio), kept out of meshca's go.mod.
NESTED   := $(wildcard test/*/go.mod) loadtest/baseline/go.mod
# make bench: flags of loadtest/baseline/cmd/sidebyside (e.g. BENCH_FLAGS='--n 4000 --duration 15s').
BENCH_FLAGS ?=
# make bench-storm: identities in the restart storm and in the steady renewal.
STORM  ?= 100000
STEADY ?= 10000

.PHONY: all build run test test-short testbins lint bench bench-storm bench-go fuzz mutate clean image helm-lint soak

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## run: start meshca on the embedded default (dev root, file backend, dev token issuer; no cluster needed).
run: build
	bin/meshca init --dir $(DEV_DIR)
	bin/meshca serve --dev $(DEV_DIR) --grpc-addr $(GRPC_ADDR) --http-addr $(HTTP_ADDR)

## testbins: build (first time only) and cache the real servers the integration tests use, in ~/.cache/meshca.
testbins:
	bash scripts/testbins.sh >/dev/null

## image: the container image as one tar (OCI layout + docker save) in $(IMAGE_TAR); prints its reference.
## No container runtime needed: tools/mkimage writes it. Load or push it with docker load -i, podman load -i,
## skopeo copy oci-archive:$(IMAGE_TAR) docker://$(IMAGE), or crane push $(IMAGE_TAR) $(IMAGE).
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/image/meshca ./cmd/meshca
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) $(GO) run ./tools/mkimage \
	  --binary bin/image/meshca --ref '$(IMAGE)' --out $(IMAGE_TAR) --ca-bundle '$(CA_BUNDLE)' \
	  --version '$(VERSION)' --revision "$$(git rev-parse HEAD 2>/dev/null)"

## helm-lint: helm lint the chart (helm is built from its Go module the first time, like the test servers).
helm-lint:
	$$(bash scripts/get-helm.sh) lint --strict manifests/helm/meshca

## test: every test, integration included (real Vault, step-ca, kube-apiserver + etcd, pilot-agent).
test: lint testbins
	$(GO) test -count=1 -timeout 30m ./...
	@for m in $(NESTED); do d=$$(dirname $$m); echo "== $$d (own go.mod)"; \
	  (cd $$d && $(GO) vet ./... && $(GO) test -count=1 -timeout 20m ./...) || exit 1; done

## test-short: unit tests only (tests needing a real server skip).
test-short:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$(git ls-files -z '*.go' | xargs -0 awk '{l=$$0; gsub(/\t/,"    ",l); if (length(l)>120) print FILENAME":"FNR}'); \
	  if [ -n "$$out" ]; then echo "Go lines over 120 columns (tabs count 4):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod is not tidy: run 'go mod tidy' and commit it"; exit 1; }
	@for m in $(NESTED); do (cd $$(dirname $$m) && $(GO) mod tidy -diff >/dev/null) || \
	  { echo "$$m is not tidy: run 'go mod tidy' there and commit it"; exit 1; }; done

## bench: meshca side by side with the stdlib and essential floors and istiod's CA (in-process and end to end,
## RSA-2048 and ECDSA P-256 CSRs), as Markdown on stdout and in bench/sidebyside.md (BENCHMARKS.md).
bench: build
	@mkdir -p bench
	cd loadtest/baseline && $(GO) build -o ../../bin/ ./cmd/istio-ca-server ./cmd/sidebyside
	bin/sidebyside --meshca bin/meshca --istio-ca-server bin/istio-ca-server --commit $(COMMIT) $(BENCH_FLAGS) \
	  | tee bench/sidebyside.md

## bench-storm: a restart storm of STORM identities and a steady renewal of STEADY against both servers.
bench-storm: build
	@mkdir -p bench
	cd loadtest/baseline && $(GO) build -o ../../bin/ ./cmd/istio-ca-server ./cmd/sidebyside
	bin/sidebyside --meshca bin/meshca --istio-ca-server bin/istio-ca-server --commit $(COMMIT) --e2e=false \
	  --keys ecdsa-p256 --n 500 --storm $(STORM) --steady $(STEADY) $(BENCH_FLAGS) | tee bench/storm.md

## bench-go: every package's Go benchmarks; results go to bench/results.txt.
bench-go: testbins
	@mkdir -p bench
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m ./... | tee bench/results.txt

## soak: the load tester at SOAK_RATE (500/s, half of peak) for SOAK_DURATION (30m) against meshca serve --dev;
## fails on any failed request, or when RSS or goroutines, sampled after every 2-minute run, grow more than
## SOAK_TOLERANCE (10%) from the first third of the samples to the last (after SOAK_WARMUP, 3m).
## Not part of make test.
soak: build
	bash scripts/soak.sh

## fuzz: run every fuzz target for FUZZTIME each (make test runs their seed corpora).
fuzz:
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
	  done; \
	done

## mutate: mutation testing (gremlins) of the security-relevant packages, in short test mode; not part of
## make test. scripts/mutate.sh says what each package's run leaves out; MUTATE_PKGS, MUTATE_EXCLUDE and
## MUTATE_TIMEOUT narrow or widen it (e.g. make mutate MUTATE_PKGS=csr).
mutate:
	@bash scripts/mutate.sh

clean:
	rm -rf bin $(DEV_DIR)
