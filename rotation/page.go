package rotation

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// PagePath is where meshca's HTTP port serves the status page.
const PagePath = "/rotation"

// pageRefresh is how often the page reloads itself.
const pageRefresh = 10 * time.Second

var page = template.Must(template.New("rotation").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"pct": func(g GateProgress) string { return fmt.Sprintf("%.1f %%", g.Percent()) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>meshca root rotation</title>
<style>
body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #999;padding:.2em .6em;text-align:left}th{background:#eee}.overdue{color:#b00}
</style></head><body>
<h1>Root rotation</h1>
<p id="state">Phase <b id="phase">{{.P.Phase}}</b>, generation {{.P.Generation}}; as of {{when .P.At}}.
{{if .P.Complete}}The tracker has seen every unexpired certificate.{{else}}The tracker is incomplete until
{{when .P.CompleteAt}} (it has not yet seen a full certificate lifetime): no gate opens before.{{end}}
{{.P.Holders}} holders{{if .P.Coarse}}, {{.P.Coarse}} of them identities without pod claims (coarse){{end}}.</p>
<h2>Gates</h2>
<table id="gates"><thead><tr><th>Gate</th><th>Progress</th><th>Done</th><th>Lagging</th><th>Overdue</th>
<th>ETA</th><th>Opens at the latest</th></tr></thead><tbody>
{{range .P.Gates}}<tr{{if .Active}} class="active"{{end}}><td>{{.Name}}{{if .Active}} (this phase){{end}}</td>
<td>{{pct .}} of holders {{.What}}</td><td>{{.Done}} / {{.Holders}}</td><td>{{.Lagging}}</td><td>{{.Overdue}}</td>
<td>{{when .ETA}}</td><td>{{when .Latest}}</td></tr>
{{end}}</tbody></table>
<h2>Laggards</h2>
{{if .P.Laggards}}<table id="laggards"><thead><tr><th>Holder</th><th>Kind</th><th>Namespace</th><th>Node</th>
<th>Last renewal</th><th>Next renewal</th><th>Certificate expires</th><th>Status</th><th>Seen by</th></tr></thead>
<tbody>
{{range .P.Laggards}}<tr><td>{{.Identity}}</td><td>{{.Kind}}</td><td>{{.Namespace}}</td><td>{{.Node}}</td>
<td>{{when .LastRenewal}}</td><td>{{when .NextRenewal}}</td><td>{{when .NotAfter}}</td>
<td{{if .Overdue}} class="overdue"{{end}}>{{if .Overdue}}overdue{{else}}lagging{{end}}</td>
<td>{{if .Replica}}{{.Replica}}{{else}}this replica{{end}}</td></tr>
{{end}}</tbody></table>
<table id="namespaces"><thead><tr><th>Namespace</th><th>Laggards</th></tr></thead><tbody>
{{range .P.ByNamespace}}<tr><td>{{.Name}}</td><td>{{.Count}}</td></tr>{{end}}</tbody></table>
<table id="nodes"><thead><tr><th>Node</th><th>Laggards</th></tr></thead><tbody>
{{range .P.ByNode}}<tr><td>{{.Name}}</td><td>{{.Count}}</td></tr>{{end}}</tbody></table>
{{else}}<p id="nolaggards">None.</p>{{end}}
<h2>Leaves by issuing CA</h2>
<table id="cas"><thead><tr><th>CA</th><th>Unexpired leaves</th></tr></thead><tbody>
{{range .P.CAs}}<tr><td>{{.Name}}</td><td>{{.Count}}</td></tr>{{end}}</tbody></table>
<p>This page reloads every {{.Refresh}} s. <code>meshca rotation status</code> prints the same.</p>
</body></html>
`))

// StatusPage serves the rotation's progress as a small read-only HTML page that reloads itself: the gates
// with their progress and ETA, the laggards, where they are, and the leaves by CA. progress is called per
// request.
func StatusPage(progress func() *Progress) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		err := page.Execute(&buf, struct {
			P       *Progress
			Refresh int
		}{progress(), int(pageRefresh / time.Second)})
		if err != nil {
			http.Error(w, "rendering the status page failed", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		w.Write(buf.Bytes())
	})
}
