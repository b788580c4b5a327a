package api

import "github.com/go-chi/chi/v5"

// monitorRoutes registers the monitor routes under /deployment-engine.
func (s *server) monitorRoutes(r chi.Router) {}
