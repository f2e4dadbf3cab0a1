package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// closeInherited closes the sockets and pipes above fd 3 that the host let
// leak into the helper (fds without FD_CLOEXEC): holding them would keep the
// host's peers from seeing EOF. The Go runtime's own descriptors are made later
// or are not sockets or pipes.
func closeInherited() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= socketFD {
			continue
		}
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && (strings.HasPrefix(link, "socket:") || strings.HasPrefix(link, "pipe:")) {
			syscall.Close(fd)
		}
	}
}

// parentPoll is how often watchParent looks at the parent's pid where the
// kernel has no pidfd_open (Linux before 5.3): a backstop only, since the
// socket's EOF ends the helper when the host dies unless a child forked
// without the proxy's atfork handler (which closes the socket) still holds it.
const parentPoll = 30 * time.Second

// watchParent makes the helper exit when its parent process ppid (the host)
// ends. The request loop polls a pidfd of the parent, which becomes
// readable when the parent has exited: no wakeup while the host lives, and
// no descriptor in the runtime's poller (with one waiting there, each idle
// Go thread would wait in epoll and wake for every packet on a connection
// that the loop reads itself). The kernel reparents the helper before it
// signals the pidfd, so a changed parent pid tells a real exit from a
// spurious wakeup. Without pidfd_open (Linux before 5.3) a goroutine looks
// every parentPoll.
func (s *server) watchParent(ppid int) {
	s.ppid = ppid
	fd, err := pidfdOpen(ppid)
	if err == nil {
		s.parentFD = fd
		return
	}
	go func() {
		for range time.Tick(parentPoll) {
			s.checkParent()
		}
	}()
}

// checkParent ends the helper if its parent has exited.
func (s *server) checkParent() {
	if os.Getppid() != s.ppid {
		os.Exit(0)
	}
}

// pidfdOpen returns a pidfd of process pid (pidfd_open(2), Linux 5.3).
func pidfdOpen(pid int) (int, error) {
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}
