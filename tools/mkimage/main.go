package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.binary, "binary", "", "static meshca binary (CGO_ENABLED=0 go build -trimpath ./cmd/meshca)")
	fs.StringVar(&o.ref, "ref", "", "image reference repository:tag, e.g. ghcr.io/meshca/meshca:v0.1.0")
	fs.StringVar(&o.out, "out", "", "output tar file")
	fs.StringVar(&o.caBundle, "ca-bundle", "", "optional CA bundle for /etc/ssl/certs/ca-certificates.crt")
	fs.StringVar(&o.version, "version", "", "org.opencontainers.image.version label (default: the tag)")
	fs.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision label (git commit)")
	fs.StringVar(&o.source, "source", "https://github.com/meshca/meshca", "org.opencontainers.image.source label")
	fs.StringVar(&o.created, "created", os.Getenv("SOURCE_DATE_EPOCH"),
		"image time in Unix seconds (default $SOURCE_DATE_EPOCH, else 0)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := build(o, stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// options are mkimage's flags.
type options struct{ binary, ref, out, caBundle, version, revision, source, created string }

func build(o options, stdout io.Writer) error {
	binary, out, version, created := o.binary, o.out, o.version, o.created
	if binary == "" || o.ref == "" || out == "" {
		return errors.New("mkimage: --binary, --ref and --out are required")
	}
	r, err := ParseRef(o.ref)
	if err != nil {
		return err
	}
	var secs int64
	if created != "" {
		if secs, err = strconv.ParseInt(created, 10, 64); err != nil {
			return fmt.Errorf("mkimage: --created %q: want Unix seconds: %w", created, err)
		}
	}
	if version == "" {
		version = r.Tag
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("mkimage: --out: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkimage-*")
	if err != nil {
		return fmt.Errorf("mkimage: --out: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("mkimage: --out: %w", err)
	}
	res, err := Build(Spec{Binary: binary, CABundle: o.caBundle, Ref: r, Version: version, Revision: o.revision,
		Source: o.source, Created: time.Unix(secs, 0)}, tmp)
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("mkimage: --out: %w", err)
	}
	fmt.Fprintf(stdout, "image %s@%s (linux/%s, %.1f MiB compressed) in %s\n", r, res.Digest, res.Arch,
		float64(res.Size)/(1<<20), out)
	return nil
}
