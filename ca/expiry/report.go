package expiry

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Warning is one reason a report row needs attention: a time-based finding or a failed check (ProblemKind).
type Warning string

// The time-based warnings; the others are the ProblemKind values.
const (
	WarnExpired     Warning = "expired"
	WarnExpiring    Warning = "expiring"      // expires within the report's threshold
	WarnNotYetValid Warning = "not_yet_valid" // notBefore is in the future
	WarnCRLExpired  Warning = "crl_expired"   // past nextUpdate: relying parties may refuse it
	WarnCRLStale    Warning = "crl_stale"     // in the last quarter of its thisUpdate..nextUpdate window
)

// Exit statuses of a report (ExitCode). ExitExpiring: a certificate expires within the threshold or has
// expired, or a CRL is stale or expired. ExitProblem, when nothing is expiring: a check failed (chain, key,
// CRL signature), a certificate is not yet valid, or a source could not be read. ExitError: the report could
// not be made (no input, or writing it failed). 2 is left out: every meshca command exits 2 on a usage
// mistake, so a script can tell a wrong command line from a finding.
const (
	ExitOK       = 0
	ExitExpiring = 1
	ExitProblem  = 3
	ExitError    = 4
)

// ReportOptions set the time and threshold a report is made for.
type ReportOptions struct {
	// Now is the time the report is made for; default time.Now().
	Now time.Time
	// Within is the threshold: certificates expiring sooner are flagged. Default 7 days.
	Within time.Duration
	// Color marks warnings with ANSI colours in the table; set it only when the output is a terminal.
	Color bool
}

// Report is a rendered view of scanned sets: every certificate, soonest expiry first, every CRL, and the
// problems of sources as a whole.
type Report struct {
	GeneratedAt time.Time       `json:"generated_at"`
	WithinSec   float64         `json:"threshold_seconds"`
	ExitCode    int             `json:"exit_code"`
	Certs       []CertRow       `json:"certificates"`
	CRLs        []CRLRow        `json:"crls"`
	Problems    []SourceProblem `json:"problems"`
	color       bool
}

// CertRow is a certificate with the time left and its warnings at the report's time.
type CertRow struct {
	Cert
	DaysLeft float64   `json:"days_left"`
	Warnings []Warning `json:"warnings"`
}

// CRLRow is a CRL with the time left until nextUpdate and its warnings at the report's time.
type CRLRow struct {
	CRL
	DaysLeft float64   `json:"days_left"`
	Warnings []Warning `json:"warnings"`
}

// NewReport makes a report of sets as of opts.Now.
func NewReport(sets []*Set, opts ReportOptions) *Report {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Within == 0 {
		opts.Within = 7 * 24 * time.Hour
	}
	now := opts.Now.UTC().Truncate(time.Second)
	r := &Report{GeneratedAt: now, WithinSec: opts.Within.Seconds(), color: opts.Color,
		Certs: []CertRow{}, CRLs: []CRLRow{}, Problems: []SourceProblem{}}
	expiring, problem := false, false
	for _, s := range sets {
		for _, c := range s.Certs {
			row := CertRow{Cert: c, DaysLeft: days(c.NotAfter.Sub(now)), Warnings: []Warning{}}
			switch {
			case !now.Before(c.NotAfter):
				row.Warnings = append(row.Warnings, WarnExpired)
			case c.NotAfter.Sub(now) <= opts.Within:
				row.Warnings = append(row.Warnings, WarnExpiring)
			}
			expiring = expiring || len(row.Warnings) > 0
			if now.Before(c.NotBefore) {
				row.Warnings = append(row.Warnings, WarnNotYetValid)
				problem = true
			}
			for _, p := range c.Problems {
				row.Warnings = append(row.Warnings, Warning(p.Kind))
				problem = true
			}
			r.Certs = append(r.Certs, row)
		}
		for _, c := range s.CRLs {
			row := CRLRow{CRL: c, Warnings: []Warning{}}
			if !c.NextUpdate.IsZero() {
				row.DaysLeft = days(c.NextUpdate.Sub(now))
				switch {
				case !now.Before(c.NextUpdate):
					row.Warnings = append(row.Warnings, WarnCRLExpired)
				case c.NextUpdate.Sub(now) <= c.NextUpdate.Sub(c.ThisUpdate)/4:
					row.Warnings = append(row.Warnings, WarnCRLStale)
				}
			}
			expiring = expiring || len(row.Warnings) > 0
			for _, p := range c.Problems {
				row.Warnings = append(row.Warnings, Warning(p.Kind))
				problem = true
			}
			r.CRLs = append(r.CRLs, row)
		}
		r.Problems = append(r.Problems, s.Problems...)
		problem = problem || len(s.Problems) > 0
	}
	slices.SortStableFunc(r.Certs, func(a, b CertRow) int {
		return cmp.Or(
			a.NotAfter.Compare(b.NotAfter),
			compareSources(a.Source, b.Source),
			strings.Compare(a.Serial, b.Serial),
		)
	})
	slices.SortStableFunc(r.CRLs, func(a, b CRLRow) int {
		return cmp.Or(a.NextUpdate.Compare(b.NextUpdate), compareSources(a.Source, b.Source))
	})
	switch {
	case expiring:
		r.ExitCode = ExitExpiring
	case problem:
		r.ExitCode = ExitProblem
	}
	return r
}

