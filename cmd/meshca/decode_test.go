package main

import (
	"strings"
	"testing"
	"time"
)

// A minimal configuration that validates; cases append or replace sections.
const okServer = `server: {dnsNames: [meshca.istio-system.svc]}
authn: {issuers: [{issuer: "https://kubernetes.default.svc", jwksFile: /jwks.json}]}
backends: [{name: cacerts, file: {dir: /etc/cacerts}}]
`

func TestConfigProblemsNameTheKey(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		// want are fragments that must all appear, each naming the key the user wrote.
		want []string
	}{
		{name: "a bare number for a duration is refused with the unit it probably meant",
			yaml: "issuance: {trustDomain: cluster.local, defaultTTL: 3600}\n" + okServer,
			want: []string{"issuance.defaultTTL: 3600 has no unit; write 1h"}},
		{name: "a duration string that does not parse names its key",
			yaml: "issuance: {trustDomain: cluster.local, maxTTL: 1day}\n" + okServer,
			want: []string{`issuance.maxTTL: "1day" is not a duration`}},
		{name: "every unknown key is reported with its full path and the nearest known key",
			yaml: "issuance: {trustDomian: cluster.local}\n" + okServer +
				"trustBundel: {}\nbackends: [{name: a, file: {dri: /x}}]\n",
			want: []string{"issuance.trustDomian: unknown key; did you mean trustDomain?",
				"trustBundel: unknown key; did you mean trustBundle?",
				"backends[0].file.dri: unknown key; did you mean dir?"}},
		{name: "a value of the wrong kind is described without Go type names",
			yaml: "issuance: {trustDomain: [a]}\n" + okServer,
			want: []string{"issuance.trustDomain: a list is not text"}},
		{name: "a lifetime below the floor is refused",
			yaml: "issuance: {trustDomain: cluster.local, defaultTTL: 2s, minTTL: 1s}\n" + okServer,
			want: []string{"issuance.defaultTTL: 2s is below the 5m floor", "issuance.minTTL: 1s"}},
		{name: "a policy problem names the issuance key, not the package",
			yaml: "issuance: {trustDomain: Not_Valid!}\n" + okServer,
			want: []string{"issuance.trustDomain:"}},
		{name: "a listen address that cannot be bound is refused before anything starts",
			yaml: "issuance: {trustDomain: cluster.local}\n" + okServer +
				"server: {dnsNames: [a], grpcAddr: '15012'}\n",
			want: []string{"server.grpcAddr: \"15012\" is not host:port"}},
		{name: "a number where text belongs is described in the user's terms",
			yaml: "issuance: {trustDomain: cluster.local}\n" + okServer + "server: {dnsNames: [a], httpAddr: 15014}\n",
			want: []string{"server.httpAddr: a number is not text"}},
		{name: "kind mistakes are reported together with unknown keys and durations",
			yaml: "issuance: {trustDomain: cluster.local, defaultTTL: 3600, commonName: yes please}\n" + okServer +
				"server: {dnsNames: a, grpcAddr: 1, bogus: 1}\n",
			want: []string{"issuance.defaultTTL: 3600 has no unit", "issuance.commonName: text is not true or false",
				"server.dnsNames: text is not a list", "server.grpcAddr: a number is not text",
				"server.bogus: unknown key"}},
		{name: "a config no agent can verify is refused",
			yaml: "issuance: {trustDomain: cluster.local}\n" + okServer + "server: {}\n",
			want: []string{"server.dnsNames: empty"}},
		{name: "a config no agent can authenticate to is refused",
			yaml: "issuance: {trustDomain: cluster.local}\n" + okServer + "authn: {issuers: []}\n",
			want: []string{"authn.issuers: empty and kubernetes.tokenReview not set"}},
		{name: "a negative failed-authentication rate is refused under its key",
			yaml: "issuance: {trustDomain: cluster.local}\n" + okServer + "limits: {failedAuthnRate: -3}\n",
			want: []string{"limits.failedAuthnRate -3"}},
		{name: "token issuers beside a TokenReview without saying how they combine are refused",
			yaml: "issuance: {trustDomain: cluster.local}\n" + okServer + "kubernetes: {tokenReview: {}}\n",
			want: []string{"kubernetes.tokenReview.withIssuers: required with authn.issuers"}},
		{name: "an unknown way of combining token issuers and a TokenReview is refused",
			yaml: "issuance: {trustDomain: cluster.local}\n" + okServer +
				"kubernetes: {tokenReview: {withIssuers: both}}\n",
			want: []string{"kubernetes.tokenReview.withIssuers: \"both\" is not"}},
		{name: "a publisher's Lease is checked under its section, every problem at once",
			yaml: "issuance: {trustDomain: cluster.local}\n" + okServer +
				"trustBundle: {leaseName: B, retryPeriod: -1s}\n" +
				"k8sSigner: {signers: [{name: meshca.io/w}], leaseNamespace: Not_A_Label}\n",
			want: []string{"trustBundle.leaseNamespace: required", `trustBundle.leaseName: "B"`,
				"trustBundle: leaseDuration, renewDeadline and retryPeriod must not be negative",
				`k8sSigner.leaseNamespace: "Not_A_Label"`}},
		{name: "a misspelt Lease key gets the nearest one",
			yaml: "issuance: {trustDomain: cluster.local}\n" + okServer +
				"k8sSigner: {signers: [{name: meshca.io/w}], leaseNamespace: a, leaseDuraton: 1s}\n",
			want: []string{"k8sSigner.leaseDuraton: unknown key; did you mean leaseDuration?"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadBytes([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, goName := range []string{"time.Duration", "ca.Policy", "[]string", "main.Config", "policy:"} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("error mentions %q:\n%v", goName, err)
				}
			}
		})
	}
}

func TestDurationsWithUnitsDecode(t *testing.T) {
	c, err := loadBytes([]byte("issuance: {trustDomain: cluster.local, defaultTTL: 12h, minTTL: 10m}\n" + okServer))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuance.DefaultTTL != 12*time.Hour || c.Issuance.MinTTL != 10*time.Minute {
		t.Fatalf("decoded %s and %s, want 12h and 10m", c.Issuance.DefaultTTL, c.Issuance.MinTTL)
	}
	short := "allowShortTTLs: true\nissuance: {trustDomain: cluster.local, defaultTTL: 10s, minTTL: 1s}\n" + okServer
	if _, err := loadBytes([]byte(short)); err != nil {
		t.Fatalf("allowShortTTLs: %v", err)
	}
}

func FuzzDecodeStrict(f *testing.F) {
	f.Add([]byte("issuance: {trustDomain: cluster.local, defaultTTL: 3600}\n" + okServer))
	f.Add([]byte("backends: [{name: a, file: {dri: /x}}]\nserver: [1]\n"))
	f.Add([]byte(`{"signTimeout": "1s", "kubernetes": {"tokenReview": {}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		_ = decodeStrict(data, &c)
	})
}
