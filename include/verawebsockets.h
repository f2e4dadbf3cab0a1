/*
 * verawebsockets.h - the C ABI of the verawebsockets engine.
 *
 * Two implementations sit behind this header:
 *   - capi/    : Go, built with -buildmode=c-shared, the engine runs in process
 *                (goroutines are the service threads);
 *   - proxy/   : a small C library that drives the engine in a static Go helper
 *                process over a pipe (MIPS, where Go cannot build c-shared).
 * The Lua binding (lualib/) is written against this header only.
 *
 * Conventions
 *   - Plain C types only. Handles are opaque non-zero 64-bit integers; 0 is
 *     never a valid handle.
 *   - Every function returns a status (VWS_OK or a negative VWS_E*), except
 *     where noted. On failure, if `err` is not NULL, a NUL-terminated, human
 *     readable message is written into err[0..errlen-1] (truncated to fit).
 *   - No function blocks longer than it says: all calls return within
 *     milliseconds, except vws_ctx_next_event and vws_ctx_next_events, which
 *     wait at most timeout_ms.
 *   - All functions are safe to call from any thread, concurrently.
 *   - No function ever calls back into the caller: events are pulled with
 *     vws_ctx_next_event, or many at a time with vws_ctx_next_events. The one
 *     exception is the log sink the caller may set (vws_set_log_sink).
 */
#ifndef VERAWEBSOCKETS_H
#define VERAWEBSOCKETS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VWS_ABI_VERSION 1

/* ---- Status codes --------------------------------------------------------- */
#define VWS_OK            0
#define VWS_EARG         -1 /* bad argument: unknown option, bad value, bad handle */
#define VWS_ESTATE       -2 /* not allowed in this state (send before open, after close) */
#define VWS_EFULL        -3 /* send queue over max_send_queue */
#define VWS_ETOOBIG      -4 /* message larger than max_message_size */
#define VWS_EENGINE      -5 /* the engine is unavailable (helper process died, ...) */
#define VWS_EINTERNAL    -6 /* internal failure (a recovered panic); the process lives on */
#define VWS_EOPTION      -7 /* a bad option: unknown name, bad value, or options that do not go
                               together (set_option, vws_conn_check, vws_server_listen) */
#define VWS_EBIND        -8 /* vws_server_listen could not bind (address in use, no permission) */

/* ---- Handles ---------------------------------------------------------------- */
/* A context owns an event queue and the connections created in it.
 * The Lua binding makes one (or more) per lua_State. */
typedef uint64_t vws_ctx;
/* A connection: a client made with vws_conn_new, or one accepted by a server. */
typedef uint64_t vws_conn;
/* A WebSocket server (listener). Server and connection handles never collide. */
typedef uint64_t vws_server;

/* ---- Events ---------------------------------------------------------------
 * Event types are libwebsockets 2.4 callback reasons (enum lws_callback_reasons).
 */
#define VWS_EV_CONNECTION_ERROR  1 /* LWS_CALLBACK_CLIENT_CONNECTION_ERROR: data = reason */
#define VWS_EV_ESTABLISHED       3 /* LWS_CALLBACK_CLIENT_ESTABLISHED: data = chosen subprotocol ("" if none) */
#define VWS_EV_CLOSED            4 /* LWS_CALLBACK_CLOSED: clean, code, data = reason */
#define VWS_EV_RECEIVE           8 /* LWS_CALLBACK_CLIENT_RECEIVE: opcode, data = whole message */
#define VWS_EV_RECEIVE_PONG      9 /* LWS_CALLBACK_CLIENT_RECEIVE_PONG: data = pong payload */
#define VWS_EV_WRITEABLE        10 /* LWS_CALLBACK_CLIENT_WRITEABLE: the send queue drained to 0 */
/* Events of connections accepted by a server use the libwebsockets server reasons
 * (CLOSED is 4 on both sides): */
#define VWS_EV_SERVER_ESTABLISHED  0 /* LWS_CALLBACK_ESTABLISHED: a new client; conn = its new handle,
                                        data = request URI ("/path?query"); vws_conn_server
                                        names the server, vws_conn_protocol the subprotocol */
