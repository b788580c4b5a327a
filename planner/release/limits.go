package release

import (
	"fmt"
	"io"
	"strings"
	"syscall"
)

// Limits bound what one upload may cost the engine in disk, memory and
// work; each is checked while the tarball streams, before the bytes past
// it are written or kept. A zero field takes its default.
//
// The defaults follow what real releases weigh. cf-release, the largest the
// engine deploys, is a tarball of a few GB whose files are gzip'd tarballs
// already, so it unpacks to about its own size; its index (release.MF at
// v194) is 19 KB and its largest job specs and templates tens of KB. A
// compression bomb unpacks to a thousand times its size.
type Limits struct {
	// Upload bounds the tarball as sent, compressed (default 8 GiB).
	Upload int64
	// Unpacked bounds the tarball unpacked, every entry together and so
	// any one package (default 8 GiB).
	Unpacked int64
	// Expansion bounds how many times its compressed size the tarball may
	// unpack to, beyond its first 64 MiB (default 8).
	Expansion int64
	// Text bounds each template and monit file of a job, which the engine
	// keeps in memory (default 1 MiB; cf's largest template, capi's
	// cloud_controller_ng.yml.erb, is 27 KB). release.MF and each job.MF,
	// which it parses as YAML at up to 130 times their size in memory, get a
	// quarter of it (capi's largest spec is 64 KB). A job's tarball may
	// unpack to 4 times Text and the jobs of one release keep at most 32
	// times Text together.
	Text int64
	// Files bounds the entries of the release tarball and of each job's
	// (default 10,000; cf-release has a few hundred).
	Files int
	// KeepFree is the space on the store's file system that an upload
	// must leave free, for the engine's own stores and logs (default 256
	// MiB).
	KeepFree int64
}

// expansionAllowance is what a tarball may unpack to before Expansion
// applies: a small release's index and license compress well.
const expansionAllowance = 64 << 20

// WithDefaults fills the zero fields of l.
func (l Limits) WithDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Upload, 8<<30)
	def(&l.Unpacked, 8<<30)
	def(&l.Expansion, 8)
	def(&l.Text, 1<<20)
	def(&l.KeepFree, 256<<20)
	if l.Files <= 0 {
		l.Files = 10000
	}
	return l
}

// yamlMax bounds release.MF and each job.MF.
func (l Limits) yamlMax() int64 { return l.Text / 4 }

// jobMax bounds one job's tarball, compressed as stored and unpacked.
func (l Limits) jobMax() int64 { return 4 * l.Text }

// jobsMax bounds what the jobs of one release keep in memory together.
func (l Limits) jobsMax() int64 { return 32 * l.Text }

// TooLarge is an upload past one of the store's limits; nothing of it is
// kept. File names the entry at fault ("" for the tarball as a whole),
// Limit the limit and Flag the serve flag that raises it.
type TooLarge struct {
	File  string
	Limit string
	Flag  string
}

func (e *TooLarge) Error() string {
	s := "release refused: "
	if e.File != "" {
		s += e.File + ": "
	}
	return s + e.Limit + " (raise it with --" + e.Flag + ")"
}

// The refusals, one per limit; the flags are the serve command's.
func (l Limits) tooBigUpload() *TooLarge {
	return &TooLarge{Limit: "the upload is larger than " + size(l.Upload), Flag: "release-max-mb"}
}

func (l Limits) tooBigUnpacked(file string) *TooLarge {
	return &TooLarge{File: file, Limit: "the release unpacks to more than " + size(l.Unpacked), Flag: "release-max-unpacked-mb"}
}

func (l Limits) tooBigExpansion() *TooLarge {
	return &TooLarge{Limit: fmt.Sprintf("the release unpacks to more than %d times its compressed size beyond its first %s, as a compression bomb does",
		l.Expansion, size(expansionAllowance)), Flag: "release-max-expansion"}
}

func (l Limits) tooBigText(file string) *TooLarge {
	return &TooLarge{File: file, Limit: "larger than " + size(l.Text) + ", the limit of each template and monit file", Flag: "release-max-text-kb"}
}

func (l Limits) tooBigYAML(file string) *TooLarge {
	return &TooLarge{File: file, Limit: "larger than " + size(l.yamlMax()) + ", the limit of release.MF and each job.MF (a quarter of that of each template)", Flag: "release-max-text-kb"}
}

func (l Limits) tooBigJob(file string) *TooLarge {
	return &TooLarge{File: file, Limit: "the job is larger than " + size(l.jobMax()) + " (4 times the limit of each template)", Flag: "release-max-text-kb"}
}

func (l Limits) tooBigJobs() *TooLarge {
	return &TooLarge{Limit: "the jobs' specs, monit files and templates together are larger than " + size(l.jobsMax()) + " (32 times the limit of each template)", Flag: "release-max-text-kb"}
}

func (l Limits) tooManyFiles(file string) *TooLarge {
	return &TooLarge{File: file, Limit: fmt.Sprintf("more than %d entries in the tarball", l.Files), Flag: "release-max-files"}
}

// NoSpace is an upload that would leave the store's file system with
// less than Limits.KeepFree; nothing of it is kept.
type NoSpace struct {
	File             string
	Need, Free, Keep int64
}

func (e *NoSpace) Error() string {
	return fmt.Sprintf("release refused: %s needs %s on the engine's disk, which has %s free and keeps %s free for the engine; free some space (older releases?) and upload again",
		e.File, size(e.Need), size(e.Free), size(e.Keep))
}

// size writes n bytes for a person: in GiB, MiB or KiB when whole, else bytes.
func size(n int64) string {
	for _, u := range []struct {
		unit string
		n    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return fmt.Sprintf("%d %s", n/u.n, u.unit)
		}
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// counter reads r, counting, and fails from the first read that takes the
// count past what check allows on, with check's refusal, whatever the
// readers above it (gzip, tar) make of that error.
type counter struct {
	r     io.Reader
	n     int64
	check func(n int64) *TooLarge
	err   *TooLarge
}

func (c *counter) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.err = c.check(c.n); c.err != nil {
		return n, c.err
	}
	return n, err
}

// freeSpace is what an unprivileged writer may still use on dir's file
// system.
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("release store: free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil //nolint:gosec // block counts fit in int64
}

// sparse tells whether a tar entry is a sparse file, whose logical size the
// tar reader fills with zeros it never read from the stream.
func sparse(paxRecords map[string]string) bool {
	for k := range paxRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
