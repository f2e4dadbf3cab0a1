package wsengine

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

// appendHeader writes what ws.WriteHeader writes, for every length class,
// with and without mask and RSV bits.
func TestAppendHeader(t *testing.T) {
	for _, n := range []int64{0, 1, 125, 126, 127, 0xffff, 0x10000, 1 << 40} {
		for _, masked := range []bool{false, true} {
			for _, h := range []ws.Header{
				{Fin: true, OpCode: ws.OpText},
				{Fin: false, OpCode: ws.OpBinary, Rsv: ws.Rsv(true, false, false)},
				{Fin: true, OpCode: ws.OpClose, Rsv: ws.Rsv(false, true, true)},
			} {
				h.Length, h.Masked = n, masked
				if masked {
					h.Mask = [4]byte{1, 2, 3, 4}
				}
				var want bytes.Buffer
				if err := ws.WriteHeader(&want, h); err != nil {
					t.Fatal(err)
				}
				if got := appendHeader(nil, h); !bytes.Equal(got, want.Bytes()) {
					t.Errorf("%+v: % x, want % x", h, got, want.Bytes())
				}
			}
		}
	}
}
