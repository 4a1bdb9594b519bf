package kube

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/authn"
)

func TestReviewCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newReviewCache(2)
	now := time.Now()
	r := &reviewResult{caller: &authn.Caller{}}
	c.put("a", r, now.Add(time.Minute))
	c.put("b", r, now.Add(time.Minute))
	if _, ok := c.get("a", now); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	c.put("c", r, now.Add(time.Minute))
	if _, ok := c.get("b", now); ok {
		t.Error("b should have been evicted as least recently used")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.get(k, now); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if c.len() != 2 {
		t.Errorf("cache holds %d entries, bound is 2", c.len())
	}
	if _, ok := c.get("a", now.Add(time.Minute)); ok {
		t.Error("entry served at its expiry")
	}
	for i := range 1000 {
		c.put(fmt.Sprint(i), r, now.Add(time.Minute))
	}
	if c.len() != 2 {
		t.Errorf("cache holds %d entries after 1000 puts, bound is 2", c.len())
	}
}

func TestUnverifiedClaims(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, token string
		iss         string
		exp         int64
		ok          bool
	}{
		{
			"a JWT with iss and exp",
			"x." + enc(`{"iss":"https://k","exp":1700000000}`) + ".y",
			"https://k",
			1700000000,
			true,
		},
		{"a JWT without exp", "x." + enc(`{"iss":"https://k"}`) + ".y", "https://k", 0, false},
		{"an opaque token", "abcdef", "", 0, false},
		{"bad base64", "x.!!!.y", "", 0, false},
		{"a non-numeric exp", "x." + enc(`{"exp":"soon"}`) + ".y", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, exp, ok := unverifiedClaims(tt.token)
			if ok != tt.ok || iss != tt.iss || (ok && exp.Unix() != tt.exp) {
				t.Fatalf("unverifiedClaims = %q, %v, %v; want %q, %d, %v", iss, exp, ok, tt.iss, tt.exp, tt.ok)
			}
		})
	}
}
