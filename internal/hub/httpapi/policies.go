package httpapi

// SetPolicies replaces the shared access policies the server authenticates against (after a
// key regeneration): requests that arrive afterwards see the new keys, tokens signed with a
// replaced key are rejected. The slice is copied.
func (s *Server) SetPolicies(ps []Policy) {
	cp := append([]Policy(nil), ps...)
	s.policies.Store(&cp)
}

// currentPolicies is the policy list in force: the last SetPolicies, else Options.Policies.
func (s *Server) currentPolicies() []Policy {
	if p := s.policies.Load(); p != nil {
		return *p
	}
	return s.opts.Policies
}
