# Parley. `make run` and `make test` install what is missing first.

GO      ?= go
TAGS    := -tags nolibopusfile
BIN     := bin/parley
# Everything a full call and its tests need, from Debian/Ubuntu packages.
# (nginx is the proxy of TestDrainBehindNginx, which runs its own; Debian
# also enables the packaged service on port 80: `systemctl disable --now
# nginx` if you do not want it.)
APT_PACKAGES := libopus-dev libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us \
                flite flite1-dev sox pkg-config redis-server chromium iproute2 nginx

# npm projects that tests run (real programs nobody here wrote), pinned by
# their package-lock.json; `make deps` installs them into the test cache of
# internal/testkit/npm, so that the tests run offline afterwards.
NPM_PROJECTS := pipeline/tools/mcp/testdata/npm signaling/realtime/testdata/npm signaling/realtime/testdata/npm-twilio

export PATH := $(PATH):/usr/local/go/bin

.PHONY: all deps build run test fuzz vet bench bench-go bench-seed bench-seed-local bench-seed-long bench-idle bench-batch bench-voice bench-voice-realtime bench-voice-offline bench-echo bench-gc bench-cost bench-overload bench-phone bench-replicas bench-soak clean

all: build

# deps installs the missing packages (as root, or with sudo).
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi
	@command -v $(GO) >/dev/null || { echo "make deps: Go 1.24 or newer is needed on PATH"; exit 1; }
	@# Node.js and npm, for the npm projects: from the machine if it has them
	@# (a nodejs package from elsewhere carries npm, and Debian's npm would
	@# conflict with it), else Debian's.
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  echo "make deps: installing nodejs npm"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq nodejs npm >/dev/null || exit 1; \
	fi
	@$(GO) run ./internal/testkit/npm/install $(NPM_PROJECTS)

build: deps
	$(GO) build $(TAGS) -o $(BIN) ./cmd/parley

run: build
	./$(BIN)

vet:
	$(GO) vet $(TAGS) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

test: deps vet
	$(GO) test $(TAGS) -race -count=1 -timeout 8m ./...
	# The stack an idle socket keeps, in the build that ships: the race
	# detector's larger frames only let those tests bound it loosely.
	$(GO) test $(TAGS) -count=1 -run 'TestIdleSocketStack|TestIdleSocketsKeepSmallStacks|TestIdleRealtimeSocketsKeepSmallStacks' ./signaling/...
	$(MAKE) fuzz

# Each fuzz target runs briefly (the seed corpora, with the inputs that
# once failed in testdata/fuzz, also run as plain tests above); a failing
# input is written to testdata/fuzz and fails the run. go test takes one
# -fuzz target per package at a time, hence a line each.
FUZZTIME ?= 5s
# Go's fuzzing engine may end a run that found nothing with "context
# deadline exceeded" (a worker still busy as -fuzztime runs out): that
# run, and only that, is run once more. A failing input fails at once.
define fuzzone
	@out=$$($(GO) test $(TAGS) -run '^$$' -fuzz '^$(1)$$' -fuzztime $(FUZZTIME) $(2) 2>&1); rc=$$?; echo "$$out"; \
	if [ $$rc -ne 0 ] && ! echo "$$out" | grep -q 'Failing input' && echo "$$out" | grep -q 'context deadline exceeded'; then \
		echo "fuzz $(1): the engine's deadline, no failing input; once more"; \
		$(GO) test $(TAGS) -run '^$$' -fuzz '^$(1)$$' -fuzztime $(FUZZTIME) $(2); \
	else exit $$rc; fi
endef
fuzz: deps
	$(call fuzzone,FuzzDecodeMessage,./signaling/parley/)
	$(call fuzzone,FuzzBinaryFrames,./signaling/parley/)
	$(call fuzzone,FuzzSessionUpdate,./signaling/realtime/)
	$(call fuzzone,FuzzResponse,./signaling/realtime/)
	$(call fuzzone,FuzzDecode,./media/opus/)
	$(call fuzzone,FuzzResample,./media/)
	$(call fuzzone,FuzzVAD,./media/)
	$(call fuzzone,FuzzDecide,./pipeline/endpoint/)
	$(call fuzzone,FuzzScanChunk,./pipeline/openai/)
	$(call fuzzone,FuzzChatBody,./pipeline/openai/)
	$(call fuzzone,FuzzMarshalByHand,./pipeline/event/)
	$(call fuzzone,FuzzScanner,./internal/jsonbytes/)
	$(call fuzzone,FuzzAppendString,./internal/jsonbytes/)
	$(call fuzzone,FuzzScanMedia,./signaling/twilio/)
	$(call fuzzone,FuzzScanAppend,./signaling/realtime/)

# Benchmarks measure and write figures down; they never fail on timings.
# `make bench` runs short versions of every scenario (under 5 minutes);
# results land in bin/bench-*.json. See docs/benchmarks.md.
bench: bench-go
	$(MAKE) bench-seed-local SEED_FLAGS="-clients 200 -duration 15s -grace 5s"
	$(MAKE) bench-seed SEED_FLAGS="-clients 200 -duration 15s -grace 5s -slots 1024"
	$(MAKE) bench-idle IDLE_FLAGS="-clients 2000 -duration 5s"
	$(MAKE) bench-batch BATCH_FLAGS="-rates 10,40,80 -step 5s -grace 3s"
	$(MAKE) bench-voice VOICE_FLAGS="-calls 50,150 -step 10s"
	$(MAKE) bench-echo ECHO_FLAGS="-calls 50 -step 8s -rounds 1"
	$(MAKE) bench-overload OVERLOAD_FLAGS="-clients 100 -step 4s -grace 2s"
	$(MAKE) bench-phone PHONE_FLAGS="-calls 50,150 -step 10s"
	$(MAKE) bench-replicas REPLICA_FLAGS="-clients 50 -interval 100ms -duration 5s -grace 3s"
	$(MAKE) bench-soak SOAK_FLAGS="-clients 100 -duration 30s -every 10s"

