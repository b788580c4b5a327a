package engine

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/deployment-engine/engine/planner/catalog"
)

// CatalogSealsDir holds, in the data dir, the seal of every catalog the
// engine read from --catalog DIR: the sums it was installed with, under a
// key derived from the engine's.
const CatalogSealsDir = "catalog-seals"

// checkCatalogSeals holds every catalog read from dir to the sums it was
// installed with, sealing those the engine has not seen yet. Embedded
// catalogs are part of the binary and are trusted as they are.
func checkCatalogSeals(catalogs map[string]*catalog.Catalog, dir, dataDir string, log *slog.Logger) error {
	if dir == "" {
		return nil
	}
	key, err := loadEngineKey(dataDir)
	if err != nil {
		return err
	}
	seals, err := catalog.NewSeals(filepath.Join(dataDir, CatalogSealsDir), key.derive("catalog-seal"))
	if err != nil {
		return err
	}
	for name, c := range catalogs {
		first, err := seals.Check(c)
		if err != nil {
			return fmt.Errorf("--catalog %s: %w", dir, err)
		}
		if first {
			log.Warn("catalog sealed: its files as they are now are the ones this engine deploys", "catalog", name, "dir", dir)
		}
	}
	return nil
}
