// Package durtext writes durations the way meshca's configuration file reads them and its messages show them:
// without zero components (1h, 90s, 1h30m, not 1h0m0s). It is the one formatter for the config printer, the
// configuration errors and the policy's explanations, so that a value reads the same everywhere.
package durtext
