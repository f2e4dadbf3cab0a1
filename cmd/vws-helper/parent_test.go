package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWatchParent: a helper whose parent exits while the helper's socket is
// held elsewhere ends by itself, and not while the parent lives. The test
// binary plays both: a parent process (VWS_TEST_WATCH=parent) starts a child
// running the request loop (watchParent, serve) on a socket whose other end
// it holds itself, and exits when its stdin ends.
func TestWatchParent(t *testing.T) {
	switch os.Getenv("VWS_TEST_WATCH") {
	case "parent":
		child := exec.Command(os.Args[0], "-test.run=^TestWatchParent$")
		child.Env = append(os.Environ(), "VWS_TEST_WATCH=child")
		child.Stdout = os.Stdout
		if err := child.Start(); err != nil {
			fmt.Println("START", err)
			os.Exit(1)
		}
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0) // without waiting for the child
	case "child":
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			fmt.Println("SOCKETPAIR", err)
			os.Exit(1)
		}
		sock := os.NewFile(uintptr(fds[0]), "socket")
		s := newServer(sock)
		s.watchParent(os.Getppid())
		fmt.Printf("WATCHING %d\n", os.Getpid())
		s.serve(fds[0], bufio.NewReader(sock)) // fds[1] stays open: no EOF
		os.Exit(1)
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestWatchParent$")
	parent.Env = append(os.Environ(), "VWS_TEST_WATCH=parent")
	stdin, err := parent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "WATCHING ")))
	if err != nil || perr != nil {
		stdin.Close()
		parent.Wait()
		t.Fatalf("no child: %q %v", line, err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond)
	if gone(pid) {
		t.Fatal("the child ended while its parent lives")
	}
	stdin.Close()
	parent.Wait()
	for end := time.Now().Add(10 * time.Second); !gone(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the child still runs 10 s after its parent exited")
		}
	}
}

// gone reports whether process pid has exited (no longer there, or a zombie
// where the reaper does not reap).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}
