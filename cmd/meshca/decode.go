package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/meshca/meshca/internal/durtext"
)

// decodeStrict decodes YAML or JSON into v, reporting every problem at once, each with the key path the user
// wrote (issuance.defaultTTL, backends[0].file.dir): unknown keys (with the nearest known key), durations
// without a unit or unparsable, and values of the wrong kind. Durations are strings such as "90s", "1h", "24h".
//
// The walk over v's type stays here rather than in a self-decoding duration type: the time.Duration fields
// belong to the packages' Config types, and the walk is what names the full key path in every message
// (docs/design-notes.md, "Configuration file").
func decodeStrict(data []byte, v any) error {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("not valid YAML or JSON: %w", err)
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return fmt.Errorf("not valid YAML or JSON: %w", err)
	}
	var errs []error
	tree = walk(tree, reflect.TypeOf(v), "", &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	js, err = json.Marshal(tree)
	if err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			got := map[string]string{"string": "text", "bool": "true or false", "array": "a list",
				"object": "a mapping"}[te.Value]
			if got == "" {
				got = "a " + te.Value
			}
			return fmt.Errorf("%s: %s is not %s", te.Field, got, kindName(te.Type))
		}
		return err
	}
	return nil
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
)

// walk checks node against t, appends every problem to errs, and returns node with durations as nanoseconds.
func walk(node any, t reflect.Type, path string, errs *[]error) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		return duration(node, path, errs)
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return node // the type reads its own JSON; the decoder reports its errors
	}
	switch n := node.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			keys := make([]string, 0, len(n))
			for k := range n {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, key := range keys {
				f, ok := jsonField(t, key)
				if !ok {
					*errs = append(*errs, unknownKey(t, join(path, key), key))
					continue
				}
				n[key] = walk(n[key], f.Type, join(path, key), errs)
			}
		case reflect.Map:
			for k, val := range n {
				n[k] = walk(val, t.Elem(), join(path, k), errs)
			}
		default:
			*errs = append(*errs, fmt.Errorf("%s: a mapping is not %s", orTop(path), kindName(t)))
		}
	case []any:
		if t.Kind() != reflect.Slice {
			*errs = append(*errs, fmt.Errorf("%s: a list is not %s", orTop(path), kindName(t)))
			return node
		}
		for i, val := range n {
			n[i] = walk(val, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case string:
		if t.Kind() != reflect.String && t.Kind() != reflect.Interface {
			*errs = append(*errs, fmt.Errorf("%s: text is not %s", orTop(path), kindName(t)))
		}
	case bool:
		if t.Kind() != reflect.Bool && t.Kind() != reflect.Interface {
			*errs = append(*errs, fmt.Errorf("%s: true or false is not %s", orTop(path), kindName(t)))
		}
	case json.Number:
		if (t.Kind() < reflect.Int || t.Kind() > reflect.Float64) && t.Kind() != reflect.Interface {
			*errs = append(*errs, fmt.Errorf("%s: a number is not %s", orTop(path), kindName(t)))
		}
	}
	return node
}

// duration converts a duration string to nanoseconds. A bare number is refused: 3600 would otherwise be 3.6µs.
func duration(node any, path string, errs *[]error) any {
	switch d := node.(type) {
	case string:
		v, err := time.ParseDuration(d)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %q is not a duration such as 30s, 1h or 24h", path, bounded(d)))
			return node
		}
		return int64(v)
	case json.Number:
		hint := "write it with a unit such as 30s, 5m or 1h"
		if s, err := strconv.ParseInt(string(d), 10, 64); err == nil && s > 0 && s < 1<<33 {
			hint = "write " + durtext.Short(time.Duration(s)*time.Second) + " if you meant seconds"
		}
		*errs = append(*errs, fmt.Errorf("%s: %s has no unit; %s", path, bounded(string(d)), hint))
	case nil:
		return node
	default:
		*errs = append(*errs, fmt.Errorf("%s: not a duration such as 30s, 1h or 24h", path))
	}
	return node
}

func unknownKey(t reflect.Type, path, key string) error {
	best, bestDist := "", 1<<30
	for _, name := range jsonNames(t) {
		if d := editDistance(strings.ToLower(key), strings.ToLower(name)); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" && bestDist <= max(2, len(key)/3) {
		return fmt.Errorf("%s: unknown key; did you mean %s?", bounded(path), best)
	}
	return fmt.Errorf("%s: unknown key; known keys here: %s", bounded(path), strings.Join(jsonNames(t), ", "))
}

// jsonNames lists the keys a struct accepts, in declaration order.
func jsonNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, ok := jsonName(f); ok {
			names = append(names, name)
		} else if f.Anonymous && f.Type.Kind() == reflect.Struct {
			names = append(names, jsonNames(f.Type)...)
		}
	}
	return names
}

func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, ok := jsonName(f); ok && name == key {
			return f, true
		}
		if _, tagged := jsonName(f); !tagged && f.Anonymous && f.Type.Kind() == reflect.Struct {
			if g, ok := jsonField(f.Type, key); ok {
				return g, true
			}
		}
	}
	return reflect.StructField{}, false
}

// jsonName is the key of an exported field; false for untagged embedded structs and fields tagged "-".
func jsonName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("json")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() || (f.Anonymous && tag == "") {
		return "", false
	}
	if name == "" {
		name = f.Name
	}
	return name, true
}

// kindName names what a field holds in the user's terms, never a Go type.
func kindName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return "a duration such as 30s, 1h or 24h"
	case t.Kind() == reflect.String:
		return "text"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "a list"
	}
	return "a mapping"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// bounded cuts a user-written string so that it cannot flood a message.
func bounded(s string) string {
	const limit = 80
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
