package logsvc

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// list answers de.cmd.logs.list: every log's name, local.log first.
func (s *Service) list(_ context.Context, _ micro.Request) (int, any, error) {
	names, err := s.st.list()
	if err != nil {
		return 0, nil, err
	}
	return 200, names, nil
}

// read answers de.cmd.logs.read.
func (s *Service) read(_ context.Context, req micro.Request) (int, any, error) {
	var r contract.LogRead
	if err := kit.Decode(req, &r); err != nil {
		return 0, nil, err
	}
	if !ValidName(r.Name) {
		return 0, nil, kit.Errorf(400, "bad log name %q: a log is named like web_0.log", contract.Clip(r.Name))
	}
	if r.Offset < 0 {
		return 0, nil, kit.Errorf(400, "bad offset %d", r.Offset)
	}
	size, data, err := s.st.read(r.Name, r.Offset, r.Length)
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, nil, kit.Errorf(404, "no log %q", contract.Clip(r.Name))
	case errors.Is(err, ErrBadName):
		return 0, nil, kit.Errorf(400, "bad log name %q", contract.Clip(r.Name))
	case err != nil:
		return 0, nil, err
	}
	return 200, contract.LogChunk{Name: r.Name, Size: size, Offset: r.Offset, Data: data}, nil
}
