package api

import "github.com/go-chi/chi/v5"

// logRoutes registers the logs routes under /deployment-engine.
func (s *server) logRoutes(r chi.Router) {}
