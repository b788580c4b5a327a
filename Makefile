# Deployment Engine. `make demo` runs the engine's main job; `make test` runs
# every test (as root: the test bed needs it) after installing what it needs.
# Test packages run one at a time (-p 1), but for the end-to-end package,
# which runs beside them on its own bed of nodes.
GO      ?= go
BIN     := bin/deployment-engine
# The node agent, which the engine serves to the nodes from beside itself.
AGENT   := bin/de-agent
# The test bed's own command: the demo's and a developer's nodes.
TESTBED := bin/de-testbed
MODULES := services api planner installer monitor notify logsvc deploy integration/testbed integration
# Debian packages the test bed, the end-to-end tests and the demo need (ruby
# renders BOSH job templates with its own ERB; the cold-start tests run
# Debian's nats-server, whose own service is switched off: it would hold
# port 4222, where the engine's embedded NATS meets the node agents; sudo
# serves the nodes logged in to as another user than root).
APT_PKGS := openssh-server monit iproute2 util-linux lxcfs strace dpkg-dev apt-utils curl ca-certificates openssl \
            redis-tools postgresql-client prometheus chromium ansible-core ruby nats-server nftables e2fsprogs sudo
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT ?= 45m
# make test fuzzes each fuzz target this long; make chaos runs this many
# kill -9 trials (make test runs 10, as integration/chaos does by default).
FUZZTIME ?= 15s
FUZZPARALLEL ?= 1
CHAOS_TRIALS ?= 50

.PHONY: build run test test-short lint bench demo deps modules clean tidy fuzz chaos

# What `deployment-engine version` and GET /version say, and the agent's
# heartbeats.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILT   ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.built=$(BUILT)

build:
	@mkdir -p bin
	cd deploy && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o ../$(BIN) ./cmd/deployment-engine
	cd monitor && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o ../$(AGENT) ./cmd/de-agent
	cd integration/testbed && CGO_ENABLED=0 $(GO) build -trimpath -o ../../$(TESTBED) ./cmd/de-testbed

run: build
	$(BIN) serve --data ./data

# deps installs the Debian packages that are missing (needs root).
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing packages:$$missing — run 'make deps' as root" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  case "$$missing" in *nats-server*) systemctl disable --now nats-server >/dev/null 2>&1 || true;; esac; \
	fi

# modules checks that every module builds on its own, outside the workspace.
modules:
	@for m in $(MODULES); do echo "== GOWORK=off build $$m"; (cd $$m && if [ -n "$$(GOWORK=off $(GO) list ./... 2>/dev/null)" ]; then GOWORK=off $(GO) build ./... && GOWORK=off $(GO) vet ./...; fi) || exit 1; done

