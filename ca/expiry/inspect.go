package expiry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// InspectArgs are the inputs of Inspect, the body of `meshca inspect`.
type InspectArgs struct {
	// Paths are PEM files and directories (cacerts, OUTPUT_CERTS, mounted Secrets).
	Paths []string
	// URLs are running meshca instances' HTTP side ports (e.g. http://meshca.istio-system:15014): their
	// /roots.pem and /crl.pem are read.
	URLs []string
	// Sets are sets gathered by the caller, e.g. a cluster's by kubescan.List.
	Sets []*Set
	// Within is the threshold; default 7 days.
	Within time.Duration
	// JSON selects JSON output instead of the table.
	JSON bool
	// Color colours the table; set it when stdout is a terminal.
	Color bool
	// Now is the time of the report; default time.Now().
	Now time.Time
	// HTTPClient fetches URLs; default a client with a 10s timeout.
	HTTPClient *http.Client
	// Stderr receives error messages; default io.Discard.
	Stderr io.Writer
}

// Inspect reads every input, writes the report to stdout and returns the exit status (ExitOK, ExitExpiring,
// ExitProblem or ExitError). An input that cannot be read is reported as a problem, not an error.
func Inspect(ctx context.Context, args InspectArgs, stdout io.Writer) int {
	if args.Stderr == nil {
		args.Stderr = io.Discard
	}
	if len(args.Paths)+len(args.URLs)+len(args.Sets) == 0 {
		fmt.Fprintln(args.Stderr, "meshca inspect: nothing to inspect: name files, directories, --url or --kubeconfig")
		return ExitError
	}
	if args.HTTPClient == nil {
		args.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	sets := make([]*Set, 0, len(args.Paths)+len(args.URLs)+len(args.Sets))
	for _, p := range args.Paths {
		sets = append(sets, LoadPath(p))
	}
	for _, u := range args.URLs {
		sets = append(sets, FetchMeshca(ctx, args.HTTPClient, u))
	}
	sets = append(sets, args.Sets...)
	r := NewReport(sets, ReportOptions{Now: args.Now, Within: args.Within, Color: args.Color && !args.JSON})
	write := r.WriteTable
	if args.JSON {
		write = r.WriteJSON
	}
	if err := write(stdout); err != nil {
		fmt.Fprintf(args.Stderr, "meshca inspect: writing the report: %v\n", err)
		return ExitError
	}
	return r.ExitCode
}

// FetchMeshca reads a running meshca's published roots (/roots.pem) and CRL (/crl.pem) from its HTTP side
// port at base, as one Set. A missing CRL (404) is not a problem: not every backend publishes one.
func FetchMeshca(ctx context.Context, client *http.Client, base string) *Set {
	base = strings.TrimSuffix(base, "/")
	src := Source{Kind: KindHTTP, Name: bound(base, maxLabel)}
	files := map[string][]byte{}
	for _, path := range []string{"roots.pem", "crl.pem"} {
		data, err := fetch(ctx, client, base+"/"+path)
		if errors.Is(err, errNotFound) && path == "crl.pem" {
			continue
		}
		if err != nil {
			return unreadable(src, err)
		}
		files[path] = data
	}
	return ParseSet(src, files)
}

var errNotFound = errors.New("not found")

func fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("GET %s: %w", bound(url, maxLabel), errNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: HTTP %d", bound(url, maxLabel), resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", bound(url, maxLabel), err)
	}
	if len(data) > maxKeyBytes {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", bound(url, maxLabel), maxKeyBytes)
	}
	return data, nil
}