#define VWS_EV_SERVER_RECEIVE      6 /* LWS_CALLBACK_RECEIVE: opcode, data = whole message */
#define VWS_EV_SERVER_RECEIVE_PONG 7 /* LWS_CALLBACK_RECEIVE_PONG: data = pong payload */
#define VWS_EV_SERVER_WRITEABLE   11 /* LWS_CALLBACK_SERVER_WRITEABLE: the send queue drained to 0 */
/* A plain HTTP request (not an upgrade) to a server with http_handler = 1: */
#define VWS_EV_HTTP               12 /* LWS_CALLBACK_HTTP: conn = the request's own handle (answer it with
                                        vws_http_respond; vws_conn_server names the server), data =
                                        "METHOD TARGET PEER\n" (TARGET as sent, "/path?query"; PEER
                                        "127.0.0.1:54321"), the request headers as "Name: value\n"
                                        lines as sent, "\n", then the body */
/* A WebSocket handshake to a server with filter = 1, before its 101 (admitted by the
 * Origin policy and the limits): */
#define VWS_EV_FILTER             20 /* LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: conn = the request's own
                                        handle, data as for VWS_EV_HTTP with the subject of the client
                                        certificate the server verified as the body ("" without one).
                                        Answer with vws_http_respond: status 0 accepts (the 101
                                        follows), 300..599 refuses with that status, headers, body;
                                        no answer within handshake_timeout refuses with 503. opcode =
                                        403 when the Origin policy refuses the handshake's Origin
                                        (only with origins = "filter"), else 0 */

/* Message opcodes (RFC 6455 section 5.2). */
#define VWS_OP_TEXT    1
#define VWS_OP_BINARY  2

/* Connection states. */
#define VWS_STATE_CREATED    0 /* created, connect not called yet */
#define VWS_STATE_CONNECTING 1 /* dialing / handshaking / waiting to reconnect */
#define VWS_STATE_OPEN       2
#define VWS_STATE_CLOSING    3 /* close frame sent, waiting for the peer's */
#define VWS_STATE_CLOSED     4 /* closed or failed for good */

typedef struct vws_event {
	int      type;    /* VWS_EV_* */
	vws_conn conn;    /* the connection it concerns */
	int      opcode;  /* RECEIVE, SERVER_RECEIVE: VWS_OP_TEXT or VWS_OP_BINARY; else 0 */
	int      clean;   /* CLOSED: 1 if the closing handshake completed; else 0 */
	int      code;    /* CLOSED: close code (1005 when none was received, 1006 abnormal) */
	int      attempt; /* ESTABLISHED / CONNECTION_ERROR: connect attempt number, 1-based */
	char    *data;    /* payload (see type), may contain NULs; NUL-terminated for convenience;
	                     NULL when len == 0. Owned by the event: release with vws_event_clear. */
	size_t   len;
} vws_event;

/* Frees ev->data and zeroes *ev. Safe on a zeroed or already cleared event. */
void vws_event_clear(vws_event *ev);

/* ---- Engine-wide ------------------------------------------------------------ */

/* Returns VWS_ABI_VERSION of the implementation (never fails). */
int vws_abi_version(void);

/* Sets the log mask (libwebsockets bits: 1 err, 2 warn, 4 notice, 8 info, 16 debug,
 * 32 parser, 64 header, 128 ext, 256 client, 512 latency, 1024 user; 2047 = all).
 * Lines go to stderr as "[YYYY/MM/DD HH:MM:SS:mmmm] LEVEL: text". Default 0. */
int vws_set_log_level(int mask);

/* Writes one line at the given level (one of the bits above) if enabled. */
int vws_log(int level, const char *msg);

/* A log sink: gets every line written from the time it is set, after it went to
 * stderr (so only the levels the mask enables): its level (one bit) and its
 * text, NUL-terminated, without the time stamp, the level name and the newline.
 * It is called on the thread that logs: any thread of the implementation (out of
 * process: the reader thread of the helper's socket, for the helper's lines) or
 * the caller's own in vws_log. It must return quickly, must not call any vws_
 * function and must copy the text it keeps; it must be thread-safe. */
typedef void (*vws_log_sink)(void *ud, int level, const char *msg);

/* Sets the log sink (NULL: none; the default). ud is passed to it as is. Lines
 * being written while it changes may go to the old sink or the new one. */
int vws_set_log_sink(vws_log_sink fn, void *ud);

