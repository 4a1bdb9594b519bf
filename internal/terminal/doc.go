// Package terminal tells whether output goes to a terminal, so that commands colour or animate their output
// there and keep it plain when it is piped or redirected.
package terminal
