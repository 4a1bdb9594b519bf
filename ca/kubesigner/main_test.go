package kubesigner_test

import (
	"os"
	"testing"

	"github.com/meshca/meshca/ca/catest"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }
