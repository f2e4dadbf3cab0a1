package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
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

// pusher serves ws://127.0.0.1:PORT/push?n=N&size=S[&close=1]: each client
// first gets N text messages of S bytes ("%08d" of the message's index, then
// "x"s), written as fast as the socket takes them; with close=1 the server
// then closes (1000), else it reads (and answers control frames) until the
// client leaves. It floods the helper with events for TestOOP.
func pusher(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			go func() {
				push(c)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "ws://" + ln.Addr().String() + "/push"
}

func push(c net.Conn) {
	var uri string
	up := ws.Upgrader{OnRequest: func(u []byte) error { uri = string(u); return nil }}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := up.Upgrade(c); err != nil {
		return
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute)) // a forgotten client never holds the test
	u, err := url.Parse(uri)
	if err != nil {
		return
	}
	n, _ := strconv.Atoi(u.Query().Get("n"))
	size, _ := strconv.Atoi(u.Query().Get("size"))
	if n < 0 || n > 10_000_000 || size < 8 || size > 1<<20 {
		return
	}
	bw := bufio.NewWriterSize(c, 64<<10)
	msg := []byte(strings.Repeat("x", size))
	for i := 0; i < n; i++ {
		copy(msg, fmt.Sprintf("%08d", i))
		if wsutil.WriteServerMessage(bw, ws.OpText, msg) != nil {
			return
		}
	}
	if u.Query().Get("close") == "1" {
		bw.Write(ws.CompiledCloseNormalClosure)
	}
	if bw.Flush() != nil {
		return
	}
	for { // until the client's close (answered by ReadClientData) or EOF
		if _, _, err := wsutil.ReadClientData(c); err != nil {
			return
		}
	}
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// buildProxy builds the proxy (proxy/*.c) as a shared library and the C
// program proxy/testdata/NAME.c linked with it, in a temporary directory;
// it returns that directory and the program.
func buildProxy(t *testing.T, name string) (dir, prog string) {
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
	dir = t.TempDir()
	srcs, _ := filepath.Glob(filepath.Join(root, "proxy", "*.c"))
	lib := filepath.Join(dir, "libvws.so")
	run(t, root, cc, append([]string{"-O2", "-g", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror",
		"-Wno-unused-parameter", "-Iinclude", "-shared", "-o", lib}, append(srcs, "-lpthread", "-ldl")...)...)
	prog = filepath.Join(dir, name)
	run(t, root, cc, "-O2", "-Wall", "-Iinclude", "-o", prog, "proxy/testdata/"+name+".c", lib,
		"-Wl,-rpath,"+dir, "-lpthread")
	return dir, prog
}

// runProgram runs the C test program prog (built by buildProxy) with args,
// env added to the environment, for at most timeout, and logs its output. err
// says why it failed: it did not run to a zero exit, or printed no
// "PASS: 0 of" line.
func runProgram(t *testing.T, timeout time.Duration, prog string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	stdout, stderr = out.String(), errOut.String()
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	name := filepath.Base(prog)
	if err != nil {
		return stdout, stderr, fmt.Errorf("%s: %v", name, err)
	}
	if !strings.Contains(stdout, "PASS: 0 of") {
		return stdout, stderr, fmt.Errorf("%s did not report PASS", name)
	}
	return stdout, stderr, nil
}

// buildHelper builds the helper into dir, or returns VWS_TEST_HELPER when set.
func buildHelper(t *testing.T, dir string) string {
	t.Helper()
	if helper := os.Getenv("VWS_TEST_HELPER"); helper != "" {
		return helper
	}
	helper := filepath.Join(dir, "vws-helper")
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
	return helper
}

// TestOOP builds the proxy (proxy/*.c) as a shared library and the helper,
// then runs proxy/testdata/oop_test.c through them against a local echo
// server: calls, events, 16 MiB messages, threads, wake, kill -9 of the
// helper (close events, restart, revived handles), a stopped helper, calls
// while the helper streams a flood of events (pusher), fork.
// VWS_TEST_HELPER uses a prebuilt helper (with VWS_HELPER_WRAPPER, e.g. a
// mipsle build under "qemu-mipsel -cpu 24KEc").
func TestOOP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a C program")
	}
	dir, prog := buildProxy(t, "oop_test")
	helper := buildHelper(t, dir)
	stdout, stderr, err := runProgram(t, 3*time.Minute, prog, []string{"VWS_HELPER=" + helper,
		"VWS_TEST_URL=" + echotest.New(t).URL, "VWS_TEST_BLACKHOLE_URL=" + blackhole(t), "VWS_TEST_PUSH_URL=" + pusher(t)})
	if err != nil {
		t.Fatal(err)
	}
	// The log mask set before the kill was replayed to the second helper.
	if _, after, ok := strings.Cut(stderr, "MARK restart"); !ok || !strings.Contains(after, "CLIENT: ") {
		t.Error("no CLIENT log line from the restarted helper (log level not replayed)")
	}
	// Every helper ends when its host does.
	pids := regexp.MustCompile(`(?m)^helper pid (\d+)$`).FindAllStringSubmatch(stdout, -1)
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
