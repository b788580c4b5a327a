package installer

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

func TestStreamTail(t *testing.T) {
	long := strings.Repeat("x", contract.MaxStreamBytes-1) // with its newline, exactly the bound
	tests := []struct {
		name     string
		lines    []string
		want     string
		wantCut  string
		wantSize int
		max      int
	}{
		{name: "empty", want: ""},
		{name: "short", lines: []string{"one", "two"}, want: "one\ntwo\n"},
		{name: "at the bound", lines: []string{long}, want: long + "\n"},
		{name: "one byte over", lines: []string{"a", long}, wantCut: "[2 bytes cut: the last 65536 follow]\n", wantSize: contract.MaxStreamBytes},
		{name: "far over", lines: []string{long, long, long, "end"}, wantCut: "[131076 bytes cut: the last 65536 follow]\n", wantSize: contract.MaxStreamBytes},
		{name: "a smaller bound", max: 4, lines: []string{"abc", "defg"}, wantCut: "[5 bytes cut: the last 4 follow]\n", wantSize: 4},
		{name: "a bound over the most", max: 1 << 30, lines: []string{"a", long}, wantCut: "[2 bytes cut: the last 65536 follow]\n", wantSize: contract.MaxStreamBytes},
		{name: "a rune is never split", lines: []string{"é" + long}, wantCut: "[2 bytes cut: the last 65536 follow]\n", wantSize: contract.MaxStreamBytes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := streamTail{max: tc.max}
			for _, l := range tc.lines {
				st.add(l)
			}
			got := st.String()
			if tc.wantCut == "" {
				if got != tc.want {
					t.Errorf("got %q, want %q", clip(got), clip(tc.want))
				}
				return
			}
			if !strings.HasPrefix(got, tc.wantCut) {
				t.Fatalf("got %q..., want it to start %q", clip(got), tc.wantCut)
			}
			if body := strings.TrimPrefix(got, tc.wantCut); len(body) != tc.wantSize || !strings.HasSuffix(body, "\n") {
				t.Errorf("kept %d bytes, want %d ending in a newline", len(body), tc.wantSize)
			}
		})
	}
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
