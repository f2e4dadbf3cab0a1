package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/echotest"
)

// blackhole accepts TCP connections and never answers the handshake.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "ws://" + ln.Addr().String() + "/blackhole"
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestOOP builds the proxy (proxy/*.c) as a shared library and the helper,
// then runs proxy/testdata/oop_test.c through them against a local echo
// server: calls, events, 16 MiB messages, threads, wake, kill -9 of the
// helper (close events, restart, revived handles), a stopped helper, fork.
// VWS_TEST_HELPER uses a prebuilt helper (with VWS_HELPER_WRAPPER, e.g. a
// mipsle build under "qemu-mipsel -cpu 24KEc").
func TestOOP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a C program")
	}
	prog, helper := buildOOP(t, "proxy/testdata/oop_test.c")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog)
	cmd.Env = append(os.Environ(), "VWS_HELPER="+helper, "VWS_TEST_URL="+echotest.New(t).URL,
		"VWS_TEST_BLACKHOLE_URL="+blackhole(t))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("oop_test: %v", err)
	}
	if !strings.Contains(stdout.String(), "PASS: 0 of") {
		t.Fatal("oop_test did not report PASS")
	}
	// The log mask set before the kill was replayed to the second helper.
	if _, after, ok := strings.Cut(stderr.String(), "MARK restart"); !ok || !strings.Contains(after, "CLIENT: ") {
		t.Error("no CLIENT log line from the restarted helper (log level not replayed)")
	}
	// Every helper ends when its host does.
	pids := regexp.MustCompile(`(?m)^helper pid (\d+)$`).FindAllStringSubmatch(stdout.String(), -1)
	if len(pids) != 2 {
		t.Fatalf("want 2 helper pids, got %v", pids)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, m := range pids {
		pid, _ := strconv.Atoi(m[1])
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("helper %d still running after its host exited", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// buildOOP builds the proxy (proxy/*.c) as a shared library, the C test
// program src (relative to the repository) linked against it, and the helper
// (or takes VWS_TEST_HELPER); it skips the test without a C compiler.
func buildOOP(t *testing.T, src string) (prog, helper string) {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srcs, _ := filepath.Glob(filepath.Join(root, "proxy", "*.c"))
	lib := filepath.Join(dir, "libvws.so")
	run(t, root, cc, append([]string{"-O2", "-g", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror",
		"-Wno-unused-parameter", "-Iinclude", "-shared", "-o", lib}, append(srcs, "-lpthread", "-ldl")...)...)
	prog = filepath.Join(dir, strings.TrimSuffix(filepath.Base(src), ".c"))
	run(t, root, cc, "-O2", "-Wall", "-Iinclude", "-o", prog, src, lib,
		"-Wl,-rpath,"+dir, "-lpthread")
	helper = os.Getenv("VWS_TEST_HELPER")
	if helper == "" {
		helper = filepath.Join(dir, "vws-helper")
		gobin, err := exec.LookPath("go")
		if err != nil {
			//lint:ignore SA1019 a fallback for a machine without go on PATH
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(gobin, "build", "-o", helper, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	return prog, helper
}

// alive reports whether pid runs (a zombie or a reused pid of another
// program does not count).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) || s[i+2] == 'Z' {
		return false
	}
	return strings.Contains(s[:i], "vws-helper") || strings.Contains(s[:i], "qemu")
}
