# Parley. `make run` and `make test` install what is missing first.

GO      ?= go
TAGS    := -tags nolibopusfile
BIN     := bin/parley
# Everything a full call and its tests need, from Debian/Ubuntu packages.
APT_PACKAGES := libopus-dev libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us \
                flite flite1-dev sox pkg-config redis-server chromium iproute2

export PATH := $(PATH):/usr/local/go/bin

.PHONY: all deps build run test vet bench clean

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

build: deps
	$(GO) build $(TAGS) -o $(BIN) ./cmd/parley

run: build
	./$(BIN)

vet:
	$(GO) vet $(TAGS) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

test: deps vet
	$(GO) test $(TAGS) -race -count=1 -timeout 8m ./...

bench: deps
	$(GO) test $(TAGS) -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
