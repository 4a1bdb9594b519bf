package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/go-jose/go-jose/v4"
)

// StaticKeys is a fixed key set, for example read from a JWKS file.
type StaticKeys struct{ set jose.JSONWebKeySet }

// NewStaticKeys returns a key set holding keys.
func NewStaticKeys(keys ...jose.JSONWebKey) *StaticKeys {
	return &StaticKeys{set: jose.JSONWebKeySet{Keys: keys}}
}

// LoadJWKS reads a JSON Web Key Set (RFC 7517 §5) from a file, such as the output of
// `kubectl get --raw /openid/v1/jwks`.
func LoadJWKS(path string) (*StaticKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authn: reading JWKS: %w", err)
	}
	set, err := parseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("authn: %s: %w", path, err)
	}
	return &StaticKeys{set: *set}, nil
}

// Keys implements KeySet.
func (s *StaticKeys) Keys(_ context.Context, kid string) ([]jose.JSONWebKey, error) {
	return selectKeys(&s.set, kid), nil
}

func selectKeys(set *jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if kid == "" {
		return set.Keys
	}
	return set.Key(kid)
}

func parseJWKS(b []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("malformed JWKS: %v", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, errors.New("JWKS holds a private or symmetric key; publish public keys only")
		}
	}
	return &set, nil
}
