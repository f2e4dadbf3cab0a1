package flatewindow

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"testing"
)

// tail ends a permessage-deflate body (RFC 7692 section 7.2.2) with a final block.
var tail = []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

// samples are inputs of several kinds, generated the same way on every run.
func samples() map[string][]byte {
	seed := uint32(7)
	next := func() byte { seed = seed*1664525 + 1013904223; return byte(seed >> 24) }
	random := make([]byte, 40000)
	for i := range random {
		random[i] = next()
	}
	var far bytes.Buffer // repeats 20000 bytes apart: back-references beyond small windows
	far.Write(random[:20000])
	far.Write(random[:20000])
	var text bytes.Buffer
	for i := 0; text.Len() < 100000; i++ {
		fmt.Fprintf(&text, "line %d: the quick brown fox jumps over the lazy dog %d\n", i, i%17)
	}
	return map[string][]byte{"empty": {}, "one byte": {'x'}, "random": random, "far repeats": far.Bytes(),
		"text": text.Bytes(), "zeros": make([]byte, 70000)}
}

// compress returns p as a permessage-deflate body: sync-flushed, without
// the final 00 00 ff ff (tail restores it).
func compress(t *testing.T, p []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), tail[:4])
}

// Every level of compress/flate (stored, Huffman-only, fixed and dynamic
// blocks) decodes to the input; Huffman-only never refers back.
func TestInflateMatchesCompressFlate(t *testing.T) {
	for name, p := range samples() {
		for _, level := range []int{flate.NoCompression, flate.HuffmanOnly, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
			z := compress(t, p, level)
			out, maxDist, err := Inflate(append(z, tail...), nil)
			if err != nil || !bytes.Equal(out, p) {
				t.Fatalf("%s level %d: %v, %d bytes out of %d", name, level, err, len(out), len(p))
			}
			if (level == flate.HuffmanOnly || level == flate.NoCompression) && maxDist != 0 {
				t.Fatalf("%s level %d: distance %d", name, level, maxDist)
			}
			if name == "far repeats" && level == flate.BestCompression && maxDist < 20000 {
				t.Fatalf("far repeats: longest distance %d, want >= 20000", maxDist)
			}
		}
	}
}

// Fixed-Huffman blocks written by hand, with known distances: "abcabcabc"
// (distance 3), a reference into the dictionary, and one before it.
func TestInflateDistances(t *testing.T) {
	// Fixed Huffman: literal 0x61..0x63 (8-bit codes 0x30+c), then length 6
	// (symbol 260, 7-bit code 0000100), distance 3 (5-bit code 00010), end.
	var bw bitWriter
	bw.bits(1, 1) // BFINAL
	bw.bits(1, 2) // fixed
	for _, c := range "abc" {
		bw.code(0x30+int(c), 8)
	}
	bw.code(4, 7)
	bw.code(2, 5)
	bw.code(0, 7)
	out, maxDist, err := Inflate(bw.bytes(), nil)
	if err != nil || string(out) != "abcabcabc" || maxDist != 3 {
		t.Fatalf("got %q, distance %d, %v", out, maxDist, err)
	}
	// The same stream with a length-6 distance-3 reference first needs
	// history: from a dictionary it decodes, without one it fails.
	bw = bitWriter{}
	bw.bits(1, 1)
	bw.bits(1, 2)
	bw.code(4, 7)
	bw.code(2, 5)
	bw.code(0, 7)
	if out, maxDist, err = Inflate(bw.bytes(), []byte("xyz")); err != nil || string(out) != "xyzxyz" || maxDist != 3 {
		t.Fatalf("with dictionary: %q, distance %d, %v", out, maxDist, err)
	}
	if _, _, err = Inflate(bw.bytes(), []byte("z")); !errors.Is(err, ErrDistance) {
		t.Fatalf("short dictionary: %v", err)
	}
}

// Broken input fails instead of looping or panicking.
func TestInflateErrors(t *testing.T) {
	z := compress(t, bytes.Repeat([]byte("broken input "), 500), flate.BestCompression)
	for i := 0; i < len(z); i++ {
		Inflate(z[:i], nil) // must return
	}
	if _, _, err := Inflate(z, nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("without a final block: %v", err)
	}
	if _, _, err := Inflate([]byte{0x07}, nil); !errors.Is(err, ErrBlockType) {
		t.Fatalf("block type 3: %v", err)
	}
	if _, _, err := Inflate([]byte{0x01, 5, 0, 0, 0}, nil); !errors.Is(err, ErrStored) {
		t.Fatalf("bad stored length: %v", err)
	}
	r := flate.NewReader(bytes.NewReader(append(z, tail...)))
	want, _ := io.ReadAll(r)
	if out, _, err := Inflate(append(z, tail...), nil); err != nil || !bytes.Equal(out, want) {
		t.Fatalf("complete stream: %v", err)
	}
}

// bitWriter writes DEFLATE bits: fields LSB first, Huffman codes MSB first.
type bitWriter struct {
	out []byte
	n   uint
}

func (w *bitWriter) bit(b int) {
	if w.n%8 == 0 {
		w.out = append(w.out, 0)
	}
	w.out[len(w.out)-1] |= byte(b&1) << (w.n % 8)
	w.n++
}

func (w *bitWriter) bits(v int, n uint) {
	for i := uint(0); i < n; i++ {
		w.bit(v >> i)
	}
}

func (w *bitWriter) code(c int, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bit(c >> uint(i))
	}
}

func (w *bitWriter) bytes() []byte { return w.out }
