package catest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// DryRun has the API server validate, default and admit every object (authorization, admission, schema,
	// field validation) without persisting anything.
	DryRun bool
	// FieldManager names the applier; default "meshca-test".
	FieldManager string
}

// DecodeYAML splits a YAML or JSON stream (documents separated by ---) into objects, skipping empty documents.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("catest: decoding YAML document %d: %w", len(objs)+1, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("catest: YAML document %d has no kind or apiVersion", len(objs)+1)
		}
		objs = append(objs, u)
	}
}

// Apply server-side applies objs in order with cfg's credentials (forcing conflicts, as kubectl apply
// --server-side --force-conflicts does) and returns the first error, naming the object. The REST mapping comes
// from discovery at the time of the call, so CRDs established just before are known.
func Apply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured, opts ApplyOptions) error {
	mapper, dyn, err := clients(cfg)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := applyOne(ctx, mapper, dyn, o, opts); err != nil {
			return err
		}
	}
	return nil
}

// RESTMapping returns the mapping of gvk from the API server's discovery, or an error wrapping
// meta.NoKindMatchError when the kind is not served (e.g. a CRD that is not installed).
func RESTMapping(cfg *rest.Config, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	mapper, _, err := clients(cfg)
	if err != nil {
		return nil, err
	}
	return mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
}

func clients(cfg *rest.Config) (meta.RESTMapper, dynamic.Interface, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		return nil, nil, fmt.Errorf("catest: API discovery: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return restmapper.NewDiscoveryRESTMapper(groups), dyn, nil
}

func applyOne(
	ctx context.Context,
	mapper meta.RESTMapper,
	dyn dynamic.Interface,
	o *unstructured.Unstructured,
	opts ApplyOptions,
) error {
	gvk := o.GroupVersionKind()
	id := fmt.Sprintf("%s %s", gvk.Kind, o.GetName())
	if ns := o.GetNamespace(); ns != "" {
		id = fmt.Sprintf("%s %s/%s", gvk.Kind, ns, o.GetName())
	}
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("catest: %s: %w", id, err)
	}
	var r dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			return fmt.Errorf("catest: %s: namespaced object without a namespace", id)
		}
		r = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	body, err := runtime.Encode(unstructured.UnstructuredJSONScheme, o)
	if err != nil {
		return fmt.Errorf("catest: %s: %w", id, err)
	}
	manager := opts.FieldManager
	if manager == "" {
		manager = "meshca-test"
	}
	force := true
	po := metav1.PatchOptions{FieldManager: manager, Force: &force, FieldValidation: "Strict"}
	if opts.DryRun {
		po.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := r.Patch(ctx, o.GetName(), types.ApplyPatchType, body, po); err != nil {
		return fmt.Errorf("catest: applying %s: %w", id, err)
	}
	return nil
}