/* ---- Contexts ------------------------------------------------------------------ */

/* Creates a context with an empty event queue. */
int vws_ctx_new(vws_ctx *out, char *err, size_t errlen);

/* Closes every connection of the context (without further events), frees the
 * queue and its pending events. The handle is invalid afterwards. */
int vws_ctx_free(vws_ctx ctx);

/* Waits up to timeout_ms (0: do not wait; < 0: treated as 0) for the next event of the
 * context. Returns 1 and fills *ev (release with vws_event_clear) when there is one,
 * 0 on timeout, or a negative status. */
int vws_ctx_next_event(vws_ctx ctx, int timeout_ms, vws_event *ev);

/* A batch of events taken with one call of vws_ctx_next_events. The caller sets evs, max,
 * buf and buflen; the call sets n, left and held. Small event data are copied into buf while
 * they fit; data of 4 KiB or more, and a first event's data that do not fit, are handed on
 * where they are, held by the implementation (held != 0) until vws_batch_release; a later
 * small event that does not fit waits for the next batch. The data of a batch's events (NOT
 * NUL-terminated here; data is NULL when len == 0) stay valid until the caller reuses buf or,
 * for held ones, calls vws_batch_release. Never pass a batch's events to vws_event_clear.
 * Batches are independent: several may be taken from one context, nested or on several
 * threads, each released by its taker. */
typedef struct vws_batch {
	vws_event *evs;    /* caller's array of max events */
	int        max;    /* > 0 */
	char      *buf;    /* caller's buffer for the events' data (NULL when buflen is 0) */
	size_t     buflen;
	int        n;      /* set: events taken (also the return value) */
	int        left;   /* set: events still pending after these */
	uint64_t   held;   /* set: non-zero when data outside buf is held: call vws_batch_release */
} vws_batch;

/* Waits up to timeout_ms (0: do not wait; < 0: treated as 0) for events of the context and
 * takes up to b->max of them in order, with one call. Returns b->n (>= 1), 0 on timeout or
 * after vws_ctx_wake, or a negative status (then nothing is held). */
int vws_ctx_next_events(vws_ctx ctx, int timeout_ms, vws_batch *b);

/* Releases what a batch holds (b->held) and sets b->held to 0. Safe to call with nothing
 * held, and more than once. */
void vws_batch_release(vws_batch *b);

/* Returns the number of pending events (>= 0), or a negative status. */
int vws_ctx_pending(vws_ctx ctx);

/* Wakes a thread blocked in vws_ctx_next_event on this context: it returns 0 at once. */
int vws_ctx_wake(vws_ctx ctx);

/* Returns a file descriptor (>= 0) that is readable while the context has pending
 * events (level triggered: it is drained by vws_ctx_next_event when the queue empties),
 * or a negative status. Owned by the context: never close or read it. */
int vws_ctx_event_fd(vws_ctx ctx);

/* Returns the number of connections of the context that are not CLOSED (>= 0):
 * created-but-unconnected ones are not counted. Listening servers count as one each.
 * A connection stops counting when its last event is queued: 0 with nothing pending
 * means no event is to come. Out of process the proxy answers it (no call to the helper). */
int vws_ctx_active(vws_ctx ctx);

/* Reading on the waiting thread. A thread that waits for the events of ctx can read
 * ctx's open connections itself, parsing on its own stack, instead of the engine's
 * threads reading them and handing each message over (two thread switches a message
 * fewer). vws_ctx_read_fds claims the reading for the caller and fills fds[0..max-1]
 * (fd, events; revents zeroed) with what to poll besides the event fd. It returns how
 * many there are (more than max: call again with room for all), or a negative status;
 * *now is set to 1 when input or events are waiting already (poll with timeout 0). Every
 * call is followed by one vws_ctx_read with the array, revents as poll left them (zeroed
 * if no poll was made): it reads what arrived (the events are queued) and returns the
 * number of events pending then (as vws_ctx_pending, >= 0), or a negative status. again = 1 says the caller calls
 * vws_ctx_read_fds again at once when nothing is pending (its wait goes on: it runs no
 * handler and returns to no script meanwhile); 0 that it may be away. A connection is handed over between
 * its reads, so one may be read by the engine for a while after the claim.
 * When the caller has been away (not between the two calls, nor back at once) for 20 ms (it runs handlers, or
 * waits elsewhere), the engine takes the reading back: pings, close handshakes and
 * flow control go on while the caller is busy. Out of process the caller claims the
 * socket of the engine helper instead (one fd, for a ctx with an open connection; one
 * ctx at a time): vws_ctx_read then queues the events of every context and hands
 * replies to waiting calls, and a call that waits for its reply takes the reading
 * back at once. */
