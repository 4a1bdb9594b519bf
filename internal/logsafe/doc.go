// Package logsafe makes caller-supplied strings safe to put in logs, audit records, metrics and error
// messages: bounded in length and escaped, so that a caller chooses what it sends but not how much of
// meshca's log it fills nor what it looks like there.
package logsafe
