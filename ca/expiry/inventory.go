package expiry

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxSeries is the Inventory's cap on exported series when InventoryConfig.MaxSeries is zero.
const DefaultMaxSeries = 10000

// InventoryConfig configures an Inventory.
type InventoryConfig struct {
	// MaxSeries caps the certificate and CRL series exported at one scrape; those expiring soonest are kept.
	// Default 10000.
	MaxSeries int `json:"maxSeries,omitempty"`
	// Registerer, when set, receives the Inventory's collector.
	Registerer prometheus.Registerer `json:"-"`
}

// Validate reports every problem with c at once. It has no side effects.
func (c *InventoryConfig) Validate() error {
	if c.MaxSeries < 0 {
		return fmt.Errorf("expiry: maxSeries %d is negative: set a positive cap, or 0 for the default", c.MaxSeries)
	}
	return nil
}

// Inventory holds the latest Set of every scanned source, for the scanners to update and for metrics and
// reports to read. It is safe for concurrent use.
type Inventory struct {
	maxSeries int
	mu        sync.RWMutex
	sets      map[Source]*Set
}

// NewInventory returns an empty Inventory and registers its collector on cfg.Registerer.
func NewInventory(cfg InventoryConfig) (*Inventory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	inv := &Inventory{maxSeries: cfg.MaxSeries, sets: map[Source]*Set{}}
	if inv.maxSeries == 0 {
		inv.maxSeries = DefaultMaxSeries
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(inventoryCollector{inv}); err != nil {
			return nil, fmt.Errorf("expiry: registering the scanner's metrics: %w", err)
		}
	}
	return inv, nil
}

// Put stores s as the current content of s.Source, replacing what was there.
func (inv *Inventory) Put(s *Set) {
	inv.mu.Lock()
	inv.sets[s.Source] = s
	inv.mu.Unlock()
}

// Delete forgets the source src (a deleted Secret, a file no longer watched).
func (inv *Inventory) Delete(src Source) {
	inv.mu.Lock()
	delete(inv.sets, src)
	inv.mu.Unlock()
}

// Sets returns the current sets, ordered by source. The sets are shared: do not modify them.
func (inv *Inventory) Sets() []*Set {
	inv.mu.RLock()
	out := make([]*Set, 0, len(inv.sets))
	for _, s := range inv.sets {
		out = append(out, s)
	}
	inv.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Set) int { return compareSources(a.Source, b.Source) })
	return out
}

func compareSources(a, b Source) int {
	return strings.Compare(a.Kind+"\x00"+a.Namespace+"\x00"+a.Name+"\x00"+a.Key,
		b.Kind+"\x00"+b.Namespace+"\x00"+b.Name+"\x00"+b.Key)
}

var (
	sourceLabels    = []string{"source", "namespace", "name", "key"}
	scannedCertDesc = prometheus.NewDesc("meshca_scanned_certificate_expiry_timestamp_seconds",
		"Expiry (Unix time) of each certificate found by the expiry scanner in files and cluster objects.",
		append(slices.Clone(sourceLabels), "subject", "serial", "ca"), nil)
	scannedCRLNextDesc = prometheus.NewDesc("meshca_scanned_crl_next_update_timestamp_seconds",
		"nextUpdate (Unix time) of each CRL found by the expiry scanner; a CRL is stale after it.",
		append(slices.Clone(sourceLabels), "issuer"), nil)
	scannedCRLThisDesc = prometheus.NewDesc("meshca_scanned_crl_this_update_timestamp_seconds",
		"thisUpdate (Unix time) of each CRL found by the expiry scanner.",
		append(slices.Clone(sourceLabels), "issuer"), nil)
	scannedProblemsDesc = prometheus.NewDesc("meshca_scanned_problems",
		"Failed checks per scanned source and key: chain_unverified, key_mismatch, crl_signature, unparsable, "+
			"unreadable.", append(slices.Clone(sourceLabels), "problem"), nil)
	scannedDroppedDesc = prometheus.NewDesc("meshca_scanned_series_dropped",
		"Certificate and CRL series left out of the last scrape because of the maxSeries cap.", nil, nil)
)

// inventoryCollector exports the inventory at scrape time.
type inventoryCollector struct{ inv *Inventory }

func (c inventoryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{scannedCertDesc, scannedCRLNextDesc, scannedCRLThisDesc, scannedProblemsDesc,
		scannedDroppedDesc} {
		ch <- d
	}
}

// series is one certificate or CRL sample before the cap is applied.
type series struct {
	labels     [8]string
	at, other  time.Time
	crl        bool
	labelCount int
}

func (c inventoryCollector) Collect(ch chan<- prometheus.Metric) {
	byLabels := map[[8]string]series{}
	problems := map[[5]string]int{}
	keep := func(s series) {
		if old, ok := byLabels[s.labels]; !ok || s.at.Before(old.at) {
			byLabels[s.labels] = s
		}
	}
	labelsOf := func(src Source) []string {
		return []string{src.Kind, src.Namespace, bound(src.Name, maxLabel), bound(src.Key, maxLabel)}
	}
	for _, set := range c.inv.Sets() {
		for _, cert := range set.Certs {
			var l [8]string
			isCA := "false"
			if cert.IsCA {
				isCA = "true"
			}
			copy(l[:], append(labelsOf(cert.Source), bound(cert.Name(), maxLabel), bound(cert.Serial, 64), isCA))
			keep(series{labels: l, at: cert.NotAfter, labelCount: 7})
			for _, p := range cert.Problems {
				problems[[5]string(append(labelsOf(cert.Source), string(p.Kind)))]++
			}
		}
		for _, crl := range set.CRLs {
			var l [8]string
			copy(l[:], append(labelsOf(crl.Source), bound(crl.Issuer, maxLabel)))
			if !crl.NextUpdate.IsZero() {
				keep(series{labels: l, at: crl.NextUpdate, other: crl.ThisUpdate, crl: true, labelCount: 5})
			}
			for _, p := range crl.Problems {
				problems[[5]string(append(labelsOf(crl.Source), string(p.Kind)))]++
			}
		}
		for _, p := range set.Problems {
			problems[[5]string(append(labelsOf(p.Source), string(p.Kind)))]++
		}
	}
	all := make([]series, 0, len(byLabels))
	for _, s := range byLabels {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b series) int { return a.at.Compare(b.at) })
	dropped := 0
	if len(all) > c.inv.maxSeries {
		dropped = len(all) - c.inv.maxSeries
		all = all[:c.inv.maxSeries]
	}
	for _, s := range all {
		lv := s.labels[:s.labelCount]
		if s.crl {
			ch <- prometheus.MustNewConstMetric(scannedCRLNextDesc, prometheus.GaugeValue, unix(s.at), lv...)
			ch <- prometheus.MustNewConstMetric(scannedCRLThisDesc, prometheus.GaugeValue, unix(s.other), lv...)
			continue
		}
		ch <- prometheus.MustNewConstMetric(scannedCertDesc, prometheus.GaugeValue, unix(s.at), lv...)
	}
	for l, n := range problems {
		ch <- prometheus.MustNewConstMetric(scannedProblemsDesc, prometheus.GaugeValue, float64(n), l[:]...)
	}
	ch <- prometheus.MustNewConstMetric(scannedDroppedDesc, prometheus.GaugeValue, float64(dropped))
}

// unix returns t in seconds since the epoch; certificate and CRL times have a resolution of one second.
func unix(t time.Time) float64 { return float64(t.Unix()) }
