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

// watchParent exits when the parent process (the host) ends. It waits on a
// pidfd of the parent, which becomes readable when the parent has exited,
// through the runtime's poller: no wakeup while the host lives. The kernel
// reparents the helper before it signals the pidfd, so a changed parent pid
// tells a real exit from a spurious wakeup.
func watchParent(ppid int) {
	fd, err := pidfdOpen(ppid)
	if err != nil {
		for range time.Tick(parentPoll) {
			if os.Getppid() != ppid {
				os.Exit(0)
			}
		}
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), "parent-pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	for {
		woke := false
		rc.Read(func(uintptr) bool {
			if woke || os.Getppid() != ppid {
				return true
			}
			woke = true // wait for the pidfd, then look again
			return false
		})
		if os.Getppid() != ppid {
			os.Exit(0)
		}
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
