package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// logNameFromBody reads the name of PUT /download: bare (local.log),
// quoted ("local.log"), wrapped as in the manual ({ "local.log" }) or as
// a JSON object ({"name": "local.log"}).
func logNameFromBody(body []byte) string {
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] == '{' {
		var obj struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(b, &obj) == nil && obj.Name != "" {
			return strings.TrimSpace(obj.Name)
		}
		b = bytes.TrimSpace(bytes.TrimSuffix(b[1:], []byte("}")))
	}
	if len(b) > 0 && b[0] == '"' {
		var str string
		if json.Unmarshal(b, &str) == nil {
			return strings.TrimSpace(str)
		}
	}
	return strings.TrimSpace(strings.Trim(string(b), `"'`))
}

// readLog asks the log service for one chunk. A reply other than 200
// comes back as rep with ok false; err is for the bus.
func (s *server) readLog(ctx context.Context, name string, off int64) (contract.LogChunk, kit.Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	rep, err := kit.Request(ctx, s.o.NC, subject.LogsRead(), contract.LogRead{Name: name, Offset: off, Length: contract.LogReadMax})
	if err != nil || rep.Code != http.StatusOK {
		return contract.LogChunk{}, rep, err
	}
	var out contract.LogChunk
	if err := json.Unmarshal(rep.Body, &out); err != nil {
		return contract.LogChunk{}, rep, fmt.Errorf("decode logs.read reply: %w", err)
	}
	return out, rep, nil
}

// firstChunk reads the start of a log and, when that fails, writes the
// answer itself and returns false.
func (s *server) firstChunk(w http.ResponseWriter, r *http.Request, name string) (contract.LogChunk, bool) {
	if name == "" {
		writeError(w, http.StatusBadRequest, "no log name: send one of the names GET /deployment-engine/download lists")
		return contract.LogChunk{}, false
	}
	first, rep, err := s.readLog(r.Context(), name, 0)
	switch {
	case err == nil && rep.Code == http.StatusOK:
		return first, true
	case err == nil:
		writeReply(w, rep)
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "the engine did not answer in time; try again")
	default:
		s.log.Error("read log", "log", name, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the log service is not answering; check the engine's log")
	}
	return contract.LogChunk{}, false
}

// downloadLog answers PUT /download: the whole log as text, as large as it
// was when the download began, fetched in 512 KiB chunks.
func (s *server) downloadLog(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	name := logNameFromBody(body)
	first, ok := s.firstChunk(w, r, name)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	chunk, off := first, int64(0)
	for {
		data := chunk.Data[:min(int64(len(chunk.Data)), max(first.Size-off, 0))]
		if len(data) == 0 {
			return
		}
		if _, err := w.Write(data); err != nil {
			return
		}
		off += int64(len(data))
		if off >= first.Size {
			return
		}
		var rep kit.Reply
		var err error
		if chunk, rep, err = s.readLog(r.Context(), name, off); err != nil || rep.Code != http.StatusOK {
			// Headers are gone: all that is left is to cut the answer short.
			s.log.Warn("log download cut short", "log", name, "offset", off, "code", rep.Code, "err", err)
			return
		}
	}
}

// busFile is a log read over the bus as an io.ReadSeeker, one chunk at a
// time, for http.ServeContent (ranges, HEAD). Its size is fixed at the
// first read.
type busFile struct {
	ctx  context.Context
	s    *server
	name string
	size int64
	off  int64
	buf  []byte
	at   int64 // offset of buf
}

func (f *busFile) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	if f.off < f.at || f.off >= f.at+int64(len(f.buf)) {
		c, rep, err := f.s.readLog(f.ctx, f.name, f.off)
		if err != nil {
			return 0, err
		}
		if rep.Code != http.StatusOK {
			return 0, fmt.Errorf("read %s at %d: code %d", f.name, f.off, rep.Code)
		}
		if len(c.Data) == 0 {
			return 0, io.ErrUnexpectedEOF // it shrank: rotated meanwhile
		}
		f.buf, f.at = c.Data, f.off
	}
	n := copy(p, f.buf[f.off-f.at:])
	n = int(min(int64(n), f.size-f.off))
	f.off += int64(n)
	return n, nil
}

func (f *busFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	f.off = offset
	return offset, nil
}

// serveLog answers GET /logs/{name}, with Range support.
func (s *server) serveLog(w http.ResponseWriter, r *http.Request) {
	name, err := url.PathUnescape(chi.URLParam(r, "name"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad log name")
		return
	}
	first, ok := s.firstChunk(w, r, name)
	if !ok {
		return
	}
	f := &busFile{ctx: r.Context(), s: s, name: name, size: first.Size, buf: first.Data}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	http.ServeContent(w, r, name, time.Time{}, f)
}

// logBundle answers GET /logs.tar.gz: every log in one tar.gz, streamed.
// Each entry holds its log as large as it was when its turn came.
func (s *server) logBundle(w http.ResponseWriter, r *http.Request) {
	rep, ok := s.request(w, r, subject.LogsList(), nil)
	if !ok {
		return
	}
	var names []string
	if rep.Code != http.StatusOK {
		writeReply(w, rep)
		return
	}
	if err := json.Unmarshal(rep.Body, &names); err != nil {
		s.log.Error("decode logs.list reply", "err", err)
		writeError(w, http.StatusBadGateway, "the log service answered something unreadable; check the engine's log")
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="deployment-engine-logs.tar.gz"`)
	w.WriteHeader(http.StatusOK)
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	now := time.Now()
	for _, name := range names {
		if err := s.bundleOne(r.Context(), tw, name, now); err != nil {
			// Leave the archive unterminated, so the client sees it is cut.
			s.log.Warn("log bundle cut short", "log", name, "err", err)
			return
		}
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		s.log.Warn("log bundle", "err", err)
	}
}

func (s *server) bundleOne(ctx context.Context, tw *tar.Writer, name string, now time.Time) error {
	chunk, rep, err := s.readLog(ctx, name, 0)
	if err != nil {
		return err
	}
	if rep.Code == http.StatusNotFound {
		return nil // rotated away since the list
	}
	if rep.Code != http.StatusOK {
		return fmt.Errorf("read %s: code %d", name, rep.Code)
	}
	size := chunk.Size
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o640, Size: size, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	off := int64(0)
	for off < size {
		data := chunk.Data[:min(int64(len(chunk.Data)), size-off)]
		if len(data) == 0 {
			// It shrank (rotated) under us: pad the entry to its
			// announced size rather than break the archive.
			_, err := tw.Write(make([]byte, size-off))
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
		off += int64(len(data))
		if off >= size {
			break
		}
		if chunk, rep, err = s.readLog(ctx, name, off); err != nil {
			return err
		}
		if rep.Code != http.StatusOK {
			chunk = contract.LogChunk{}
		}
	}
	return nil
}
