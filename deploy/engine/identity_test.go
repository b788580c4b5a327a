package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
)

// The engine's id survives the loss of either copy: the file in the data
// dir or the store. Two copies that disagree stop the start, unless
// --engine-id says which.
func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		name, file, store, flag string
		want, wantErr           string
	}{
		{name: "first start makes one", want: "e-"},
		{name: "store lost: the file's", file: "e-file", want: "e-file"},
		{name: "file lost: the store's", store: "e-store", want: "e-store"},
		{name: "both agree", file: "e-same", store: "e-same", want: "e-same"},
		{name: "they disagree", file: "e-one", store: "e-two", wantErr: "--engine-id"},
		{name: "the flag decides", file: "e-one", store: "e-two", flag: "e-two", want: "e-two"},
		{name: "a bad flag", flag: "e one/../x", wantErr: "letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := bustest.Start(t, bus.ServerOptions{})
			dir := t.TempDir()
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, idFile), []byte(tc.file+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.store != "" {
				if _, err := b.Res.Engine.Put(ctx, "id", []byte(tc.store)); err != nil {
					t.Fatal(err)
				}
			}
			id, err := identity(ctx, b.Res, dir, tc.flag)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error saying %q", id, err, tc.wantErr)
				}
				return
			}
			if err != nil || !strings.HasPrefix(id, tc.want) {
				t.Fatalf("got %q, %v; want %q", id, err, tc.want)
			}
			// Both copies now hold it.
			f, _ := os.ReadFile(filepath.Join(dir, idFile))
			e, err := b.Res.Engine.Get(ctx, "id")
			if err != nil || strings.TrimSpace(string(f)) != id || string(e.Value()) != id {
				t.Fatalf("file %q, store %v %v; want both %q", f, e, err, id)
			}
		})
	}
}

// The data dir holds one engine's embedded store at a time.
func TestDataLock(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockData(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockData(dir); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	again, err := lockData(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}