# The end-to-end, cluster, chaos and bench packages, the longest (real
# deployments on beds of their own, mostly waiting on nodes), run beside
# every other package and the fuzz targets; their output follows theirs. The
# end-to-end package runs as two shards side by side, each on a bed of its
# own (DE_E2E_SHARD names the second's): the tests E2E_B names, and all the
# others (a new test joins those). Every package prints one line with its
# time and counts (bin/testsum reads go test -json: a failed test's output
# is shown whole), and the run ends with the counts of them all. Tests that
# run the engine run the binaries make build made (DE_TEST_BIN), not one
# built again by each package.
BESIDE := integration/e2e integration/cluster integration/chaos integration/bench
BESIDE_RUNS := integration/e2e:a integration/e2e:b integration/cluster integration/chaos integration/bench
E2E_B := ^(TestHeal|TestTwoClusters|TestNodeCutMidDeploy|TestGeneratedClientDeploysStarterStack|TestManifestDeployOnCloudConfig|TestManifestTwoReleasesColocated|TestStepsThroughAgents|TestFailedInstanceIsRemoved|TestBoshDummyRelease|TestBoshPersistentDisk|TestMaintenance|TestBoshLinksAndPackageChain|TestProblems|TestDeployCodes)$$
empty :=
BESIDE_RE := /($(subst $(empty) $(empty),|,$(BESIDE)))$$
test: deps build modules
	@mkdir -p bin; units=bin/test-units.json; : >$$units; rm -f bin/test-failed; export DE_TEST_BIN=$(CURDIR)/bin; \
	(cd integration && $(GO) build -o ../bin/testsum ./cmd/testsum) || exit 1; \
	pids=""; for r in $(BESIDE_RUNS); do d=$${r%%:*}; s=$${r#$$d}; s=$${s#:}; \
	  case $$s in a) f=-skip;; *) f=-run;; esac; pat='$(E2E_B)'; [ -n "$$s" ] || pat=.; \
	  (cd $$d && DE_E2E_SHARD=$$s $(GO) test -json -count=1 -timeout $(TEST_TIMEOUT) $$f "$$pat" .) >bin/test-$$(basename $$d)$$s.json 2>&1 & pids="$$pids $$!"; done; \
	rc=0; for m in $(MODULES); do echo "== test $$m"; \
	  (cd $$m && pkgs=$$($(GO) list ./... 2>/dev/null | grep -v -E '$(BESIDE_RE)'); if [ -n "$$pkgs" ]; then $(GO) test -json -p 1 -count=1 -timeout $(TEST_TIMEOUT) $$pkgs 2>&1 || touch $(CURDIR)/bin/test-failed; fi) \
	    | tee -a $$units | bin/testsum || rc=1; done; \
	$(MAKE) --no-print-directory fuzz || rc=1; \
	[ ! -e bin/test-failed ] || rc=1; \
	for pid in $$pids; do wait $$pid || rc=1; done; all=$$units; \
	for r in $(BESIDE_RUNS); do d=$${r%%:*}; s=$${r#$$d}; s=$${s#:}; j=bin/test-$$(basename $$d)$$s.json; all="$$all $$j"; \
	  echo "== test $$d$${s:+ (shard $$s)} (ran beside the above)"; bin/testsum <$$j || rc=1; done; \
	bin/testsum -total $$all || rc=1; exit $$rc

# fuzz runs every fuzz target of every module for FUZZTIME; an input that
# fails is kept under the package's testdata/fuzz and fails the run.
# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a
# failure ("context deadline exceeded") on a busy machine (golang/go#75804,
# fixed in 1.27); such a run, which wrote no failing input, counts when the
# target's corpus then passes. FUZZPARALLEL workers each (make test's
# fuzzing runs beside the end-to-end beds, which need the CPU more).
fuzz:
	@grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' $(MODULES) | sort -u | while IFS=: read -r file fn; do \
	  name=$${fn#func }; dir=./$$(dirname $$file); echo "== fuzz $$dir $$name for $(FUZZTIME)"; \
	  out=$$($(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -parallel $(FUZZPARALLEL) $$dir 2>&1); rc=$$?; echo "$$out"; \
	  if [ $$rc -ne 0 ]; then \
	    echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written' || exit 1; \
	    echo "== the fuzz coordinator's own deadline (golang/go#75804), no failing input: $$name's corpus again"; \
	    $(GO) test -count=1 -run "^$$name$$" $$dir || exit 1; \
	  fi; \
	done

# chaos kills the engine (and, alone, its installer) at random moments of
# deployments on the test bed: CHAOS_TRIALS trials, each must succeed with
# every step run exactly once on its node.
chaos: deps
	cd integration && DE_CHAOS_TRIALS=$(CHAOS_TRIALS) $(GO) test -count=1 -v -timeout 90m -run TestChaos ./chaos/

# test-short skips the end-to-end tests that need the test bed.
test-short:
	@for m in $(MODULES); do (cd $$m && $(GO) test -short -count=1 ./...) || exit 1; done

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...) || exit 1; done

bench:
	@for m in $(MODULES); do (cd $$m && $(GO) test -run '^$$' -bench . -benchtime 1x -count=1 -timeout 120m ./...) || exit 1; done

demo: deps build
	./deploy/demo.sh

tidy:
	@for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done

clean:
	rm -rf bin
