package rotation

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sync"

	"github.com/meshca/meshca/ca"
)

// HolderKind says what a holder of a trust bundle is, and so how precisely the tracker follows it.
type HolderKind string

const (
	// HolderPod is a sidecar's istio-agent: the pod UID of its bound service-account token.
	HolderPod HolderKind = "pod"
	// HolderNodeAgent is ztunnel acting for one identity (ImpersonatedIdentity): its pod and that identity.
	HolderNodeAgent HolderKind = "ztunnel"
	// HolderIdentity is a caller without pod claims: every workload of the identity counts as one holder
	// (coarse: the last renewal speaks for all of them).
	HolderIdentity HolderKind = "identity"
)

// maxName bounds a holder's name as recorded; longer names are cut.
const maxName = 255

// holderOf returns the kind of res's holder, its namespace, node (may be empty) and display name, and its key
// material appended to key. The strings are not copied.
func holderOf(res *ca.Result, key []byte) (kind HolderKind, ns, node, name string, _ []byte) {
	id := res.Identity
	c := res.Caller
	switch {
	case c != nil && c.PodUID != "" && res.Impersonated:
		key = append(append(append(key, 'z'), c.PodUID...), 0)
		// The workload's namespace, the node agent's node: that is where the workload runs.
		return HolderNodeAgent, id.Namespace, c.NodeName, c.Namespace + "/" + c.PodName + " for " + id.String(),
			appendIdentity(key, res)
	case c != nil && c.PodUID != "":
		return HolderPod, c.Namespace, c.NodeName, c.PodName, append(append(key, 'p'), c.PodUID...)
	default:
		node = ""
		if c != nil {
			node = c.NodeName
		}
		return HolderIdentity, id.Namespace, node, id.String(), appendIdentity(append(key, 'i'), res)
	}
}

func appendIdentity(key []byte, res *ca.Result) []byte {
	key = append(append(key, res.Identity.TrustDomain...), 0)
	key = append(append(key, res.Identity.Namespace...), 0)
	return append(key, res.Identity.ServiceAccount...)
}

// holderKey is the key of a holder's record: the first 64 bits of the SHA-256 of its key material. It is the
// same on every replica, so that replicas can speak of one holder (exchange.go); a second holder with a given
// key costs about 2^64 hashes to find, and a chance collision among 100k holders has a probability near
// 3·10⁻¹⁰ (it would merge two records, the newer winning).
func holderKey(material []byte) uint64 {
	sum := sha256.Sum256(material)
	return binary.BigEndian.Uint64(sum[:8])
}

// interner numbers strings (namespaces, nodes, trust bundles, CAs) for compact records. Index 0 is the empty
// string and stands for every string past the cap.
type interner struct {
	mu   sync.RWMutex
	idx  map[string]uint16
	strs []string
	max  int
}

func newInterner(max int) *interner {
	return &interner{idx: map[string]uint16{"": 0}, strs: []string{""}, max: max}
}

// id returns s's number, adding it when there is room; s is copied when added.
func (in *interner) id(s string) uint16 {
	in.mu.RLock()
	i, ok := in.idx[s]
	in.mu.RUnlock()
	if ok {
		return i
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if i, ok := in.idx[s]; ok {
		return i
	}
	if len(in.strs) >= in.max {
		return 0
	}
	s = string([]byte(s))
	i = uint16(len(in.strs))
	in.idx[s] = i
	in.strs = append(in.strs, s)
	return i
}

// bytesID is id for a byte slice, without allocating when b is known.
func (in *interner) bytesID(b []byte) uint16 {
	in.mu.RLock()
	i, ok := in.idx[string(b)]
	in.mu.RUnlock()
	if ok {
		return i
	}
	return in.id(string(b))
}

// all returns the strings numbered so far, index for index.
func (in *interner) all() []string {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.strs[:len(in.strs):len(in.strs)]
}

// caName is how a CA is shown: its subject's common name (or whole subject) and a hash prefix of the
// certificate, enough to tell two generations of the same name apart.
func caName(subject string, raw []byte) string {
	sum := sha256.Sum256(raw)
	if len(subject) > 96 {
		subject = subject[:96]
	}
	return subject + " (sha256 " + hex.EncodeToString(sum[:4]) + ")"
}
