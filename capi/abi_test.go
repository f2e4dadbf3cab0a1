package main

// The ABI is tested from C: a Go test binary must not load the Go c-shared
// library (one Go runtime per process), so this test builds the .so, compiles
// testdata/abi_test.c with gcc and runs it as a subprocess against an echo
// server of this process.
//
//	go test ./capi                                   # builds its own .so (no Lua)
//	VWS_SO=$PWD/build/out/amd64/inproc/verawebsockets.so VWS_TEST_FAULTS=1 go test ./capi
//	VWS_SO=$PWD/build/out/amd64/oop/verawebsockets.so go test ./capi   # the proxy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/verawebsockets/verawebsockets/internal/echotest"
)

// headerFuncs returns the functions declared by include/verawebsockets.h.
func headerFuncs(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("../include/verawebsockets.h")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^(?:int|void)\s+\*?(vws_\w+)\(`).FindAllSubmatch(src, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) < 20 {
		t.Fatalf(
			"found only %d functions in the header: %v",
			len(names), names)
	}
	sort.Strings(names)
	return names
}

// buildLib returns the .so under test: $VWS_SO, or a fresh c-shared build of
// this package (without lualib) linked with build/exports.map.
func buildLib(t *testing.T, dir string) (path string, own bool) {
	t.Helper()
	if so := os.Getenv("VWS_SO"); so != "" {
		abs, err := filepath.Abs(so)
		if err != nil {
			t.Fatal(err)
		}
		return abs, false
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		//lint:ignore SA1019 a fallback for a machine without go on PATH
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	mapFile, err := filepath.Abs("../build/exports.map")
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "libvws.so")
	cmd := exec.Command(goTool, "build", "-trimpath", "-buildmode=c-shared",
		"-ldflags=-s -w -extldflags '-Wl,--version-script="+mapFile+"'", "-o", path, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf(
			"go build -buildmode=c-shared: %v\n%s",
			err, out)
	}
	return path, true
}

func TestExports(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the c-shared library")
	}
	lib, own := buildLib(t, t.TempDir())
	out, err := exec.Command("nm", "-D", "--defined-only", lib).Output()
	if err != nil {
		t.Fatalf(
			"nm -D %s: %v",
			lib, err)
	}
	allowed := map[string]bool{}
	for _, f := range headerFuncs(t) {
		allowed[f] = true
	}
	if !own { // the full module also has the Lua entry point and lualib's lock functions
		for _, f := range []string{"luaopen_verawebsockets", "vws_lua_lock", "vws_lua_unlock", "vws_lua_use_dispatcher"} {
			allowed[f] = true
		}
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		name := f[2]
		seen[name] = true
		if !allowed[name] {
			t.Errorf(
				"%s exports %q, which is neither in the header nor the Lua entry point",
				lib, name)
		}
	}
	for _, f := range headerFuncs(t) {
		if !seen[f] {
			t.Errorf(
				"%s does not export %s of the header",
				lib, f)
		}
	}
	dyn, err := exec.Command("readelf", "-d", lib).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(dyn), "\n") {
		if strings.Contains(line, "(NEEDED)") && !strings.Contains(line, "[libc.so.6]") {
			t.Errorf(
				"%s needs more than libc: %s",
				lib, strings.TrimSpace(line))
		}
	}
}

func TestABI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the c-shared library and a C program")
	}
	dir := t.TempDir()
	lib, own := buildLib(t, dir)
	prog := filepath.Join(dir, "abi_test")
	args := []string{"-O1", "-g", "-Wall", "-Wextra", "-Werror", "-I../include",
		"testdata/abi_test.c", "-o", prog, "-ldl", "-lpthread"}
	if !own {
		// The full module leaves the Lua API undefined, for the host to provide.
		args = append(args, "-Wl,--no-as-needed", "-llua5.1")
	}
	cc := exec.Command("gcc", args...)
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf(
			"gcc: %v\n%s",
			err, out)
	}

	srv := echotest.New(t)
	// Held bound (not listening) until the test ends: refused, and no other
	// program can take the port while abi_test.c connects to it.
	refused := "ws://" + echotest.RefusedAddr(t) + "/"

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, lib, srv.URL, refused)
	if own {
		cmd.Env = append(os.Environ(), "VWS_TEST_FAULTS=1") // a Go library: faults are recovered
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("abi_test output:\n%s", stdout.String())
	if stderr.Len() > 0 {
		t.Logf("abi_test stderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf(
			"abi_test: %v",
			err)
	}
	if !strings.Contains(stdout.String(), "# all ") || strings.Contains(stdout.String(), "not ok") {
		t.Fatal("abi_test did not pass every check")
	}
	if !regexp.MustCompile(`(?m)^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d:\d{4}\] USER: abi_test user line$`).Match(stderr.Bytes()) {
		t.Error("vws_log(1024, ...) did not write an lws-style USER line to stderr")
	}
	if strings.Contains(stderr.String(), "must not appear") {
		t.Error("vws_log wrote a line at a disabled level")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !contains(srv.CloseCodes(), ws.StatusNormalClosure) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if codes := srv.CloseCodes(); !contains(codes, ws.StatusNormalClosure) {
		t.Errorf(
			"close codes seen by the server: %v; want 1000 among them",
			codes)
	}
}

func contains(codes []ws.StatusCode, c ws.StatusCode) bool {
	for _, x := range codes {
		if x == c {
			return true
		}
	}
	return false
}
