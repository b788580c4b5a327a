package contract

import "unicode/utf8"

// ClipMax is the most of a client's input an error message quotes.
const ClipMax = 200

// Clip cuts s, a piece of a client's input quoted in an error, to at most
// ClipMax bytes (on a rune boundary), marking the cut with "…".
func Clip(s string) string {
	if len(s) <= ClipMax {
		return s
	}
	cut := ClipMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ClipProblem clips every field of p that may quote input.
func ClipProblem(p Problem) Problem {
	p.Path, p.Component, p.IP = Clip(p.Path), Clip(p.Component), Clip(p.IP)
	return p
}
