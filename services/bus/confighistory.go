package bus

import (
	"encoding/json"
	"fmt"

	"github.com/deployment-engine/engine/services/contract"
)

// DecodeConfig reads a config as EncodeConfig wrote it, its secrets
// opened: the config history keeps each deployment's config so.
func DecodeConfig(b []byte) (contract.Config, error) {
	var cfg contract.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return contract.Config{}, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	if err := openSecrets(&cfg); err != nil {
		return contract.Config{}, err
	}
	return cfg, nil
}
