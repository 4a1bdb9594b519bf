// Package nslabels keeps the labels of every Namespace of a cluster in memory (a client-go informer), for
// policy rules that select namespaces by label. It lives apart from package policy so that the policy
// engine, and the issuance core that imports it, stay free of client-go.
package nslabels
