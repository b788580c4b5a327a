package execd

import (
	"reflect"
	"testing"
)

// os-release is read as a shell sources it.
func TestOSRelease(t *testing.T) {
	got := osRelease([]byte(`PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME='Debian GNU/Linux'
VERSION_ID="12"
ID=debian
# a comment
HOME_URL="https://www.debian.org/"
ESCAPED="a \"quoted\" \$word"
`))
	want := map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "NAME": "Debian GNU/Linux", "VERSION_ID": "12", "ID": "debian",
		"HOME_URL": "https://www.debian.org/", "ESCAPED": `a "quoted" $word`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func FuzzOSRelease(f *testing.F) {
	f.Add([]byte("ID=debian\nVERSION_ID=\"12\"\n"))
	f.Add([]byte("X=\"\\\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _ = osRelease(b) })
}
