// Package flatewindow decodes raw DEFLATE data (RFC 1951) and reports the
// longest back-reference it uses, for tests that check that a compressor
// honours a window limit (RFC 7692 server_max_window_bits and
// client_max_window_bits: no distance may exceed 2^bits).
//
// compress/flate decodes with a 32 KiB window whatever the sender agreed
// to, so it cannot tell a stream that fits in 2^9 bytes from one that does
// not. This decoder is small and slow (a bit at a time, after zlib's
// puff.c); it is meant for tests, not for production data.
//
//	out, maxDist, err := flatewindow.Inflate(append(payload, 0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff), nil)
//	if maxDist > 1<<9 { ... } // a back-reference beyond a 512-byte window
package flatewindow

import "errors"

// Errors returned by Inflate.
var (
	ErrTruncated = errors.New("flatewindow: input ends before the final block")
	ErrBlockType = errors.New("flatewindow: block type 3 (reserved)")
	ErrStored    = errors.New("flatewindow: stored block length does not match its complement")
	ErrCode      = errors.New("flatewindow: invalid Huffman code or code lengths")
	ErrSymbol    = errors.New("flatewindow: invalid length or distance symbol")
	ErrDistance  = errors.New("flatewindow: distance reaches back before the start of the history")
)

const maxBits = 15 // longest Huffman code

var (
	lengthBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// order of the code length code lengths in a dynamic block header
	clOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// Inflate decodes in up to and including its final block. dict is the
// history the stream may refer back into (context takeover: the previous
// messages' output, at most 32 KiB is useful); it is not part of out.
// maxDist is the longest distance of any back-reference (0 if there is
// none). Bytes after the final block are ignored.
func Inflate(in, dict []byte) (out []byte, maxDist int, err error) {
	d := &decoder{in: in, hist: len(dict)}
	d.out = append(append([]byte(nil), dict...), make([]byte, 0, 4*len(in))...)
	for {
		final, err := d.bits(1)
		if err != nil {
			return nil, 0, err
		}
		typ, err := d.bits(2)
		if err != nil {
			return nil, 0, err
		}
		switch typ {
		case 0:
			err = d.stored()
		case 1:
			err = d.codes(&fixedLit, &fixedDist)
		case 2:
			err = d.dynamic()
		default:
			err = ErrBlockType
		}
		if err != nil {
			return nil, 0, err
		}
		if final == 1 {
			return d.out[d.hist:], d.maxDist, nil
		}
	}
}

type decoder struct {
	in      []byte
	pos     int    // next byte of in
	bitBuf  uint32 // bits not yet used, LSB first
	bitCnt  uint
	out     []byte // history (dict) then output
	hist    int    // len(dict)
	maxDist int
}

// bits returns the next n bits of the stream, LSB first (RFC 1951 section 3.1.1).
func (d *decoder) bits(n uint) (int, error) {
	for d.bitCnt < n {
		if d.pos >= len(d.in) {
			return 0, ErrTruncated
		}
		d.bitBuf |= uint32(d.in[d.pos]) << d.bitCnt
		d.pos++
		d.bitCnt += 8
	}
	v := int(d.bitBuf & (1<<n - 1))
	d.bitBuf >>= n
	d.bitCnt -= n
	return v, nil
}

func (d *decoder) stored() error {
	d.bitBuf, d.bitCnt = 0, 0 // to a byte boundary
	if d.pos+4 > len(d.in) {
		return ErrTruncated
	}
	n := int(d.in[d.pos]) | int(d.in[d.pos+1])<<8
	if nc := int(d.in[d.pos+2]) | int(d.in[d.pos+3])<<8; n != ^nc&0xffff {
		return ErrStored
	}
	d.pos += 4
	if d.pos+n > len(d.in) {
		return ErrTruncated
	}
	d.out = append(d.out, d.in[d.pos:d.pos+n]...)
	d.pos += n
	return nil
}

// huffman is a canonical Huffman code: how many codes of each length, and
// the symbols ordered by code.
type huffman struct {
	count  [maxBits + 1]int
	symbol []int
}

// build makes the code for the given code lengths (0: symbol unused). An
// over-subscribed set fails; an incomplete one is accepted (RFC 1951 allows
// a single distance code).
func (h *huffman) build(lengths []int) error {
	h.count = [maxBits + 1]int{}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for l := 1; l <= maxBits; l++ {
		left = left<<1 - h.count[l]
		if left < 0 {
			return ErrCode
		}
	}
	var offs [maxBits + 1]int
	for l := 1; l < maxBits; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	h.symbol = make([]int, len(lengths))
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = sym
			offs[l]++
		}
	}
	return nil
}

// decode reads one symbol of h (codes are sent from their most significant bit).
func (d *decoder) decode(h *huffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l <= maxBits; l++ {
		b, err := d.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		count := h.count[l]
		if code-first < count {
			return h.symbol[index+code-first], nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, ErrCode
}

var fixedLit, fixedDist huffman

func init() {
	var l [288]int
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	fixedLit.build(l[:])
	var dl [30]int
	for i := range dl {
		dl[i] = 5
	}
	fixedDist.build(dl[:])
}

func (d *decoder) dynamic() error {
	nlen, err := d.bits(5)
	if err != nil {
		return err
	}
	ndist, err := d.bits(5)
	if err != nil {
		return err
	}
	ncode, err := d.bits(4)
	if err != nil {
		return err
	}
	nlen, ndist, ncode = nlen+257, ndist+1, ncode+4
	if nlen > 286 || ndist > 30 {
		return ErrCode
	}
	var cl [19]int
	for i := 0; i < ncode; i++ {
		if cl[clOrder[i]], err = d.bits(3); err != nil {
			return err
		}
	}
	var clCode huffman
	if err := clCode.build(cl[:]); err != nil {
		return err
	}
	lengths := make([]int, nlen+ndist)
	for i := 0; i < nlen+ndist; {
		sym, err := d.decode(&clCode)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths[i] = sym
			i++
			continue
		}
		val, rep := 0, 0
		switch sym {
		case 16:
			if i == 0 {
				return ErrCode
			}
			val = lengths[i-1]
			rep, err = d.bits(2)
			rep += 3
		case 17:
			rep, err = d.bits(3)
			rep += 3
		default:
			rep, err = d.bits(7)
			rep += 11
		}
		if err != nil {
			return err
		}
		if i+rep > len(lengths) {
			return ErrCode
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 {
		return ErrCode // no end-of-block code
	}
	var lit, dist huffman
	if err := lit.build(lengths[:nlen]); err != nil {
		return err
	}
	if err := dist.build(lengths[nlen:]); err != nil {
		return err
	}
	return d.codes(&lit, &dist)
}

// codes decodes the symbols of one Huffman-coded block.
func (d *decoder) codes(lit, dist *huffman) error {
	for {
		sym, err := d.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			d.out = append(d.out, byte(sym))
			continue
		case sym == 256:
			return nil
		case sym > 285:
			return ErrSymbol
		}
		sym -= 257
		extra, err := d.bits(lengthExtra[sym])
		if err != nil {
			return err
		}
		n := lengthBase[sym] + extra
		ds, err := d.decode(dist)
		if err != nil {
			return err
		}
		if ds > 29 {
			return ErrSymbol
		}
		if extra, err = d.bits(distExtra[ds]); err != nil {
			return err
		}
		back := distBase[ds] + extra
		if back > len(d.out) {
			return ErrDistance
		}
		d.maxDist = max(d.maxDist, back)
		for start := len(d.out) - back; n > 0; n-- {
			d.out = append(d.out, d.out[start])
			start++
		}
	}
}
