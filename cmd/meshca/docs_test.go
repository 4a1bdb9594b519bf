package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// docs/cli.md has a section for every command, and each section names every flag of its command.
func TestEveryCommandDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	for _, part := range strings.Split(string(b), "\n## `")[1:] {
		heading, body, _ := strings.Cut(part, "`\n")
		sections[heading] = body
	}
	root := newRoot(io.Discard, io.Discard)
	var walk func(*cobra.Command)
	checked := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if c.HasParent() {
			path := c.CommandPath()
			body, ok := sections[path]
			if !ok {
				t.Errorf("docs/cli.md has no section ## `%s`", path)
			}
			checked++
			c.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if f.Name != "help" && !strings.Contains(body, "--"+f.Name) {
					t.Errorf("docs/cli.md, %s: flag --%s is not described", path, f.Name)
				}
			})
			if c.Name() == "completion" {
				return // its subcommands are one per shell, described in one section
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if checked < 9 {
		t.Fatalf("checked %d commands: the command tree changed shape", checked)
	}
}

// repoPath is a backquoted path in the docs that names a file or directory of the repository.
var repoPath = regexp.MustCompile("`((?:cmd|ca|csr|backends|crl|trustbundle|manifests|loadtest|docs|scripts|" +
	"test|tools|internal)/[A-Za-z0-9_./-]*)`")

var goIdent = regexp.MustCompile(`\.[A-Z][A-Za-z]*$`)

// The README and docs/ refer only to files and directories that exist in the repository.
func TestDocsReferToRealFiles(t *testing.T) {
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range append(docs, "../../README.md") {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range repoPath.FindAllStringSubmatchIndex(text, -1) {
			p := strings.TrimRight(text[m[2]:m[3]], ".")
			if strings.ContainsAny(p, "*<>") || strings.HasSuffix(text[:m[0]], "formerly ") ||
				goIdent.MatchString(p) {
				continue // a pattern, a name the history note says is gone, a Go identifier (ca/expiry.Tracker)
			}
			if _, err := os.Stat(filepath.Join("../..", p)); err != nil {
				t.Errorf("%s names %s, which is not in the repository", filepath.Base(doc), p)
			}
		}
	}
}
