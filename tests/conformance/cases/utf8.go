package cases

import "unicode/utf8"

// utf8Group is one sub-category of Autobahn's 6.5 ... 6.23 cases, built like
// autobahntestsuite/case/case6_x_x.py createUtf8TestSequences() from Markus
// Kuhn's UTF-8 decoder stress test.
type utf8Group struct {
	name string
	seqs []utf8Seq
}

type utf8Seq struct {
	valid bool
	p     string
}

func rangeBytes(lo, hi int, sep string) string { // bytes lo..hi-1 (Python xrange)
	var s string
	for i := lo; i < hi; i++ {
		s += string([]byte{byte(i)}) + sep
	}
	return s
}

func utf8Groups() []utf8Group {
	const vss = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	var gs []utf8Group
	add := func(name string, seqs ...utf8Seq) { gs = append(gs, utf8Group{name, seqs}) }
	v := func(p string) utf8Seq { return utf8Seq{true, p} }
	n := func(p string) utf8Seq { return utf8Seq{false, p} }

	add("Some valid UTF-8 sequences", v("hello\x24world"), v("hello\xC2\xA2world"),
		v("hello\xE2\x82\xACworld"), v("hello\xF0\xA4\xAD\xA2world"), v(vss))
	var prefixes []utf8Seq
	for i := 1; i <= len(vss); i++ {
		prefixes = append(prefixes, utf8Seq{utf8.ValidString(vss[:i]), vss[:i]})
	}
	add("All prefixes of a valid UTF-8 string that contains multi-byte code points", prefixes...)
	add("First possible sequence of a certain length", v("\x00"), v("\xc2\x80"), v("\xe0\xa0\x80"), v("\xf0\x90\x80\x80"))
	add("First possible sequence length 5/6 (invalid codepoints)", n("\xf8\x88\x80\x80\x80"), n("\xfc\x84\x80\x80\x80\x80"))
	add("Last possible sequence of a certain length", v("\x7f"), v("\xdf\xbf"), v("\xef\xbf\xbf"), v("\xf4\x8f\xbf\xbf"))
	add("Last possible sequence length 4/5/6 (invalid codepoints)", n("\xf7\xbf\xbf\xbf"), n("\xfb\xbf\xbf\xbf\xbf"), n("\xfd\xbf\xbf\xbf\xbf\xbf"))
	add("Other boundary conditions", v("\xed\x9f\xbf"), v("\xee\x80\x80"), v("\xef\xbf\xbd"), v("\xf4\x8f\xbf\xbf"), n("\xf4\x90\x80\x80"))
	add("Unexpected continuation bytes", n("\x80"), n("\xbf"), n("\x80\xbf"), n("\x80\xbf\x80"), n("\x80\xbf\x80\xbf"),
		n("\x80\xbf\x80\xbf\x80"), n("\x80\xbf\x80\xbf\x80\xbf"), n(rangeBytes(0x80, 0xbf, "")))
	add("Lonely start characters", n(rangeBytes(0xc0, 0xdf, " ")), n(rangeBytes(0xe0, 0xef, " ")),
		n(rangeBytes(0xf0, 0xf7, " ")), n(rangeBytes(0xf8, 0xfb, " ")), n(rangeBytes(0xfc, 0xfd, " ")))
	k := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	var missing []utf8Seq
	var all string
	for _, s := range k {
		missing = append(missing, n(s))
		all += s
	}
	add("Sequences with last continuation byte missing", missing...)
	add("Concatenation of incomplete sequences", n(all))
	add("Impossible bytes", n("\xfe"), n("\xff"), n("\xfe\xfe\xff\xff"))
	add("Examples of an overlong ASCII character", n("\xc0\xaf"), n("\xe0\x80\xaf"), n("\xf0\x80\x80\xaf"),
		n("\xf8\x80\x80\x80\xaf"), n("\xfc\x80\x80\x80\x80\xaf"))
	add("Maximum overlong sequences", n("\xc1\xbf"), n("\xe0\x9f\xbf"), n("\xf0\x8f\xbf\xbf"),
		n("\xf8\x87\xbf\xbf\xbf"), n("\xfc\x83\xbf\xbf\xbf\xbf"))
	add("Overlong representation of the NUL character", n("\xc0\x80"), n("\xe0\x80\x80"), n("\xf0\x80\x80\x80"),
		n("\xf8\x80\x80\x80\x80"), n("\xfc\x80\x80\x80\x80\x80"))
	add("Single UTF-16 surrogates", n("\xed\xa0\x80"), n("\xed\xad\xbf"), n("\xed\xae\x80"), n("\xed\xaf\xbf"),
		n("\xed\xb0\x80"), n("\xed\xbe\x80"), n("\xed\xbf\xbf"))
	add("Paired UTF-16 surrogates", n("\xed\xa0\x80\xed\xb0\x80"), n("\xed\xa0\x80\xed\xbf\xbf"),
		n("\xed\xad\xbf\xed\xb0\x80"), n("\xed\xad\xbf\xed\xbf\xbf"), n("\xed\xae\x80\xed\xb0\x80"),
		n("\xed\xae\x80\xed\xbf\xbf"), n("\xed\xaf\xbf\xed\xb0\x80"), n("\xed\xaf\xbf\xed\xbf\xbf"))
	nonchars := []utf8Seq{v("\xef\xbf\xbe"), v("\xef\xbf\xbf")}
	for _, z1 := range []string{"\xf0", "\xf1", "\xf2", "\xf3", "\xf4"} {
		for _, z2 := range []string{"\x8f", "\x9f", "\xaf", "\xbf"} {
			if z1 == "\xf4" && z2 != "\x8f" {
				continue
			}
			for _, z3 := range []string{"\xbe", "\xbf"} {
				zz := z1 + z2 + "\xbf" + z3
				if zz != "\xf0\x8f\xbf\xbe" && zz != "\xf0\x8f\xbf\xbf" {
					nonchars = append(nonchars, v(zz))
				}
			}
		}
	}
	add("Non-character code points (valid UTF-8)", nonchars...)
	add("Unicode specials (i.e. replacement char)", v("\xef\xbf\xb9"), v("\xef\xbf\xba"), v("\xef\xbf\xbb"),
		v("\xef\xbf\xbc"), v("\xef\xbf\xbd"), v("\xef\xbf\xbe"), v("\xef\xbf\xbf"))
	return gs
}