int vws_ctx_read_fds(vws_ctx ctx, struct pollfd *fds, int max, int *now);
int vws_ctx_read(vws_ctx ctx, const struct pollfd *fds, int n, int again);

/* ---- Connections ----------------------------------------------------------------- */

/* Creates a client connection to url (ws:// or wss://) in ctx. Nothing is dialed yet.
 * Fails with VWS_EARG and a clear message for a bad URL. */
int vws_conn_new(vws_ctx ctx, const char *url, vws_conn *out, char *err, size_t errlen);

/* Sets one option before connect, from its text form. Unknown names and bad values
 * fail with VWS_EARG and a message naming the option. Options (value syntax):
 *   client_ssl_cert_filepath, client_ssl_private_key_filepath,
 *   client_ssl_ca_filepath       path (PEM)
 *   allow_self_signed            "0" | "1"  (skip verification of the server certificate)
 *   max_message_size             bytes, decimal (default 16777216)
 *   max_send_queue               bytes, decimal (default 16777216)
 *   compression                  "0" | "1"  (offer permessage-deflate)
 *   protocols                    comma separated subprotocol names
 *   header                       "Name: value" (repeatable; CR/LF or bad names refused)
 *   origin                       text
 *   connect_timeout              milliseconds (default 10000)
 *   ping_interval                milliseconds, 0 = off (default 0)
 *   pong_timeout                 milliseconds (default: ping_interval, or 10000)
 *   close_timeout                milliseconds to wait for the peer's close (default 3000)
 *   reconnect                    "min_delay_ms,max_delay_ms,factor,jitter,max_attempts"
 *                                (max_attempts 0 = unlimited); "" = off
 *   proxy                        "http://[user:pass@]host:port" | "env" | "" (none)
 *   max_redirects                0..10 (default 0: redirects are connection errors)
 *   pong_events                  "0" | "1"  (deliver VWS_EV_RECEIVE_PONG; default 0)
 *   writeable_events             "0" | "1"  (deliver VWS_EV_WRITEABLE; default 0)
 */
int vws_conn_set_option(vws_conn c, const char *name, const char *value, char *err, size_t errlen);

/* Checks the options as a whole (e.g. loads and verifies cert/key/CA files).
 * Called once after the options are set; connect calls it too. */
int vws_conn_check(vws_conn c, char *err, size_t errlen);

/* Starts connecting in the background; returns at once. Outcome arrives as an event
 * (ESTABLISHED or CONNECTION_ERROR). VWS_ESTATE if already connecting or open. */
int vws_conn_connect(vws_conn c, char *err, size_t errlen);

/* Queues one whole message (opcode VWS_OP_TEXT or VWS_OP_BINARY); returns at once.
 * VWS_ESTATE if not open, VWS_ETOOBIG over max_message_size, VWS_EFULL over
 * max_send_queue. Messages are sent in the order queued.
 * Out of process (proxy/) send, ping and close do not wait for the helper: the
 * statuses the proxy can decide itself (EARG, ESTATE, ETOOBIG) come at once as
 * here; a message the helper refuses (VWS_EFULL) is dropped and the next
 * vws_conn_send or vws_conn_ping of the connection returns that status (it then
 * sends nothing); a send the helper finds closing is dropped (CLOSED follows). */
int vws_conn_send(vws_conn c, int opcode, const char *data, size_t len, char *err, size_t errlen);

/* Queues a ping with up to 125 bytes of payload. */
int vws_conn_ping(vws_conn c, const char *data, size_t len, char *err, size_t errlen);

/* Starts the closing handshake with code (1000 if 0) and reason (<= 123 bytes);
 * stops reconnecting. A CLOSED event follows. Closing a closed connection is VWS_OK. */
int vws_conn_close(vws_conn c, int code, const char *reason, size_t len, char *err, size_t errlen);

