package installer

import (
	"bufio"
	"slices"
	"strings"
	"testing"
)

// The chain's "alive" line, written past the tee, is taken out of the
// stream wherever it lands, and a line it cut in two comes out whole.
func TestJoinerTakesOutAlive(t *testing.T) {
	const n = "DEnonce"
	cases := []struct {
		name, stream string
		want         []string
	}{
		{"between lines", "a\nDEnonce alive\nb\n", []string{"a", "b"}},
		{"inside a line", "ab" + n + " alive\ncd\n", []string{"abcd"}},
		{"inside a control line", "DEno" + n + " alive\nnce begin 1\n", []string{n + " begin 1"}},
		{"twice in a line", "a" + n + " alive\nb" + n + " alive\nc\n", []string{"abc"}},
		{"a control line", n + " begin 0\n", []string{n + " begin 0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := joiner{alive: n + " alive"}
			var got []string
			sc := bufio.NewScanner(strings.NewReader(c.stream))
			for sc.Scan() {
				if text, ok := j.line(sc.Text()); ok {
					got = append(got, text)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("lines %q, want %q", got, c.want)
			}
		})
	}
}
