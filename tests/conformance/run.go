package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/verawebsockets/verawebsockets/tests/conformance/cases"
)

var errTimeout = errors.New("timeout")

// runner plays one case on one connection.
type runner struct {
	*wire
	c         *cases.Case
	pending   *event
	eof       *event
	deadline  time.Time
	writeErr  error
	nonStrict string
	gotClose  bool    // the peer's close frame came (a later ExpectClose is moot)
	mask      *masker // the peer is a server: what we write is masked on the way
}

// next returns the client's next event, or errTimeout after d.
func (r *runner) next(d time.Duration) (event, error) {
	if r.pending != nil {
		e := *r.pending
		r.pending = nil
		return e, nil
	}
	if r.eof != nil {
		return *r.eof, nil
	}
	if rem := time.Until(r.deadline); rem < d {
		d = max(rem, 0)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case e, ok := <-r.events:
		if !ok || e.kind == evEOF {
			if !ok {
				e = event{kind: evEOF, err: errors.New("closed")}
			}
			r.eof = &e
		}
		return e, nil
	case <-t.C:
		return event{}, errTimeout
	}
}

// write writes b (frames as a server writes them) in chops of chop bytes
// with pause between them; to a server the frames go masked.
func (r *runner) write(b []byte, chop int, pause time.Duration) {
	if r.mask != nil {
		b = r.mask.mask(b)
	}
	r.writeRaw(b, chop, pause)
}

