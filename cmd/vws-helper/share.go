package main

import (
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/verawebsockets/verawebsockets/internal/hub"
	"github.com/verawebsockets/verawebsockets/internal/lwslog"
	"github.com/verawebsockets/verawebsockets/internal/wire"
	"github.com/verawebsockets/verawebsockets/wsengine"
)

// Shared writes (internal/wire/doc.go, wsengine/gate.go): the proxy writes a
// small message's frame to the socket itself instead of waking the helper
// for it. The helper gives it a copy of each ws:// connection's socket when
// it opens and a gate word in the memory the proxy passed on wire.GateFD; a
// round trip out of process then waits for three wakeups, not four
// (docs/platforms.md, "What is left out of process").

// gates is the gate memory: per slot the gate word and the count of the
// connection's asynchronous calls the loop has taken.
type gates struct {
	mem []uint32 // 2 words a slot, shared with the proxy

	mu   sync.Mutex // guards free: sessions release slots from their goroutines
	free []uint32

	// The request loop's: the generation last given per slot, the calls
	// taken per connection tag, and the slot of each shared connection
	// (it may have been released since: its gate's generation tells).
	gens  []uint32
	taken map[uint64]uint32
	slots map[uint64][2]uint32 // tag -> slot, generation
}

// openGates maps the gate memory the proxy passed on wire.GateFD (a memfd
// or an unlinked file named vws-gates), or returns nil: no shared writes.
func openGates() *gates {
	var st syscall.Stat_t
	const size = wire.GateSlots * 8
	if err := syscall.Fstat(wire.GateFD, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size != size {
		return nil
	}
	if link, err := os.Readlink("/proc/self/fd/4"); err != nil || !strings.Contains(link, "vws-gates") {
		return nil
	}
	b, err := syscall.Mmap(wire.GateFD, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	syscall.Close(wire.GateFD)
	if err != nil {
		lwslog.Printf(lwslog.Warn, "vws-helper: gate memory: %v (writes not shared)", err)
		return nil
	}
	g := &gates{mem: unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), 2*wire.GateSlots),
		gens: make([]uint32, wire.GateSlots), taken: make(map[uint64]uint32), slots: make(map[uint64][2]uint32)}
	for i := wire.GateSlots - 1; i >= 0; i-- {
		g.free = append(g.free, uint32(i))
	}
	return g
}

func (g *gates) take() (uint32, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.free) == 0 {
		return 0, false
	}
	i := g.free[len(g.free)-1]
	g.free = g.free[:len(g.free)-1]
	return i, true
}

// release gives slot i back (once its session can write no more): busy,
// so that the proxy writes no more under it.
func (g *gates) release(i uint32) {
	atomic.OrUint32(&g.mem[2*i], wsengine.GateBusy)
	g.mu.Lock()
	g.free = append(g.free, i)
	g.mu.Unlock()
}

// share gives the proxy a copy of the socket of connection hc (tag, of
// pump p), just opened, with a gate, when its writes can be shared.
func (s *server) share(p *pump, hc, tag uint64) {
	g := s.gates
	i, ok := g.take()
	if !ok {
		return
	}
	gen := (g.gens[i] + 1) & (1<<(32-wsengine.GateGenShift) - 1)
	g.gens[i] = gen
	fd, err := hub.ShareWrites(hc, &g.mem[2*i], gen, wire.ShareMax, func() { g.release(i) })
	if err != nil {
		g.release(i)
		return
	}
	atomic.StoreUint32(&g.mem[2*i+1], g.taken[tag])
	g.slots[tag] = [2]uint32{i, gen}
	// The socket's local port goes with it: the proxy checks that the
	// descriptor it took is this one.
	port := 0
	switch sa, _ := syscall.Getsockname(fd); a := sa.(type) {
	case *syscall.SockaddrInet4:
		port = a.Port
	case *syscall.SockaddrInet6:
		port = a.Port
	}
	s.putFD(&wire.Msg{Kind: wire.KindEvent, Op: wire.EventShare, Args: []wire.Value{
		wire.Int(int64(p.tag)), wire.Int(int64(tag)), wire.Int(int64(i)), wire.Int(0),
		wire.Int(int64(gen)), wire.Int(int64(port)), wire.Int(0), wire.Bytes(nil)}}, fd)
	syscall.Close(fd)
}

// took counts an asynchronous call of connection tag the loop has run, in
// its gate slot while the connection is shared.
func (s *server) took(tag uint64) {
	g := s.gates
	if g == nil {
		return
	}
	n := g.taken[tag] + 1
	g.taken[tag] = n
	if sl, ok := g.slots[tag]; ok {
		// A released slot is given again only by this loop: its generation
		// cannot change between this look and the store.
		if atomic.LoadUint32(&g.mem[2*sl[0]])>>wsengine.GateGenShift == sl[1] {
			atomic.StoreUint32(&g.mem[2*sl[0]+1], n)
		} else {
			delete(g.slots, tag)
		}
	}
}

// forget drops what the gates keep of connection tag (freed).
func (s *server) forget(tag uint64) {
	if g := s.gates; g != nil {
		delete(g.taken, tag)
		delete(g.slots, tag)
	}
}

// putFD sends frame m with descriptor fd attached to its first byte
// (SCM_RIGHTS), after the frames buffered before it.
func (s *server) putFD(m *wire.Msg, fd int) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.w.Flush(); err != nil {
		s.fail(err)
	}
	b, err := m.Append(nil)
	if err != nil {
		s.fail(err)
	}
	rights := syscall.UnixRights(fd)
	for len(b) > 0 {
		n, err := syscall.SendmsgN(socketFD, b, rights, nil, 0)
		if err == syscall.EINTR && n <= 0 {
			continue
		}
		if err != nil {
			s.fail(err)
		}
		b, rights = b[n:], nil
	}
}
