package rotation_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/html"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
	"github.com/meshca/meshca/rotation"
)

// evilPod is a pod name (the bound token's claim) that would be markup if the page did not escape it.
const evilPod = `cart-<img src=x onerror="document.title='owned'">`

func TestStatusPageEscapesNames(t *testing.T) {
	p := &rotation.Progress{Phase: rotation.PhasePublishing, Holders: 1,
		Gates:    []rotation.GateProgress{{Name: rotation.GateBundle, Active: true, Holders: 1, Lagging: 1}},
		Laggards: []rotation.Laggard{{Identity: evilPod, Kind: rotation.HolderPod, Namespace: "shop", Node: "n1"}}}
	rec := httptest.NewRecorder()
	rotation.StatusPage(func() *rotation.Progress { return p }).ServeHTTP(rec,
		httptest.NewRequest(http.MethodGet, rotation.PagePath, nil))
	body := rec.Body.String()
	if strings.Contains(body, "<img") || !strings.Contains(body, "cart-&lt;img") {
		t.Fatalf("the pod name reached the page unescaped:\n%s", body)
	}
	if rec.Header().Get("Content-Security-Policy") == "" ||
		!strings.Contains(body, "0.0 % of holders hold the new root") {
		t.Fatalf("headers %v, body:\n%s", rec.Header(), body)
	}
}

// renewPod asks for a certificate for default/sa as istio-agent does with the bound token of pod name.
func renewPod(t *testing.T, h *mesh, sa, name, node string) {
	t.Helper()
	tok, err := h.m.Tokens.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: sa, PodName: name,
		PodUID: "uid-" + name, NodeName: node})
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, _ := catest.WorkloadCSR(t, "spiffe://"+catest.TrustDomain+"/ns/default/sa/"+sa)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok, "clusterid", authn.DefaultClusterID)
	if _, err := pb.NewIstioCertificateServiceClient(h.m.Dial(t)).CreateCertificate(ctx,
		&pb.IstioCertificateRequest{Csr: string(csrPEM), ValidityDuration: 3600}); err != nil {
		t.Fatalf("CreateCertificate for pod %s: %v", name, err)
	}
}

// dumpDOM loads url in headless chromium (bin) and returns the document as rendered.
func dumpDOM(t *testing.T, bin, url string) *html.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--dump-dom", url)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	doc, err := html.Parse(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// rows returns the text of each cell of each body row of the table with id.
func rows(doc *html.Node, id string) [][]string {
	var out [][]string
	var text func(n *html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	var walk func(n *html.Node, in bool)
	walk = func(n *html.Node, in bool) {
		if n.Type == html.ElementNode && n.Data == "table" {
			in = false
			for _, a := range n.Attr {
				in = in || (a.Key == "id" && a.Val == id)
			}
		}
		if in && n.Type == html.ElementNode && n.Data == "tr" && n.Parent != nil && n.Parent.Data == "tbody" {
			var row []string
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && c.Data == "td" {
					row = append(row, strings.Join(strings.Fields(text(c)), " "))
				}
			}
			out = append(out, row)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, in)
		}
	}
	walk(doc, false)
	return out
}

// Three pods renew through gRPC with bound tokens; once the next root is published two renew again. The status
// page, rendered by a real headless browser, shows two thirds of the holders holding the new root and names the
// third pod (escaped: its name is markup) with its node; the metrics count the holders by status.
func TestStatusPageInHeadlessBrowser(t *testing.T) {
	bin := catest.Binary(t, "chromium")
	if bin == "" {
		t.Skip("chromium is not installed and cannot be here (scripts/get-chromium.sh)")
	}
	cacerts, oldCA := catest.FileCA(t)
	newCA := genCA(t)
	statePath := filepath.Join(t.TempDir(), "rotation.json")
	h := startMesh(t, cacerts, statePath, true, oldCA.Root, newCA.Root)
	pods := []struct{ sa, name, node string }{{"cart", "cart-1", "node-a"}, {"cart", evilPod, "node-b"},
		{"web", "web-1", "node-a"}}
	for _, p := range pods {
		renewPod(t, h, p.sa, p.name, p.node)
	}
	if _, err := h.admin.Change(context.Background(), rotation.ChangeRequest{Action: rotation.ActionStart,
		MaxLeafLifetime: rotationCap.String(), NextRoot: string(newCA.RootPEM),
		OldRoot: string(oldCA.RootPEM)}); err != nil {
		t.Fatal(err)
	}
	if ph, err := h.step(t, rotation.ActionAdvance); err != nil || ph != rotation.PhasePublishing {
		t.Fatalf("advance from staged: %s, %v", ph, err)
	}
	renewPod(t, h, "cart", "cart-1", "node-a")
	renewPod(t, h, "web", "web-1", "node-a")
	srv := httptest.NewServer(rotation.StatusPage(h.c.Progress))
	t.Cleanup(srv.Close)

	want := `
# HELP meshca_rotation_holders Holders of a trust bundle (pods, ztunnel per identity, identities without pod ` +
		`claims) with an unexpired certificate, by status against the phase's gate: current (has what it needs), ` +
		`lagging (will renew in time), overdue (past its renewal time).
# TYPE meshca_rotation_holders gauge
meshca_rotation_holders{status="current"} 2
meshca_rotation_holders{status="lagging"} 1
meshca_rotation_holders{status="overdue"} 0
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "meshca_rotation_holders"); err != nil {
		t.Fatal(err)
	}

	doc := dumpDOM(t, bin, srv.URL+rotation.PagePath)
	gates := rows(doc, "gates")
	if len(gates) != 2 || gates[0][0] != "bundle (this phase)" ||
		gates[0][1] != "66.7 % of holders hold the new root" ||
		gates[0][2] != "2 / 3" || gates[0][3] != "1" {
		t.Fatalf("gates as rendered: %q", gates)
	}
	lag := rows(doc, "laggards")
	if len(lag) != 1 || lag[0][0] != evilPod || lag[0][1] != "pod" || lag[0][2] != "default" || lag[0][3] != "node-b" ||
		lag[0][7] != "lagging" {
		t.Fatalf("laggards as rendered: %q", lag)
	}
	if nodes := rows(doc, "nodes"); len(nodes) != 1 || nodes[0][0] != "node-b" || nodes[0][1] != "1" {
		t.Fatalf("laggards by node as rendered: %q", nodes)
	}
}
