package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/meshca/meshca/internal/durtext"
)

func configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or print a configuration file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("a subcommand is required: validate or print")
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate FILE",
		Short: "Run every check 'serve --config FILE' runs before it binds or connects anything",
		Long: "validate decodes FILE strictly and runs the same checks as serve (LoadConfig: unknown keys, " +
			"durations with units, every section's rules, lifetimes, listen addresses), printing every problem " +
			"with its key path. It contacts no backend and no API server.",
		Args: cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if _, err := LoadConfig(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return nil
		}),
	})
	cmd.AddCommand(printCommand())
	return cmd
}

// encodeConfig writes c as YAML with durations as strings such as 24h, so that the output decodes again.
func encodeConfig(c *Config) ([]byte, error) {
	js, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		return nil, err
	}
	js, err = json.Marshal(durationsToText(tree, reflect.TypeOf(c)))
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(js)
}

// durationsToText turns the nanosecond numbers of duration fields back into duration strings.
func durationsToText(node any, t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		if f, ok := node.(float64); ok {
			return durtext.Short(time.Duration(f))
		}
		return node
	}
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			switch t.Kind() {
			case reflect.Struct:
				if f, ok := jsonField(t, k); ok {
					n[k] = durationsToText(v, f.Type)
				}
			case reflect.Map:
				n[k] = durationsToText(v, t.Elem())
			}
		}
	case []any:
		if t.Kind() == reflect.Slice {
			for i, v := range n {
				n[i] = durationsToText(v, t.Elem())
			}
		}
	}
	return node
}
