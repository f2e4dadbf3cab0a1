# A thin Makefile: every target calls a script in build/.
ARCHS ?= amd64 armel armhf arm64 mipsel
# The Lua the module is built and installed for: 5.1 (default; also LuaJIT), 5.2, 5.3, 5.4, luajit.
# (unexported: build/test-lua.sh reads LUA from the environment as an interpreter command)
LUA ?= 5.1
unexport LUA
# make install: PREFIX, DESTDIR, LUA_CMOD, LUA_LMOD (see build/install.sh); ARCH, VARIANT.
PREFIX ?= /usr/local
INSTALL_ENV = LUAVER="$(LUA)" ARCH="$(ARCH)" VARIANT="$(VARIANT)" PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" \
	LUA_CMOD="$(LUA_CMOD)" LUA_LMOD="$(LUA_LMOD)" LUA_INCDIR="$(LUA_INCDIR)" \
	$(if $(filter command line,$(origin CFLAGS)),ROCK_CFLAGS="$(CFLAGS)") \
	$(if $(filter command line,$(origin CC)),CC_OVERRIDE="$(CC)")

.PHONY: all build demo test lint test-race bench fuzz cross test-cross vera dist install uninstall clean
all: build

build: ## ./verawebsockets.so, in-process Go variant for this machine; LUA=5.x: build/out/<arch>/inproc-5.x/
	$(if $(LUA_INCDIR),,build/deps.sh lua lua-dev)
	$(INSTALL_ENV) build/install.sh build

demo: build ## local echo server + the wiki's example script through the real .so
	build/demo.sh

test: build ## Go tests, Lua suite on both variants and Lua 5.1-5.4, conformance, LuaUPnP-like host, install
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

dist: cross ## build/dist/verawebsockets-<version>-<arch>.tar.gz for $(ARCHS), SHA256SUMS, SIZES
	build/dist.sh $(ARCHS)

install: ## the module for LUA into its paths: make install [LUA=5.4] [PREFIX=/usr] [DESTDIR=...]
	$(INSTALL_ENV) build/install.sh install

uninstall: ## removes what make install (same variables) installed
	$(INSTALL_ENV) build/install.sh uninstall

clean:
	rm -rf build/out build/include build/dist verawebsockets.so
