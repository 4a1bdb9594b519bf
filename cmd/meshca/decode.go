package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// decodeStrict decodes YAML or JSON into v. Unknown keys are errors, and every time.Duration field also
// accepts Go duration strings such as "24h" or "90s".
func decodeStrict(data []byte, v any) error {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return err
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		return err
	}
	if err := convertDurations(tree, reflect.TypeOf(v), ""); err != nil {
		return err
	}
	js, err = json.Marshal(tree)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

var durationType = reflect.TypeOf(time.Duration(0))

// convertDurations rewrites, in place, the string values of the tree that land in time.Duration fields of t.
func convertDurations(node any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n := node.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return nil
		}
		for key, val := range n {
			f, ok := jsonField(t, key)
			if !ok {
				continue // the strict decoder reports it
			}
			if f.Type == durationType {
				if s, ok := val.(string); ok {
					d, err := time.ParseDuration(s)
					if err != nil {
						return fmt.Errorf("%s%s: %q is not a duration such as 30s, 1h or 24h", path, key, s)
					}
					n[key] = int64(d)
				}
				continue
			}
			if err := convertDurations(val, f.Type, path+key+"."); err != nil {
				return err
			}
		}
	case []any:
		if t.Kind() != reflect.Slice {
			return nil
		}
		for i, val := range n {
			if err := convertDurations(val, t.Elem(), fmt.Sprintf("%s%d.", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
