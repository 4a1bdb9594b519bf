package main

import (
	"errors"
	"fmt"
)

// compositeProblems reports a composite CA without the switch that lets CSRs reach it, and the switch without
// a composite CA: either way every composite CSR would be refused, so the configuration is refused instead.
func (c *Config) compositeProblems() error {
	var dirs []string
	for n, b := range c.Backends {
		if b.File != nil && b.File.CompositeDir != "" {
			dirs = append(dirs, fmt.Sprintf("backends[%d].file.compositeDir", n))
		}
	}
	switch {
	case c.Issuance.ExperimentalComposite && len(dirs) == 0:
		return errors.New("issuance.experimentalComposite: no backend has a composite CA; set " +
			"backends[].file.compositeDir to a cacerts directory with a composite ML-DSA-65+ECDSA-P256 CA " +
			"('meshca init' makes one)")
	case !c.Issuance.ExperimentalComposite && len(dirs) > 0:
		return fmt.Errorf("%s is set but issuance.experimentalComposite is false, so no composite CSR would "+
			"reach it; set issuance.experimentalComposite: true or remove it", dirs[0])
	}
	return nil
}