/* Returns the state (VWS_STATE_*, >= 0) or a negative status. It is CLOSED once the
 * event that ends the connection for good (CLOSED, or a CONNECTION_ERROR without a
 * reconnect to come) is queued, and never OPEN after vws_conn_close. Out of process
 * the proxy answers it from the events it received (it lags the engine between
 * events) and from vws_conn_close (OPEN -> CLOSING at once). */
int vws_conn_state(vws_conn c);

/* Writes the number of bytes queued but not yet written to the socket. */
int vws_conn_buffered(vws_conn c, size_t *out);

/* Copies the subprotocol the server chose ("" if none) into buf (NUL-terminated).
 * Out of process the proxy answers it once the open event came (no call to the helper). */
int vws_conn_protocol(vws_conn c, char *buf, size_t buflen);

/* Closes the connection if needed (code 1001, no further events) and invalidates the
 * handle. Events already queued for it stay in the queue; ignore them by handle. */
int vws_conn_free(vws_conn c);

/* Returns in *out the server that accepted c, or 0 when c is a client connection. */
int vws_conn_server(vws_conn c, vws_server *out);

/* Copies the headers of the other side's opening handshake into buf as "Name: value\n"
 * lines, as sent, truncated to fit and NUL-terminated: for a connection accepted by a
 * server the client's request (Host first; the handshake's own Upgrade, Connection and
 * Sec-WebSocket-* headers left out); for a client connection every header of the 101
 * response of its last connect. Returns the length of the whole text (>= buflen: it was
 * truncated), or a negative status (VWS_ESTATE for a client connection that never
 * opened). */
int vws_conn_request_headers(vws_conn c, char *buf, size_t buflen);

/* For a connection accepted by a server: copies the client's address
 * ("127.0.0.1:54321", "[::1]:54321") into buf (NUL-terminated). VWS_EARG for a client
 * connection. */
int vws_conn_peer(vws_conn c, char *buf, size_t buflen);

/* For a connection accepted by a wss server with ssl_ca_filepath: copies the subject of
 * the client certificate the server verified, as an RFC 2253 string ("CN=phone,O=Home"),
 * into buf (truncated to fit, NUL-terminated; "" when the client gave none). Returns the
 * length of the whole subject (0: no certificate; >= buflen: it was truncated), or a
 * negative status (VWS_EARG for a client connection). */
int vws_conn_peer_cert(vws_conn c, char *buf, size_t buflen);

/* ---- Servers ---------------------------------------------------------------------
 * A server listens on a TCP (or TLS) port and accepts WebSocket connections (RFC 6455,
 * server role: it sends unmasked frames and requires masked ones; permessage-deflate only
 * with the compression option). Each accepted connection gets a vws_conn handle of its own in the
 * server's context, announced by VWS_EV_SERVER_ESTABLISHED; vws_conn_send, _ping,
 * _close, _state, _buffered, _protocol and _free work on it as on a client (connect and
 * set_option do not). Free it with vws_conn_free like any connection. */

/* Creates a server in ctx; it does not listen until vws_server_listen. */
int vws_server_new(vws_ctx ctx, vws_server *out, char *err, size_t errlen);

