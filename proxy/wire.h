/*
 * wire.h - the proxy <-> vws-helper protocol; mirrors internal/wire (Go),
 * which documents it (internal/wire/doc.go). Change both together.
 *
 * Frame: u32 BE n (length of the rest, WIRE_MIN_BODY..WIRE_MAX_BODY),
 *        u8 kind, u8 op, u32 BE id, then values: u8 tag +
 *        WIRE_TAG_INT: i64 BE | WIRE_TAG_BYTES: u32 BE len + bytes.
 */
#ifndef VWS_PROXY_WIRE_H
#define VWS_PROXY_WIRE_H

#include <stdint.h>

#define WIRE_VERSION 7

#define WIRE_KIND_CALL  1
#define WIRE_KIND_REPLY 2
#define WIRE_KIND_EVENT 3
#define WIRE_KIND_HELLO 4
#define WIRE_KIND_LOG   5 /* helper -> proxy: a log line; id: its level; values: the text */

#define WIRE_OP_SET_LOG_LEVEL 1  /* mask -> () */
#define WIRE_OP_CTX_FREE      2  /* ctx -> () */
#define WIRE_OP_ACTIVE        3  /* ctx -> (n) */
#define WIRE_OP_CONN_NEW      4  /* ctx, conn, url -> () */
#define WIRE_OP_SET_OPTION    5  /* conn, name, value -> () */
#define WIRE_OP_CHECK         6  /* conn -> () */
#define WIRE_OP_CONNECT       7  /* conn -> () */
#define WIRE_OP_SEND          8  /* conn, opcode, data -> () */
#define WIRE_OP_PING          9  /* conn, data -> () */
#define WIRE_OP_CLOSE        10  /* conn, code, reason -> () */
#define WIRE_OP_STATE        11  /* conn -> (state) */
#define WIRE_OP_BUFFERED     12  /* conn -> (n) */
#define WIRE_OP_PROTOCOL     13  /* conn -> (protocol) */
#define WIRE_OP_CONN_FREE    14  /* conn -> () */
/* Servers share the connections' tag counter. A connection a server accepts is
 * tagged by the helper (base + n, base >= WIRE_ACCEPTED_TAG_BASE, see
 * WIRE_OP_ACCEPT_BASE; below 2^53) and announced by its first
 * event, SERVER_ESTABLISHED, whose code value is the server's tag. */
#define WIRE_OP_SERVER_NEW        15  /* ctx, server -> () */
#define WIRE_OP_SERVER_SET_OPTION 16  /* server, name, value -> () */
#define WIRE_OP_SERVER_LISTEN     17  /* server -> (port) */
#define WIRE_OP_SERVER_PORT       18  /* server -> (port) */
#define WIRE_OP_BROADCAST         19  /* server, opcode, data -> (n) */
#define WIRE_OP_SERVER_CLIENTS    20  /* server -> (clients: bytes, u64 BE tags) */
#define WIRE_OP_SERVER_CLOSE      21  /* server, code, reason -> () */
#define WIRE_OP_SERVER_FREE       22  /* server -> () */
#define WIRE_OP_ACCEPT_BASE       23  /* base -> (); first frame: accepted tags are base+1, base+2, ... */
#define WIRE_OP_REQUEST_HEADERS   24  /* conn -> (headers: "Name: value\n" lines) */
#define WIRE_OP_PEER              25  /* conn -> (address) */
#define WIRE_OP_PEER_CERT         26  /* conn -> (client certificate subject, "" if none) */
/* A plain HTTP request (event HTTP, 12) is tagged like an accepted connection,
 * with code = the server's tag; its tag is good for one WIRE_OP_HTTP_RESPOND. */
#define WIRE_OP_HTTP_RESPOND      27  /* request, status, headers, body -> () */
/* Failing in order (version 3): the helper reports a protocol violation that
 * waits behind the events before it as an event of type
 * WIRE_EVENT_FAIL_PENDING (code, data: the close code and reason), never
 * handed to the application; once those events were handled the proxy sends
 * WIRE_OP_CONN_FAIL (no reply) and the helper fails the connection. */
