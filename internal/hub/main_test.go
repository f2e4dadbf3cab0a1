package hub

import (
	"testing"

	"github.com/verawebsockets/verawebsockets/internal/leakcheck"
)

// TestMain fails the run when goroutines outlive the tests.
func TestMain(m *testing.M) { leakcheck.Main(m) }
