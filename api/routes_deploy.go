package api

import "github.com/go-chi/chi/v5"

// deployRoutes registers the deploy routes under /deployment-engine.
func (s *server) deployRoutes(r chi.Router) {}
