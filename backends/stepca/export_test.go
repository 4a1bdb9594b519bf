package stepca

// SetTokenHook lets tests replace each token the backend mints before it is sent, e.g. to replay one.
func SetTokenHook(b *Backend, hook func(token string) string) { b.tokenHook = hook }
