package main

import (
	"bufio"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/verawebsockets/verawebsockets/internal/wire"
)

func TestMain(m *testing.M) {
	if os.Getenv("VWS_TEST_FAKE_HELPER") == "1" { // started by the proxy in TestOOPSilence
		fakeHelper()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// silenceT is the proxy's VWS_HELPER_TIMEOUT_MS in TestOOPSilence.
const silenceT = 800 * time.Millisecond

// fakeHelper stands in for vws-helper in TestOOPSilence. With T the proxy's
// timeout, it answers OpConnNew and OpBuffered (42) at once; OpRequestHeaders
// ("Seven: 7\n") after 3T of events, one every T/8; OpPeer after 3T of
// silence; OpProtocol never, after 3T of events; OpActive and OpState never
// (the proxy answers vws_ctx_active and vws_conn_state itself). Calls without
// an id get no reply. It exits on EOF.
func fakeHelper() {
	sock := os.NewFile(socketFD, "vws-socket")
	var mu sync.Mutex
	write := func(m *wire.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if wire.WriteMsg(sock, m) != nil {
			os.Exit(1)
		}
	}
	reply := func(m *wire.Msg, results ...wire.Value) {
		if m.ID != 0 {
			write(&wire.Msg{Kind: wire.KindReply, Op: m.Op, ID: m.ID,
				Args: append([]wire.Value{wire.Int(0), wire.String("")}, results...)})
		}
	}
	var ctx, conn int64
	stream := func() { // 3T of RECEIVE events on conn
		for i := 0; i < 24; i++ {
			write(&wire.Msg{Kind: wire.KindEvent, Op: 8, Args: []wire.Value{wire.Int(ctx), wire.Int(conn),
				wire.Int(1), wire.Int(0), wire.Int(0), wire.Int(0), wire.Int(2), wire.String(strconv.Itoa(i))}})
			time.Sleep(silenceT / 8)
		}
	}
	write(&wire.Msg{Kind: wire.KindHello, Op: wire.Version, Args: []wire.Value{wire.Int(int64(os.Getpid())), wire.Int(abiVersion)}})
	r := bufio.NewReader(sock)
	for {
		m, err := wire.ReadMsg(r)
		if err != nil {
			return
		}
		a := m.Reader()
		switch wire.Op(m.Op) {
		case wire.OpConnNew:
			ctx, conn = a.Int(), a.Int()
			reply(m)
		case wire.OpBuffered:
			reply(m, wire.Int(42))
		case wire.OpRequestHeaders:
			go func() {
				stream()
				reply(m, wire.String("Seven: 7\n"))
			}()
		case wire.OpPeer:
			go func() {
				time.Sleep(3 * silenceT)
				reply(m, wire.String("127.0.0.1:1"))
			}()
		case wire.OpActive, wire.OpState: // never answered: the proxy must not ask
		case wire.OpProtocol:
			go stream()
		default:
			reply(m)
		}
	}
}

// TestOOPSilence runs proxy/testdata/silence_test.c with fakeHelper as the
// helper: a call waits while the helper streams events, however long, and
// fails (VWS_EENGINE) once the helper has been silent for the timeout.
func TestOOPSilence(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a C program")
	}
	_, prog := buildProxy(t, "silence_test")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runProgram(t, time.Minute, prog, []string{"VWS_HELPER=" + self, "VWS_HELPER_WRAPPER=",
		"VWS_TEST_FAKE_HELPER=1", "VWS_HELPER_TIMEOUT_MS=" + strconv.Itoa(int(silenceT/time.Millisecond))}); err != nil {
		t.Fatal(err)
	}
}