#define WIRE_OP_CONN_FAIL         28  /* conn -> no reply */
/* Log lines (version 4): while on, the helper sends each line it writes to its
 * stderr as a WIRE_KIND_LOG frame too, for the proxy's log sink. */
#define WIRE_OP_SET_LOG_SINK      29  /* on (0/1) -> () */
#define WIRE_EVENT_FAIL_PENDING   64
/* Asynchronous calls (version 5): WIRE_OP_SEND, WIRE_OP_PING and WIRE_OP_CLOSE
 * are sent with id 0 (no reply). One that fails in the helper for a reason the
 * proxy could not tell (send queue full, ...) is reported by an event of type
 * WIRE_EVENT_SEND_ERROR (code: the status, data: the message), never handed to
 * the application; a failure with VWS_ESTATE (closing meanwhile) is not. The
 * state value of a CLOSED or CONNECTION_ERROR event is VWS_STATE_CLOSED exactly
 * when it ends the connection for good (no reconnect follows). */
#define WIRE_EVENT_SEND_ERROR     65
/* The proxy returned the connection's WIRE_EVENT_SEND_ERROR to its caller; until
 * this frame the helper reports no further failure of that connection (those
 * calls were sent before the report was returned, which stands for them). */
#define WIRE_OP_SEND_ACK          30  /* conn -> no reply */
/* Shared writes (version 7, see internal/wire/doc.go): the helper gives the
 * proxy a copy of a connection's socket with a WIRE_EVENT_SHARE (opcode: the
 * slot of its gate in the shared gate memory, code: the gate's generation,
 * attempt: the socket's local port; the descriptor comes with the frame,
 * SCM_RIGHTS). The proxy writes a message's
 * frame to it itself when the gate lets it; the rest of a frame the socket did
 * not take whole goes to the helper with WIRE_OP_SHARE_REST. */
#define WIRE_EVENT_SHARE          66
#define WIRE_OP_SHARE_REST        31  /* conn, gen, rest -> no reply */
/* The gate memory (fd 4 of the helper): WIRE_GATE_SLOTS slots of two 32-bit
 * words, the gate and the count of the connection's asynchronous calls the
 * helper has taken. Gate bits: */
#define WIRE_GATE_FD              4
#define WIRE_SHARE_MAX            4096 /* the largest message the proxy writes itself */
#define WIRE_GATE_SLOTS           4096
#define WIRE_GATE_OTHER           1u  /* the proxy is writing a frame */
#define WIRE_GATE_BUSY            2u  /* the engine has frames queued or is writing */
#define WIRE_GATE_GEN_SHIFT       2

#define WIRE_ACCEPTED_TAG_BASE (1ull << 48)

#define WIRE_TAG_INT   1
#define WIRE_TAG_BYTES 2

#define WIRE_HEADER_LEN 6
#define WIRE_MIN_BODY   WIRE_HEADER_LEN
#define WIRE_MAX_BODY   (1u << 30)

/* Reply values: status, err, results. Event values: ctx, conn, opcode, clean,
 * code (SERVER_ESTABLISHED: the server's tag), attempt, state, data, and for
 * ESTABLISHED and SERVER_ESTABLISHED the negotiated subprotocol (version 6).
 * Hello values: pid, ABI version. */
#define WIRE_MAX_VALUES 16

static inline void wire_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static inline uint32_t wire_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wire_put64(uint8_t *p, uint64_t v)
{
	wire_put32(p, (uint32_t)(v >> 32));
	wire_put32(p + 4, (uint32_t)v);
}

static inline uint64_t wire_get64(const uint8_t *p)
{
	return (uint64_t)wire_get32(p) << 32 | wire_get32(p + 4);
}

#endif
