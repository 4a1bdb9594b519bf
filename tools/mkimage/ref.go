package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrBadRef is returned for an image reference mkimage will not write.
var ErrBadRef = errors.New("mkimage: bad image reference")

var (
	tagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	pathRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	label  = `[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?`
	hostRE = regexp.MustCompile(`^` + label + `(?:\.` + label + `)*(?::[0-9]+)?$`)
)

// Ref is a tagged image reference, e.g. ghcr.io/meshca/meshca:v0.1.0.
type Ref struct {
	Repository string // ghcr.io/meshca/meshca
	Tag        string // v0.1.0
}

// String returns repository:tag.
func (r Ref) String() string { return r.Repository + ":" + r.Tag }

// ParseRef parses repository:tag. The tag is required and may not be "latest": a manifest must name the
// version it runs (README.md, "Versions and releases"), and a moving tag would hide which one that is.
func ParseRef(s string) (Ref, error) {
	if len(s) > 255 {
		return Ref{}, fmt.Errorf("%w: longer than 255 characters", ErrBadRef)
	}
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i:], "/") {
		return Ref{}, fmt.Errorf("%w: %q has no tag (want repository:tag)", ErrBadRef, s)
	}
	r := Ref{Repository: s[:i], Tag: s[i+1:]}
	if !tagRE.MatchString(r.Tag) {
		return Ref{}, fmt.Errorf("%w: tag %q is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", ErrBadRef, r.Tag)
	}
	if r.Tag == "latest" {
		return Ref{}, fmt.Errorf(
			"%w: the tag latest names no version; tag with the version (make image does)",
			ErrBadRef,
		)
	}
	parts := strings.Split(r.Repository, "/")
	for n, p := range parts {
		ok := pathRE.MatchString(p)
		if n == 0 && len(parts) > 1 && (strings.ContainsAny(p, ".:") || p == "localhost") {
			ok = hostRE.MatchString(p)
		}
		if !ok {
			return Ref{}, fmt.Errorf("%w: repository component %q is not valid", ErrBadRef, p)
		}
	}
	return r, nil
}
