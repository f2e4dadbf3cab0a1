#!/usr/bin/env bash
# go test -race for the Go packages; the engine also without cgo; the C ABI test
# over both built variants; a short fuzz run of every parser.
set -euo pipefail
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go test -count=1 ./wsengine/...
go test -race -shuffle=on -count=1 -p 2 $(go list ./... | grep -v -e /capi -e /tests/)
# The ABI test (capi/testdata/abi_test.c, a C program run as a subprocess) over
# its own build, then over the two variants that ship.
go test -count=1 ./capi
VWS_SO=$PWD/build/out/amd64/inproc/verawebsockets.so VWS_TEST_FAULTS=1 go test -count=1 ./capi
VWS_SO=$PWD/build/out/amd64/oop/verawebsockets.so go test -count=1 ./capi
build/fuzz.sh "${FUZZ_BUDGET:-quick}"
