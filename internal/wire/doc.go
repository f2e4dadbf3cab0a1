// Package wire is the framed binary protocol between the out-of-process proxy
// (proxy/*.c, a C implementation of include/verawebsockets.h) and the engine
// helper process (cmd/vws-helper). proxy/wire.h mirrors these definitions;
// change both together and bump Version.
//
// The two ends share a SOCK_STREAM socketpair (fd 3 in the helper). Every
// message is one frame:
//
//	u32  n      big-endian length of the rest of the frame (MinBody..MaxBody)
//	u8   kind   KindCall, KindReply, KindEvent, KindHello or KindLog
//	u8   op     call/reply: the Op; event: the event type (VWS_EV_*); hello: Version
//	u32  id     call/reply: request id (a call with id 0 wants no reply); else 0
//	...         values, each a u8 tag followed by its payload:
//	            TagInt   (1): i64 big-endian
//	            TagBytes (2): u32 big-endian length, then that many bytes
//
// Arguments of a call, per Op (the proxy names contexts and connections by its
// own handles, "tags"; the helper maps them to internal/hub handles, creating
// a hub context on the first OpConnNew or OpServerNew that names it):
//
//	OpSetLogLevel  mask                                   -> ()
//	OpCtxFree      ctx                                    -> ()
//	OpActive       ctx                                    -> (n)
//	OpConnNew      ctx, conn, url                         -> ()
//	OpSetOption    conn, name, value                      -> ()
//	OpCheck        conn                                   -> ()
//	OpConnect      conn                                   -> ()
//	OpSend         conn, opcode, data                     -> ()
//	OpPing         conn, data                             -> ()
//	OpClose        conn, code, reason                     -> ()
//	OpState        conn                                   -> (state)
//	OpBuffered     conn                                   -> (n)
//	OpProtocol     conn                                   -> (protocol)
//	OpConnFree     conn                                   -> ()
//	OpServerNew        ctx, server                        -> ()
//	OpServerSetOption  server, name, value                -> ()
//	OpServerListen     server                             -> (port)
//	OpServerPort       server                             -> (port)
//	OpBroadcast        server, opcode, data               -> (n)
//	OpServerClients    server                             -> (clients)
//	OpServerClose      server, code, reason               -> ()
//	OpServerFree       server                             -> ()
//	OpAcceptBase       base                               -> ()
//	OpRequestHeaders   conn                               -> (headers: "Name: value\n" lines)
//	OpPeer             conn                               -> (address)
//	OpPeerCert         conn                               -> (client certificate subject, "" if none)
//	OpHTTPRespond      request, status, headers, body     -> ()
//	OpConnFail         conn                               (no reply: sent with id 0)
//	OpSetLogSink       on (0/1)                           -> ()
//	OpSendAck          conn                               (no reply: sent with id 0)
//	OpShareRest        conn, gen, rest                    (no reply: sent with id 0)
//
// The proxy sends OpSend, OpPing and OpClose with id 0 (no reply, version 5)
// after checking what it can itself (see proxy/conn_async.c). One that fails in
// the helper with another status than EState is reported by an event of type
// EventSendError (code: the status, data: the message), which the proxy never
// hands to the application: the connection's next send or ping returns it and
// sends OpSendAck (conn, no reply) instead of its own call; between a report
// and that OpSendAck the helper reports no other failure of the connection
// (those calls were sent before the report was returned). The
// proxy answers vws_conn_state and vws_ctx_active from the events it receives;
// OpState and OpActive remain for other clients of the protocol.
//
// Shared writes (version 7): the proxy passes the helper a memory of gate
// words on fd GateFD (GateSlots slots). When a ws:// connection without
// compression or writeable events opens, the helper sends an event of type
// EventShare after its ESTABLISHED (opcode: the slot, code: the generation,
// attempt: the socket's local port, which the proxy checks) with a copy of
// the socket (SCM_RIGHTS, from the frame's first byte). The
// proxy then writes a small message's frame to that socket itself, without
// the helper, when the slot's count of taken calls equals the asynchronous
// calls it sent for the connection and it can set wsengine.GateOther on a gate
// word with its generation and no other bit (wsengine/gate.go); what the
// socket does not take of the frame goes to the helper as OpShareRest. It
// closes its copy with the connection's CLOSED or CONNECTION_ERROR event; the
// helper shuts the socket down before closing it.
//
// Servers and the proxy's connections take their tags from one counter, so
// they never collide. A connection accepted by a server is made inside the
// helper, which tags it base+n (n = 1, 2, ... below AcceptedTagSpan) and
// announces it with its first event, SERVER_ESTABLISHED (type 0), whose code
// value is the tag of the server that accepted it (the proxy reports code 0
// to its caller). A plain HTTP request to a server (event HTTP, type 12) is
// tagged the same way, from the same counter, with code = the server's tag;
// its tag is only good for one OpHTTPRespond. From then on the proxy names it like its own connections
// (OpSend, OpClose, ..., OpConnFree). base is AcceptedTagBase unless the
// proxy's first frame, OpAcceptBase (no reply), sets another: the proxy gives
// each helper it starts its own span, AcceptedTagBase + k*AcceptedTagSpan for
// its g-th helper (k = g-1 modulo the 2031616 spans below AcceptedTagLimit =
// 2^53), so an accepted handle of a dead helper is not handed out again. clients is bytes: the
// tags of the server's open clients, each a u64 big-endian.
//
// A reply carries the call's op and id and the values status (VWS_OK or a
// negative VWS_E*), err (bytes, "" on success), then the results above.
// OpActive, OpConnFree and OpServerFree are answered only after every event
// the context had queued at that moment was written, so a reply never
// overtakes an event.
//
// An event (helper -> proxy, id 0, op = event type) carries ctx, conn,
// opcode, clean (0/1), code, attempt, state (the connection's state right
// after the event, as the helper saw it; for CLOSED and CONNECTION_ERROR
// exactly VWS_STATE_CLOSED when the event ends the connection for good, else
// CONNECTING: a reconnect follows), data (bytes, always the last value
// so a reader can receive it straight into its own buffer). SERVER_ESTABLISHED:
// code = the tag of the server that accepted the connection.
//
// A protocol violation of a connection's peer found after events the helper
// forwarded does not fail the connection at once: the helper sends an event
// of type EventFailPending (code and data: the close code and reason) behind
// them, and the connection stays open, so the application's handlers of those
// events can still send. The proxy never hands it to the application: its
// queue holds it until the application has handled the events before it
// (the application's next call for events finds it at the head; or at once,
// when none of that connection's events waits), then sends OpConnFail, and the
// helper fails the connection with that code, its close frame behind the
// messages sent meanwhile. A connection whose OpConnFail does not come fails
// after its close_timeout.
//
// While OpSetLogSink is on, every line the helper writes to its stderr goes to
// the proxy too, as a frame of kind KindLog: op 0, id = its level (one bit of
// the lws mask), one bytes value = the text without time stamp and level name.
// The proxy hands it to the application's log sink (vws_set_log_sink). Lines
// that find the helper's queue for them full (a burst) go to stderr only.
//
// The helper sends one hello first: op Version, values pid, ABI version.
package wire
