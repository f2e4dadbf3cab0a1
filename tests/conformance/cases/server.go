package cases

import (
	"fmt"
	"strings"
	"time"
)

// Offers of the server-role cases, after Autobahn's PerMessageDeflateOffer
// (autobahntestsuite/case/case12_x_x.py): "accept" parameters become client_*,
// "request" parameters server_*.
const (
	// offerTakeover is the offer of the 12.x and x12 server cases: the
	// client keeps its context, so the server must too when inflating.
	offerTakeover = "permessage-deflate; client_max_window_bits"
	// offerAutobahn is Autobahn's default offer (13.1).
	offerAutobahn = "permessage-deflate; client_no_context_takeover; client_max_window_bits"
)

// ServerCases returns the cases for the server role, in run order: the
// client-role cases that apply to a server (groups 1-7, 9, 10, 12 and the x
// cases), the same scripts played by a client that masks what it writes,
// with the server role's own versions where the roles differ (x1.1: an
// unmasked client frame; 13.x: the offers Autobahn's client makes; x1.7,
// x1.8: masking edge cases). Options are ws.listen options of the server.
func ServerCases() []Case {
	var cs []Case
	for _, c := range Cases() {
		switch {
		case c.Group == "13":
			continue // replaced by serverDeflateParams below
		case c.ID == "x1.1":
			c.Desc = "Send an unmasked text frame (clients must mask): 1002"
			c.Steps = script(Step{Do: Write, Bytes: Text("Hello, world!"), Raw: true}, Fail(codeProtocol))
		case c.ID == "x1.4":
			c.Desc = strings.TrimSuffix(c.Desc, ", each with its own mask key")
		case c.ID == "x3.2":
			c.Desc = "Send a text frame with RSV2: 1002 within 1 s, before the client's next frame"
		case c.ID == "x7.5":
			c.Desc = "Close handshake, client keeps TCP open: the server drops TCP within close_timeout (1 s) + 2 s"
		}
		if c.Deflate != nil {
			c.Deflate, c.Offers = nil, []string{offerTakeover}
		}
		cs = append(cs, c)
		if c.ID == "x1.6" {
			cs = append(cs, serverMasking()...)
		}
	}
	return append(cs, serverDeflateParams()...)
}

// serverMasking: masking cases that only a server has.
func serverMasking() []Case {
	zero := [4]byte{}
	return []Case{
		{ID: "x1.7", Group: "x", Desc: "Send a text frame masked with the all-zero key (a valid key): echo",
			Steps: normal(Step{Do: Write, Raw: true, Bytes: Frame{Fin: true, Op: OpText, Payload: hello, Mask: &zero}.Bytes()}, Echo(OpText, hello))},
		{ID: "x1.8", Group: "x", Desc: "Send a masked text message, then an unmasked ping: echo, then 1002, no pong",
			Steps: script(W(Text("Hello, world!")), Echo(OpText, hello),
				Step{Do: Write, Raw: true, Bytes: Ping("unmasked")}, Fail(codeProtocol))},
	}
}

// serverDeflateParams are Autobahn's 13.x for a server: the client makes
// the offers of case12_x_x.py's DEFLATE_PARAMS (13.7: three offers, the
// first limiting the server's window); the server must accept one, and its
// messages must keep to what its response says (context takeover, window).
func serverDeflateParams() []Case {
	const (
		noCtx = "; server_no_context_takeover"
		w8    = "; server_max_window_bits=8"
		w15   = "; server_max_window_bits=15"
	)
	params := []struct {
		offers []string
		name   string
	}{
		{[]string{offerAutobahn}, "the default offer"},
		{[]string{offerAutobahn + noCtx}, "server_no_context_takeover"},
		{[]string{offerAutobahn + w8}, "server_max_window_bits=8"},
		{[]string{offerAutobahn + w15}, "server_max_window_bits=15"},
		{[]string{offerAutobahn + noCtx + w8}, "server_no_context_takeover, server_max_window_bits=8"},
		{[]string{offerAutobahn + noCtx + w15}, "server_no_context_takeover, server_max_window_bits=15"},
		{[]string{offerAutobahn + noCtx + w8, offerAutobahn + noCtx, offerAutobahn}, "3 offers: (no context takeover, window 8), (no context takeover), default"},
	}
	var cs []Case
	for g, pr := range params {
		for i, size := range []int{16, 64, 256, 1024, 4096, 65536} {
			cs = append(cs, Case{ID: fmt.Sprintf("13.%d.%d", g+1, i+1), Group: "13", Options: []string{"compression=true"},
				Offers: pr.offers, Timeout: 30 * time.Second,
				Desc:  fmt.Sprintf("permessage-deflate, client offers %s: 20 text messages of ~%d bytes", pr.name, size),
				Steps: deflateRoundTrips([]int{0, 2, 3}[i%3], OpText, size, 20, 0)})
		}
	}
	return cs
}