// days converts d to days, rounded to a tenth.
func days(d time.Duration) float64 {
	v := math.Round(d.Hours()/24*10) / 10
	if v == 0 {
		return 0 // not -0
	}
	return v
}

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// warningText is how the table shows each warning.
var warningText = map[Warning]string{
	WarnExpired: "EXPIRED", WarnExpiring: "expiring", WarnNotYetValid: "not yet valid",
	WarnCRLExpired: "past nextUpdate", WarnCRLStale: "near nextUpdate",
	Warning(ProblemChain): "chain does not verify", Warning(ProblemKeyMismatch): "key does not match certificate",
	Warning(ProblemCRLSignature): "bad CRL signature", Warning(ProblemUnparsable): "unparsable",
	Warning(ProblemUnreadable): "unreadable",
}

const timeFormat = "2006-01-02 15:04"

// WriteTable writes the report as aligned text tables: certificates, CRLs, then source problems; sections
// with nothing to show are left out.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Certificates at %s UTC, threshold %s\n", r.GeneratedAt.Format(timeFormat),
		formatDays(r.WithinSec/86400))
	rows := [][]cell{header("SOURCE", "SUBJECT / SPIFFE ID", "ISSUER", "SERIAL", "NOT BEFORE", "NOT AFTER",
		"DAYS LEFT", "KEY", "WARNINGS")}
	for _, c := range r.Certs {
		rows = append(rows, []cell{plain(c.Source.String()), plain(c.Name()), plain(c.Issuer), plain(c.Serial),
			plain(c.NotBefore.Format(timeFormat)), plain(c.NotAfter.Format(timeFormat)),
			{fmt.Sprintf("%.1f", c.DaysLeft), severity(c.Warnings)}, plain(c.KeyType), warnCell(c.Warnings)})
	}
	writeTable(&b, rows, r.color)
	if len(r.CRLs) > 0 {
		b.WriteString("\nCRLs\n")
		rows = [][]cell{header("SOURCE", "ISSUER", "NUMBER", "REVOKED", "THIS UPDATE", "NEXT UPDATE", "DAYS LEFT",
			"WARNINGS")}
		for _, c := range r.CRLs {
			next, left := "none", "-"
			if !c.NextUpdate.IsZero() {
				next, left = c.NextUpdate.Format(timeFormat), fmt.Sprintf("%.1f", c.DaysLeft)
			}
			rows = append(rows, []cell{plain(c.Source.String()), plain(c.Issuer), plain(c.Number),
				plain(fmt.Sprint(c.Revoked)), plain(c.ThisUpdate.Format(timeFormat)), plain(next),
				{left, severity(c.Warnings)}, warnCell(c.Warnings)})
		}
		writeTable(&b, rows, r.color)
	}
	if len(r.Problems) > 0 {
		b.WriteString("\nProblems\n")
		rows = [][]cell{header("SOURCE", "PROBLEM", "DETAIL")}
		for _, p := range r.Problems {
			rows = append(rows, []cell{plain(p.Source.String()), {warningText[Warning(p.Kind)], red},
				plain(p.Detail)})
		}
		writeTable(&b, rows, r.color)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatDays(d float64) string {
	if d == float64(int64(d)) {
		return fmt.Sprintf("%dd", int64(d))
	}
	return fmt.Sprintf("%.1fd", d)
}
