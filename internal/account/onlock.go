package account

// OnLock registers fn to be called with an account's ID after the account
// was locked through this service on this node: by staff or the command
// line (Lock) or by its owner's "this wasn't me" link (SecureAccount).
// Services that cache what an account may do (API keys, whose lookups are
// cached per node) drop their copy then, instead of within their cache
// TTL. Register every hook before serving requests; fn must be fast and
// must not call back into the service.
func (s *Service) OnLock(fn func(accountID string)) {
	s.onLock = append(s.onLock, fn)
}

// locked tells the OnLock hooks.
func (s *Service) locked(accountID string) {
	for _, fn := range s.onLock {
		fn(accountID)
	}
}