/* Sets one option before listen, from its text form. Options (value syntax):
 *   host                       address or name to bind (default "127.0.0.1";
 *                              "0.0.0.0" or "::" for every interface)
 *   port                       0..65535 (required; 0 = any free port)
 *   protocols                  comma separated subprotocols the server accepts: the first
 *                              one the client offers that is in this list is chosen
 *   max_clients                1..100000 (default 100): further handshakes get HTTP 503
 *   handshake_timeout          milliseconds (default 10000)
 *   ssl_cert_filepath, ssl_private_key_filepath   path (PEM): both set = TLS (wss)
 *   ssl_ca_filepath            path (PEM): CAs of client certificates (TLS servers only);
 *                              a certificate a client gives is verified against them
 *   require_client_cert        "0" | "1": refuse clients without such a certificate at the
 *                              TLS handshake (needs ssl_ca_filepath; default 0)
 *   origins                    comma separated origins "scheme://host[:port]" allowed besides
 *                              the server's own host, or "*" (any). A handshake whose Origin
 *                              names another host than its Host header and is not listed gets
 *                              HTTP 403 (no Origin: accepted). Default "" (same host only).
 *                              "filter": such handshakes go to the filter instead (opcode 403;
 *                              needs filter = 1, else they get 403)
 *   max_clients_per_ip         0..100000 (default 0 = no limit): open connections per client
 *                              address; further handshakes get HTTP 503
 *   handshake_rate             "rate[,burst]": handshakes per second per client address (a
 *                              token bucket of burst, default rate rounded up); over it HTTP
 *                              429. "" = no limit (default)
 *   filter                     "0" | "1": deliver every handshake these checks admit as
 *                              VWS_EV_FILTER and wait (up to handshake_timeout, then HTTP
 *                              503) for vws_http_respond: 0 accepts, 300..599 refuses
 *   max_message_size, max_send_queue, ping_interval, pong_timeout, close_timeout,
 *   pong_events, writeable_events   as for connections, applied to every accepted one
 *   compression                "0" | "1": accept permessage-deflate offers (default 0)
 * Plain HTTP requests (no Upgrade: websocket) on the same port, answered with
 * "Connection: close" (no keep-alive); handshake_rate and max_clients_per_ip apply to
 * them (429, 503), the origins policy and max_clients do not:
 *   http_handler               "0" | "1": deliver each as VWS_EV_HTTP and wait (up to
 *                              handshake_timeout, then HTTP 503) for vws_http_respond
 *   http_root                  directory: GET and HEAD requests not answered by the handler
 *                              (status 0) get its files (Content-Type by extension,
 *                              Last-Modified / If-Modified-Since, index.html of a directory;
 *                              ".." segments, also percent-encoded, and symlinks leaving it
 *                              403, missing 404, other methods 405). Neither option set: plain
 *                              requests get HTTP 400 as before; only the handler: 404
 *   max_http_body              bytes, 0..1073741824 (default 1048576): larger request bodies
 *                              get HTTP 413 */
int vws_server_set_option(vws_server s, const char *name, const char *value, char *err, size_t errlen);

/* Binds and starts accepting in the background. Fails (with the reason in err) when
 * the address cannot be bound or the certificate cannot be loaded. */
int vws_server_listen(vws_server s, char *err, size_t errlen);

/* Returns the bound port (> 0) while listening, 0 otherwise, or a negative status. */
int vws_server_port(vws_server s);

/* Queues one message to every open client; returns the number of clients it was
 * queued to (>= 0; clients whose send queue is full are skipped) or a negative
 * status (VWS_ESTATE when not listening). */
int vws_server_broadcast(vws_server s, int opcode, const char *data, size_t len, char *err, size_t errlen);

/* Writes up to n handles of the server's open clients into out; returns how many it
 * has in all (>= 0; call again with a larger array when that is over n). */
int vws_server_clients(vws_server s, vws_conn *out, size_t n);

/* Answers HTTP request req (a VWS_EV_HTTP event's conn) with status (200..599; 0 = not
 * handled: the server serves it from http_root, or answers 404), or a handshake (a
 * VWS_EV_FILTER event's conn: 0 accepts, 300..599 refuses), header lines ("Name:
 * value", separated by "\n"; Content-Length, Connection and Transfer-Encoding are the
 * server's; without Content-Type a non-empty body is sent as text/plain) and body
 * (len bytes; not sent for HEAD). The handle is invalid afterwards (also when the call
 * fails: a bad status or header answers the request with HTTP 500). VWS_ESTATE when the
 * server gave up on the request already (503 after handshake_timeout, or it closed). */
int vws_http_respond(vws_conn req, int status, const char *headers, const char *body, size_t len,
                     char *err, size_t errlen);

/* Stops listening and starts the closing handshake with every client with code (1001
 * if 0) and reason; their CLOSED events follow. Closing a closed server is VWS_OK. */
int vws_server_close(vws_server s, int code, const char *reason, size_t len, char *err, size_t errlen);
/* code -1: stop listening only: the port is released at once, handshakes in progress
 * are closed (1001), the clients go on (broadcast still reaches them; vws_ctx_active
 * counts them, not the server); a later vws_server_close with a code closes them. */

/* Stops listening, closes the clients (1001, no further events) and invalidates the
 * server handle. The clients' handles stay valid until vws_conn_free. */
int vws_server_free(vws_server s);

#ifdef __cplusplus
}
#endif
#endif /* VERAWEBSOCKETS_H */
