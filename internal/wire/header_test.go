package wire

import (
	"bufio"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestHeaderMatchesGo checks proxy/wire.h, the C side of the protocol, against
// this package: every WIRE_* constant of the header has a Go twin with the same
// value, and every Op and Kind of the package is in the header.
func TestHeaderMatchesGo(t *testing.T) {
	goConsts := packageConstants(t)
	cConsts := headerConstants(t, "../../proxy/wire.h")

	for name, cv := range cConsts {
		gname, ok := goName(name, goConsts)
		if !ok {
			if name == "WIRE_MAX_VALUES" { // a C array bound, no Go twin
				continue
			}
			t.Errorf("proxy/wire.h: %s has no Go constant in internal/wire", name)
			continue
		}
		if gv := goConsts[gname]; gv != cv {
			t.Errorf("%s = %d in proxy/wire.h, but %s = %d in internal/wire", name, cv, gname, gv)
		}
	}
	for gname := range goConsts {
		if !strings.HasPrefix(gname, "Op") && !strings.HasPrefix(gname, "Kind") {
			continue
		}
		if _, ok := cConsts[cName(gname)]; !ok {
			t.Errorf("internal/wire: %s is missing from proxy/wire.h (as %s)", gname, cName(gname))
		}
	}
	if len(cConsts) < 30 {
		t.Fatalf("read only %d constants from proxy/wire.h", len(cConsts))
	}
}

// packageConstants type-checks this package's non-test files and returns its
// integer constants.
func packageConstants(t *testing.T) map[string]int64 {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	pkg, err := conf.Check("wire", fset, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, name := range pkg.Scope().Names() {
		if c, ok := pkg.Scope().Lookup(name).(*types.Const); ok {
			if v, exact := constant.Int64Val(c.Val()); exact {
				out[name] = v
			}
		}
	}
	return out
}

var defineRE = regexp.MustCompile(`^#define\s+(WIRE_[A-Z0-9_]+)\s+(.+?)\s*(/\*.*)?$`)

// headerConstants reads the #define WIRE_* lines of a C header whose values are
// numbers, (1ull << n) shifts or the name of an earlier constant.
func headerConstants(t *testing.T, path string) map[string]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := defineRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil || strings.HasSuffix(m[1], "_H") {
			continue
		}
		v, ok := evalC(m[2], out)
		if !ok {
			t.Errorf("proxy/wire.h: cannot read the value of %s: %q", m[1], m[2])
			continue
		}
		out[m[1]] = v
	}
	return out
}

func evalC(expr string, known map[string]int64) (int64, bool) {
	expr = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(expr), "("), ")"))
	if l, r, ok := strings.Cut(expr, "<<"); ok {
		a, ok1 := evalC(l, known)
		b, ok2 := evalC(r, known)
		return a << b, ok1 && ok2
	}
	if v, ok := known[expr]; ok {
		return v, true
	}
	v, err := strconv.ParseInt(strings.TrimRight(expr, "uUlL"), 0, 64)
	return v, err == nil
}

// cName turns a Go name into its header name: OpSetLogLevel -> WIRE_OP_SET_LOG_LEVEL.
func cName(g string) string {
	var b strings.Builder
	b.WriteString("WIRE")
	for i, r := range g {
		if unicode.IsUpper(r) && (i == 0 || !unicode.IsUpper(rune(g[i-1])) || i+1 < len(g) && unicode.IsLower(rune(g[i+1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

func goName(c string, goConsts map[string]int64) (string, bool) {
	for g := range goConsts {
		if cName(g) == c {
			return g, true
		}
	}
	return "", false
}