// writeRaw writes b as it is.
func (r *runner) writeRaw(b []byte, chop int, pause time.Duration) {
	r.nc.SetWriteDeadline(r.deadline)
	if chop <= 0 {
		chop = len(b)
	}
	for i := 0; i < len(b); i += chop {
		if _, err := r.nc.Write(b[i:min(i+chop, len(b))]); err != nil {
			if r.writeErr == nil {
				r.writeErr = err
			}
			return
		}
		if pause > 0 && i+chop < len(b) {
			time.Sleep(pause)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func codesText(codes []int, noCode bool) string {
	var s []string
	for _, c := range codes {
		s = append(s, fmt.Sprint(c))
	}
	if noCode {
		s = append(s, "none")
	}
	return strings.Join(s, " or ")
}

func inCodes(c int, codes []int) bool {
	for _, x := range codes {
		if x == c {
			return true
		}
	}
	return false
}

// timeFactor stretches every deadline the judge waits for (not the pauses a
// case makes): VWS_TEST_TIME_FACTOR, as the Lua suite uses it for emulated
// clients; 1 by default.
var timeFactor = func() time.Duration {
	if f, err := strconv.Atoi(os.Getenv("VWS_TEST_TIME_FACTOR")); err == nil && f > 1 {
		return time.Duration(f)
	}
	return 1
}()

// step runs one step; it returns a failure reason or "".
func (r *runner) step(i int, st cases.Step) string {
	within := func(def time.Duration) time.Duration {
		if st.Within > 0 {
			def = st.Within
		}
		return def * timeFactor
	}
	switch st.Do {
	case cases.Write:
		if st.Raw {
			r.writeRaw(st.Bytes, st.Chop, st.Pause)
		} else {
			r.write(st.Bytes, st.Chop, st.Pause)
		}
	case cases.Sleep:
		time.Sleep(st.Pause)
	case cases.SendMsg:
		r.write(r.message(st.Op, st.Payload, st.Frag), 0, 0)
	case cases.ExpectMsg:
		e, err := r.next(within(5 * time.Second))
		if err != nil {
			return fmt.Sprintf("no echo of the %d-byte message within %v", len(st.Payload), within(5*time.Second))
		}
		if e.kind != evMsg || e.op != st.Op || !bytes.Equal(e.data, st.Payload) {
			if st.Optional && e.kind != evMsg {
				r.pending = &e
				if st.NonStrict {
					r.nonStrict = fmt.Sprintf("the echo of the message before the bad frame is missing (the %s failed first)", r.who())
				}
				return ""
			}
			if e.kind == evMsg && e.op == st.Op {
				return fmt.Sprintf("echo differs: %d bytes, want %d, first difference at byte %d", len(e.data), len(st.Payload), firstDiff(e.data, st.Payload))
			}
			return fmt.Sprintf("expected the echo (opcode %d, %d bytes %s), got %s", st.Op, len(st.Payload), quote(st.Payload), e)
		}
	case cases.ExpectPong:
		e, err := r.next(within(3 * time.Second))
		if err != nil {
			return fmt.Sprintf("no pong %s within %v", quote(st.Payload), within(3*time.Second))
		}
		if e.kind != evPong || !bytes.Equal(e.data, st.Payload) {
			return fmt.Sprintf("expected pong %s, got %s", quote(st.Payload), e)
		}
	case cases.ExpectClose:
		if r.gotClose {
			return ""
		}
		e, err := r.next(within(time.Second))
		if err != nil {
			if st.NonStrict {
				r.nonStrict = fmt.Sprintf("no close within %v of the invalid data (failed later)", within(time.Second))
				return ""
			}
			return fmt.Sprintf("no close frame (%s) within %v%s", codesText(st.Codes, st.NoCode), within(time.Second), note(st))
		}
		if e.kind != evClose {
			if e.kind == evEOF {
				return fmt.Sprintf("%s dropped the TCP connection without a close frame (want %s): %v", r.who(), codesText(st.Codes, st.NoCode), e.err)
			}
			return fmt.Sprintf("expected a close frame (%s) but the %s sent %s first", codesText(st.Codes, st.NoCode), r.who(), e)
		}
		if !(e.hasCode && inCodes(e.code, st.Codes)) && !(!e.hasCode && st.NoCode) {
			return fmt.Sprintf("%s closed with %s, want %s", r.who(), e, codesText(st.Codes, st.NoCode))
		}
		r.gotClose = true
		r.replyClose(e)
	case cases.ServerClose:
		r.write(cases.Fr(true, cases.OpClose, cases.ClosePayload(st.Codes[0], st.Payload)), 0, 0)
		e, err := r.next(within(3 * time.Second))
		if err != nil {
			return fmt.Sprintf("no close echo within %v after our close %d", within(3*time.Second), st.Codes[0])
		}
		if e.kind != evClose {
			return fmt.Sprintf("after our close %d, expected the %s's close, got %s", st.Codes[0], r.who(), e)
		}
		if !e.hasCode || !inCodes(e.code, st.Codes[1:]) {
			return fmt.Sprintf("close echo: %s, want %s", e, codesText(st.Codes[1:], false))
		}
	case cases.Quiet:
		if e, err := r.next(st.Pause); err == nil {
			return fmt.Sprintf("expected nothing for %v, the %s sent %s", st.Pause, r.who(), e)
		}
	case cases.ExpectDrop:
		e, err := r.next(within(3 * time.Second))
		if err != nil {
			return fmt.Sprintf("%s kept the TCP connection open for %v after the closing handshake", r.who(), within(3*time.Second))
		}
		if e.kind != evEOF {
			return fmt.Sprintf("expected the %s to drop the TCP connection, got %s", r.who(), e)
		}
	}
	return ""
}

func note(st cases.Step) string {
	if st.Note != "" {
		return " (" + st.Note + ")"
	}
	return ""
}

// replyClose answers the peer's close frame with the same code.
func (r *runner) replyClose(e event) {
	if e.hasCode {
		r.write(cases.CloseFrame(e.code, ""), 0, 0)
	} else {
		r.write(cases.Fr(true, cases.OpClose, nil), 0, 0)
	}
}

func (s *server) runCase(nc net.Conn, br *bufio.Reader, req *http.Request, c *cases.Case) {
	s.running.Add(1)
	defer s.running.Done()
	start := time.Now()
	deadline := start.Add(c.Limit())
	nc.SetDeadline(deadline)
	hsProblem, deflate, unimplemented, err := s.upgrade(nc, req, c.Deflate)
	if err != nil {
		s.record(c.ID, result{grade: gradeFailed, reason: "handshake write: " + err.Error()})
		return
	}
	w := &wire{nc: nc, br: br, events: make(chan event, 4096), pmd: clientPMD(deflate), masks: map[[4]byte]int{}}
	go w.readLoop()
	r := &runner{wire: w, c: c, deadline: deadline}
	s.record(c.ID, r.play(start, hsProblem, unimplemented))
}

// play runs the case's steps, then the end of the connection, and grades
// the case: FAILED with the first failure or protocol violation of the
// peer, UNIMPLEMENTED when the handshake left out permessage-deflate that
// the case needs (then only a closing handshake is played), NON-STRICT as
// the steps say, else OK.
func (r *runner) play(start time.Time, hsProblem, unimplemented string) result {
	fail := ""
	if hsProblem != "" {
		fail = "handshake: " + hsProblem
	}
	steps := r.c.Steps()
	if unimplemented != "" {
		steps = []cases.Step{cases.Close(1000)}
	}
	for i, st := range steps {
		if fail != "" {
			break
		}
		if why := r.step(i, st); why != "" {
			fail = fmt.Sprintf("step %d (%s): %s", i+1, st.Describe(), why)
		}
	}
	if fail == "" {
		fail = r.end()
	}
	r.nc.Close()
	for range r.events { // let the reader finish before reading its findings
	}
	if v := r.violations(); len(v) > 0 {
		why := r.who() + " framing: " + strings.Join(v, "; ")
		if fail == "" {
			fail = why
		} else {
			fail += "; " + why
		}
	}
	if !r.peerServer && r.frames >= 3 && len(r.masks) == 1 {
		fail = strings.TrimPrefix(fail+fmt.Sprintf("; all %d client frames used the same mask key", r.frames), "; ")
	}
	if fail != "" && r.writeErr != nil {
		fail += fmt.Sprintf(" [our write failed: %v]", r.writeErr)
	}
	res := result{grade: gradeOK, dur: time.Since(start)}
	switch {
	case fail != "":
		res.grade, res.reason = gradeFailed, fail
	case unimplemented != "":
		res.grade, res.reason = gradeUnimplemented, unimplemented
	case r.nonStrict != "":
		res.grade, res.reason = gradeNonStrict, r.nonStrict
	}
	if os.Getenv("VWS_CONF_TRACE") != "" {
		fmt.Fprintf(os.Stderr, "case %s: %s %s\n", r.c.ID, res.grade, res.reason)
	}
	return res
}

// end closes the TCP connection after the closing handshake as RFC 6455
// section 7.1.1 wants it: the server first. Testing a client, we close our
// side and the client must close its own and send nothing more; testing a
// server, it must close the connection, sending nothing more.
func (r *runner) end() string {
	if !r.peerServer {
		if tc, ok := r.nc.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}
	e, err := r.next(2 * time.Second * timeFactor)
	switch {
	case err != nil && r.peerServer:
		return fmt.Sprintf("the server did not close the TCP connection within %v after the closing handshake", 2*time.Second*timeFactor)
	case err != nil:
		return fmt.Sprintf("client did not close the TCP connection within %v after the server did", 2*time.Second*timeFactor)
	case e.kind != evEOF:
		return fmt.Sprintf("%s sent %s after the closing handshake", r.who(), e)
	}
	return ""
}
