package kube

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// TokenReviewMetrics are the Prometheus metrics of TokenReview authenticators, labelled by cluster ID
// ("" for a TokenReview without one).
type TokenReviewMetrics struct {
	reviews  *prometheus.CounterVec
	cache    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewTokenReviewMetrics registers the metrics on reg (nil: unregistered):
// meshca_tokenreview_requests_total{cluster,result="authenticated|refused|error|malformed"},
// meshca_tokenreview_cache_requests_total{cluster,result="hit|miss"} and
// meshca_tokenreview_duration_seconds{cluster}.
func NewTokenReviewMetrics(reg prometheus.Registerer) (*TokenReviewMetrics, error) {
	m := &TokenReviewMetrics{
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_tokenreview_requests_total",
			Help: "TokenReviews sent to the API server, by outcome (malformed: refused before any review)."},
			[]string{"cluster", "result"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_tokenreview_cache_requests_total",
			Help: "Token authentications answered from the TokenReview cache (hit) or not (miss)."},
			[]string{"cluster", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshca_tokenreview_duration_seconds",
			Help:    "Round trip of one TokenReview.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"cluster"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.reviews, m.cache, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("kube: registering TokenReview metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *TokenReviewMetrics) cacheVec() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.cache
}

func (m *TokenReviewMetrics) reviewVec() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.reviews
}

func (t *TokenReview) count(v *prometheus.CounterVec, result string) {
	if v != nil {
		v.WithLabelValues(t.cfg.ClusterID, result).Inc()
	}
}
