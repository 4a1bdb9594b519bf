package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

const usage = `meshca: a certificate authority for Istio service meshes.

Usage:
  meshca serve   --config FILE | --dev DIR   serve the CSR endpoint (gRPC :15012) and HTTP (:15014)
  meshca init    --dir DIR                   write a dev root and intermediate (cacerts layout) and a dev token key
  meshca token   --dir DIR --namespace NS --service-account SA
                                             print a dev service-account token that 'serve --dev DIR' trusts
  meshca version

Run 'meshca COMMAND -h' for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCmd(ctx, args[1:], stderr)
	case "init":
		err = initCmd(args[1:], stdout, stderr)
	case "token":
		err = tokenCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "meshca", version)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "meshca: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if err == errUsage {
			return 2
		}
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(stderr, "meshca %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "meshca %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
