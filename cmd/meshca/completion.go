package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// strictCompletion makes cobra's completion command refuse what it would otherwise answer with its help and
// exit 0: no shell, or a shell it does not know (meshca completion tcsh).
func strictCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown shell %q: use bash, zsh, fish or powershell", bounded(args[0]))
			}
			return nil
		}
		c.RunE = func(*cobra.Command, []string) error {
			return usageError{errors.New("a shell is required: bash, zsh, fish or powershell")}
		}
	}
}
