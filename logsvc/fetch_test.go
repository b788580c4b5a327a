package logsvc

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseFetch(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	long := strings.Repeat("x", fetchChunk)
	tests := []struct {
		name, out string
		lines     []string
		next      int64
		bad       bool
	}{
		{name: "complete lines", out: "100\n10\n" + b64("a\nb\r\n") + "\n", lines: []string{"a", "b"}, next: 15},
		{name: "a partial last line waits", out: "100\n0\n" + b64("a\nhalf") + "\n", lines: []string{"a"}, next: 2},
		{name: "nothing new", out: "7\n7\n\n", next: 7},
		{name: "a line longer than a chunk is cut", out: "9999999\n0\n" + b64(long) + "\n", lines: []string{long}, next: fetchChunk},
		{name: "not base64", out: "10\n0\n!!!\n", bad: true},
		{name: "offset past the size", out: "10\n11\n\n", bad: true},
		{name: "more data than the file holds", out: "3\n0\n" + b64("abcdef\n") + "\n", bad: true},
		{name: "garbage", out: "no\n", bad: true},
		{name: "negative offset", out: "10\n-1\n\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFetch(tt.out)
			if (err != nil) != tt.bad {
				t.Fatalf("err %v, bad %v", err, tt.bad)
			}
			if tt.bad {
				return
			}
			if f.next != tt.next || strings.Join(f.lines, "|") != strings.Join(tt.lines, "|") {
				t.Fatalf("got lines %q next %d, want %q next %d", f.lines, f.next, tt.lines, tt.next)
			}
		})
	}
}
