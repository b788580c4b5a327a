package logsvc

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/deployment-engine/engine/services/contract"
)

// LocalLog is the engine's own operations log; it always exists.
const LocalLog = "local.log"

// MaxRead caps one read of a log over the bus.
const MaxRead = contract.LogReadMax

// nameRe is the only shape a log name may have: a current log
// (web_0.log) or one of its rotated predecessors (web_0.log.1, newest
// first). Nothing else — no separator, no dot run, no NUL, no upper case,
// no percent sign — so no encoding of a path can pass it.
var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,80}\.log(\.[1-9][0-9]?)?$`)

// ValidName tells whether name may be a log in the store.
func ValidName(name string) bool { return nameRe.MatchString(name) }

// ErrBadName is a name that can never be a log; ErrNotFound one that could
// be but is not (or is not a regular file).
var (
	ErrBadName  = errors.New("logsvc: bad log name")
	ErrNotFound = errors.New("logsvc: no such log")
)

// store is the log directory. Only the ingest goroutine writes; reads may
// come from any goroutine since they open their own handles.
type store struct {
	root     *os.Root
	maxBytes int64
	keep     int
	files    map[string]*logFile
	onRotate func()
	// marks holds, for each file the current batch wrote to, its size
	// before the batch: what rollback cuts it back to.
	marks map[string]int64
	// failFlushes makes the next flushes fail after writing, for tests.
	failFlushes atomic.Int32
}

// logFile is one open log. Its batch's lines wait in pending until the
// batch is flushed; an idle file holds no buffer, so a store of a thousand
// instances' logs costs little more than their descriptors (a 64 KiB
// bufio.Writer per file held 70 MB at 1,000 instances).
type logFile struct {
	f       *os.File
	pending []byte
	size    int64
}

func openStore(dir string, maxBytes int64, keep int) (*store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("logsvc: create store %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("logsvc: open store %s: %w", dir, err)
	}
	return &store{root: root, maxBytes: maxBytes, keep: keep, files: map[string]*logFile{}, onRotate: func() {}, marks: map[string]int64{}}, nil
}

// openChecked opens name inside the root and makes sure it is a regular
// file that is not a symlink: os.Root keeps a symlink from escaping the
// store, but one planted inside it must not alias another log either. The
// Lstat before and the Fstat after must name the same file, so a swap in
// between is caught too.
func (s *store) openChecked(name string, flag int, perm fs.FileMode) (*os.File, error) {
	if !ValidName(name) {
		return nil, ErrBadName
	}
	if fi, err := s.root.Lstat(name); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s is not a regular file", ErrNotFound, name)
		}
	} else if !errors.Is(err, fs.ErrNotExist) || flag&os.O_CREATE == 0 {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("logsvc: stat %s: %w", name, err)
	}
	// O_NONBLOCK: a FIFO swapped in after the Lstat must not hang us.
	f, err := s.root.OpenFile(name, flag|syscall.O_NONBLOCK, perm)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("logsvc: open %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("logsvc: stat %s: %w", name, err)
	}
	li, err := s.root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() || !os.SameFile(fi, li) {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrNotFound, name)
	}
	// A second hard link makes the file another's too (one planted from
	// outside the store, say): the store writes and serves only its own.
	if hardLinked(fi) {
		f.Close()
		return nil, fmt.Errorf("%w: %s has other hard links", ErrNotFound, name)
	}
	return f, nil
}

func (s *store) file(name string) (*logFile, error) {
	if lf := s.files[name]; lf != nil {
		return lf, nil
	}
	f, err := s.openChecked(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("logsvc: stat %s: %w", name, err)
	}
	lf := &logFile{f: f, size: fi.Size()}
	s.files[name] = lf
	return lf, nil
}

// write appends one line (with its newline) to name, rotating first when
// the line would take the file past maxBytes.
func (s *store) write(name string, line []byte) error {
	lf, err := s.file(name)
	if err != nil {
		return err
	}
	if _, ok := s.marks[name]; !ok {
		s.marks[name] = lf.size
	}
	if lf.size > 0 && lf.size+int64(len(line)) > s.maxBytes {
		if err := s.rotate(name); err != nil {
			return err
		}
		if lf, err = s.file(name); err != nil {
			return err
		}
		// What went before is flushed into name.1 and stays there.
		s.marks[name] = 0
	}
	lf.pending = append(lf.pending, line...)
	lf.size += int64(len(line))
	return nil
}

// rotate shifts name.i to name.i+1 (dropping name.keep) and name to name.1.
func (s *store) rotate(name string) error {
	lf := s.files[name]
	delete(s.files, name)
	if lf != nil {
		_, ferr := lf.f.Write(lf.pending)
		cerr := lf.f.Close()
		if err := errors.Join(ferr, cerr); err != nil {
			return fmt.Errorf("logsvc: rotate %s: %w", name, err)
		}
	}
	old := func(i int) string { return name + "." + strconv.Itoa(i) }
	if err := s.root.Remove(old(s.keep)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("logsvc: rotate %s: %w", name, err)
	}
	for i := s.keep - 1; i >= 1; i-- {
		if err := s.root.Rename(old(i), old(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("logsvc: rotate %s: %w", name, err)
		}
	}
	if err := s.root.Rename(name, old(1)); err != nil {
		return fmt.Errorf("logsvc: rotate %s: %w", name, err)
	}
	s.onRotate()
	return nil
}

// flush hands every buffered line to the kernel: past this point a crash
// of the engine (kill -9) loses none of them.
func (s *store) flush() error {
	var errs []error
	for name, lf := range s.files {
		if len(lf.pending) == 0 {
			continue
		}
		_, err := lf.f.Write(lf.pending)
		lf.pending = nil
		if err != nil {
			errs = append(errs, fmt.Errorf("logsvc: flush %s: %w", name, err))
			s.drop(name)
			continue
		}
	}
	if len(errs) == 0 && s.failFlushes.Load() > 0 {
		s.failFlushes.Add(-1)
		errs = append(errs, errors.New("logsvc: injected flush failure"))
	}
	return errors.Join(errs...)
}

// begin starts a batch.
func (s *store) begin() { clear(s.marks) }

// rollback undoes the current batch: buffered lines are dropped and every
// file it wrote to is cut back to its size before the batch.
func (s *store) rollback(log *slog.Logger) {
	for name, size := range s.marks {
		s.drop(name)
		f, err := s.openChecked(name, os.O_WRONLY, 0)
		if err == nil {
			err = errors.Join(f.Truncate(size), f.Close())
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			log.Error("undo a failed batch", "log", name, "err", err)
		}
	}
	clear(s.marks)
}

// drop forgets a file whose write failed, and the lines it had not
// written yet: the next line reopens the file.
func (s *store) drop(name string) {
	if lf := s.files[name]; lf != nil {
		_ = lf.f.Close()
		delete(s.files, name)
	}
}

func (s *store) close() error {
	err := s.flush()
	for _, lf := range s.files {
		err = errors.Join(err, lf.f.Close())
	}
	s.files = map[string]*logFile{}
	return errors.Join(err, s.root.Close())
}

// list returns every log's name: local.log first, then the rest sorted.
func (s *store) list() ([]string, error) {
	d, err := s.root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("logsvc: open store: %w", err)
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("logsvc: list store: %w", err)
	}
	names := []string{LocalLog}
	for _, e := range ents {
		if e.Name() != LocalLog && ValidName(e.Name()) && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil && hardLinked(fi) {
				continue
			}
			names = append(names, e.Name())
		}
	}
	sort.Strings(names[1:])
	return names, nil
}

// read returns the file's size and up to n bytes from off (n capped at
// MaxRead; n <= 0 means MaxRead).
func (s *store) read(name string, off, n int64) (int64, []byte, error) {
	if off < 0 {
		return 0, nil, fmt.Errorf("%w: negative offset", ErrBadName)
	}
	if n <= 0 || n > MaxRead {
		n = MaxRead
	}
	f, err := s.openChecked(name, os.O_RDONLY, 0)
	if err != nil {
		if name == LocalLog && errors.Is(err, ErrNotFound) {
			return 0, []byte{}, nil
		}
		return 0, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("logsvc: stat %s: %w", name, err)
	}
	size := fi.Size()
	if off >= size {
		return size, []byte{}, nil
	}
	n = min(n, size-off)
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, fmt.Errorf("logsvc: read %s: %w", name, err)
	}
	return size, buf[:k], nil
}

// hardLinked tells whether the file has more than one name.
func hardLinked(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 1
}
