package main

// AdminConfig configures the revocation admin API.
type AdminConfig struct{}

// Validate reports every problem with c at once.
func (c *AdminConfig) Validate() error { return nil }