bench-go: deps
	$(GO) test $(TAGS) -run '^$$' -bench . -benchmem ./...

LOAD := bin/parley-load
$(LOAD): build
	$(GO) build $(TAGS) -o $(LOAD) ./cmd/parley-load

# The seed scenario: 1,000 clients, a turn every 200 ms each, for 60 s.
SEED_FLAGS ?= -clients 1000 -duration 60s -slots 1024
bench-seed: $(LOAD)
	./$(LOAD) seed -llm fake $(SEED_FLAGS) -json bin/bench-seed-fake.json
bench-seed-local: $(LOAD)
	./$(LOAD) seed -llm local $(SEED_FLAGS) -json bin/bench-seed-local.json
# The long mode: 5 minutes, against both models.
bench-seed-long: $(LOAD)
	./$(LOAD) seed -llm local -clients 1000 -duration 5m -slots 1024 -json bin/bench-seed-local-long.json
	./$(LOAD) seed -llm fake -clients 1000 -duration 5m -slots 1024 -json bin/bench-seed-fake-long.json

# Idle scale: 10,000 sessions that only stay connected.
IDLE_FLAGS ?= -clients 10000 -duration 20s
bench-idle: $(LOAD)
	./$(LOAD) idle $(IDLE_FLAGS) -json bin/bench-idle.json

# Batching: the fake upstream's cost model, batching off and on, load rising.
BATCH_FLAGS ?= -rates 5,10,20,30,40,60,80,100,120 -step 10s -grace 5s
bench-batch: $(LOAD)
	./$(LOAD) batch $(BATCH_FLAGS) -json bin/bench-batch.json

# Voice: N calls over the WebSocket audio channel, zero-cost ASR/TTS fakes;
# and the offline stack (pocketsphinx + flite).
VOICE_FLAGS ?= -calls 50,100,150,200,250,300 -step 20s
bench-voice: $(LOAD)
	./$(LOAD) voice -stack fake $(VOICE_FLAGS) -json bin/bench-voice.json
bench-voice-realtime: $(LOAD)
	./$(LOAD) voice -proto realtime -stack fake $(VOICE_FLAGS) -json bin/bench-voice-realtime.json
VOICE_OFFLINE_FLAGS ?= -calls 2,4,6,8 -step 20s
bench-voice-offline: $(LOAD)
	./$(LOAD) voice -stack offline $(VOICE_OFFLINE_FLAGS) -json bin/bench-voice-offline.json

# The echo gate's cost: the voice calls against the server with the gate on
# and off, alternating in rounds, callers with and without the bot's audio
# coming back into their microphone (docs/benchmarks.md, "The echo gate").
ECHO_FLAGS ?= -calls 100 -step 15s -rounds 3
bench-echo: $(LOAD)
	./$(LOAD) voice -ab echo-gate $(ECHO_FLAGS) -json bin/bench-echo.json

# The GC settings' A/B: -gc-percent and -memory-limit arms run side by
# side, in rounds (docs/benchmarks.md, "Memory and GC"); results in
# bin/bench-gc/.
bench-gc: $(LOAD)
	docs/bench/gc/ab.sh

# Overload: one server, the offered load in phases of 1×, 2×, 4× and 1×
# the base clients: goodput, refusals, and the recovery after.
OVERLOAD_FLAGS ?= -clients 600 -step 10s -grace 3s
bench-overload: $(LOAD)
	./$(LOAD) overload -llm local $(OVERLOAD_FLAGS) -json bin/bench-overload.json

# A turn's cost, two server binaries A/B in one run (docs/benchmarks.md,
# "A turn's cost"): make bench-cost ARMS="before:bin/parley-before after:bin/parley"
bench-cost: $(LOAD)
	ARMS="$(ARMS)" docs/bench/cost/ab.sh

# Phone: N calls as Twilio makes them (the voice webhook, a Media Stream
# of 8 kHz mu-law, marks echoed), zero-cost ASR/TTS fakes.
PHONE_FLAGS ?= -calls 50,100,150,200 -step 20s
bench-phone: $(LOAD)
	./$(LOAD) phone $(PHONE_FLAGS) -json bin/bench-phone.json

# Soak: clients coming and going, some resuming; goroutines and RSS sampled.
SOAK_FLAGS ?= -clients 300 -duration 10m -every 30s
bench-soak: $(LOAD)
	./$(LOAD) soak $(SOAK_FLAGS) -json bin/bench-soak.json

# Cross-replica delivery: two replicas on one Redis.
REPLICA_FLAGS ?= -clients 100 -interval 100ms -duration 20s -grace 5s
bench-replicas: $(LOAD)
	./$(LOAD) replicas $(REPLICA_FLAGS) -json bin/bench-replicas.json

clean:
	rm -rf bin
