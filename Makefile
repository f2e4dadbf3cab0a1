# A thin Makefile: every target calls a script in build/.
ARCHS ?= amd64 armel armhf arm64 mipsel

.PHONY: all build demo test lint test-race bench fuzz cross test-cross vera clean
all: build

build: ## ./verawebsockets.so, in-process Go variant for this machine
	build/deps.sh lua lua-dev
	build/build.sh inproc amd64
	cp build/out/amd64/inproc/verawebsockets.so ./verawebsockets.so

demo: build ## local echo server + the wiki's example script through the real .so
	build/demo.sh

test: build ## Go tests, Lua suite on both variants, conformance, LuaUPnP-like host
	build/test.sh

test-race: ## the race-detecting Lua (build/out/lua-race) and its self-test
	build/test-race.sh

lint: ## gofmt, go vet, staticcheck, C with -Wall -Wextra -Werror (run by make test)
	build/lint.sh

bench: build ## round trips/s and MiB/s through Lua vs a plain Go gobwas client
	build/bench.sh

fuzz: ## long fuzz run of every parser (FUZZTIME=5m per target)
	build/fuzz.sh $${FUZZTIME:-5m}

cross: ## build/out/<arch>/{inproc,oop}/ for $(ARCHS)
	build/cross.sh $(ARCHS)

test-cross: cross ## the Lua suite under qemu-user for each arch
	build/test-cross.sh $(ARCHS)

vera: ## the C part with a device toolchain: make vera CROSS=mipsel-openwrt-linux-
	build/vera.sh "$(CROSS)"

clean:
	rm -rf build/out build/include verawebsockets.so
