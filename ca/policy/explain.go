package policy

import (
	"fmt"
	"io"
	"strings"

	"github.com/meshca/meshca/internal/durtext"
)

// WriteText writes d as explain prints it: one line per trace step ("check: result: why"), then the
// decision. It writes what Decide recorded; it decides nothing itself.
func (d *Decision) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, s := range d.Trace {
		fmt.Fprintf(&b, "%s: %s: %s\n", s.Check, s.Result, s.Why)
	}
	if d.Allowed {
		fmt.Fprintf(&b, "decision: allow by rule %s: %s", d.Rule, durtext.Short(d.TTL))
		if len(d.DNSNames) > 0 {
			fmt.Fprintf(&b, ", DNS %s", strings.Join(d.DNSNames, " "))
		}
		backends := "every backend"
		if len(d.Backends) > 0 {
			backends = strings.Join(d.Backends, " then ")
		}
		fmt.Fprintf(&b, ", signed by %s\n", backends)
	} else {
		rule := d.Rule
		if rule == "" {
			rule = "(none: refused before the rules)"
		}
		fmt.Fprintf(&b, "decision: deny by rule %s: %v\n", rule, d.Err)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
