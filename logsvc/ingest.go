package logsvc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// writer is the only goroutine that writes the store. It takes what is
// waiting on both channels (up to batchMax lines), writes it, flushes, and
// only then records the position and acknowledges: an acknowledged line is
// in the kernel's hands.
func (s *Service) writer() {
	defer close(s.done)
	for {
		var lastJS jetstream.Msg
		s.begin()
		select {
		case d := <-s.jsCh:
			lastJS = s.ingestJS(d)
		case m := <-s.rtCh:
			s.ingest(nil, m)
		case <-s.stopping:
			// Nothing arrives any more: write what is left and go.
			for {
				s.begin()
				n, last := s.drain()
				s.commit(last)
				if n == 0 || s.failed {
					return
				}
			}
		}
		_, last := s.drain()
		if last != nil {
			lastJS = last
		}
		s.commit(lastJS)
	}
}

// drain writes what is waiting without blocking; it returns how many
// messages it took and the last stream message among them.
func (s *Service) drain() (int, jetstream.Msg) {
	var last jetstream.Msg
	n := 0
	for ; n < batchMax; n++ {
		select {
		case d := <-s.jsCh:
			if l := s.ingestJS(d); l != nil {
				last = l
			}
		case m := <-s.rtCh:
			s.ingest(nil, m)
		default:
			return n, last
		}
	}
	return n, last
}

func (s *Service) begin() {
	s.batchStart, s.failed = s.lastSeq, false
	s.st.begin()
}

// commit flushes the batch, records the stream position and acks the
// batch's last stream message (AckAll: that acks the whole batch). A batch
// that failed to reach the disk (disk full, say) is undone instead: its
// files are cut back to where they were, nothing is acked, and delivery
// starts again after the last line that is on disk.
func (s *Service) commit(last jetstream.Msg) {
	s.batch++
	if !s.failed {
		if err := s.st.flush(); err != nil {
			s.log.Error("write logs", "err", err)
			s.failed = true
		}
	}
	if s.failed {
		s.st.rollback(s.log)
		s.lastSeq = s.batchStart
		select {
		case <-s.stopping:
			// The next start resumes from the position file.
		default:
			s.restartConsumer()
		}
		return
	}
	if last == nil {
		return
	}
	if err := s.seq.store(s.lastSeq); err != nil {
		s.log.Error("record ingest position", "err", err)
	}
	if err := last.Ack(); err != nil {
		s.log.Warn("ack events", "err", err)
	}
}

func (s *Service) ingestJS(d delivery) jetstream.Msg {
	if d.gen != s.gen {
		return nil // from a consumer that was replaced
	}
	return s.ingest(d.m, nil)
}

// ingest writes one message from the stream (js) or from an agent (rt).
// For a stream message it returns it when it counts towards the ack.
func (s *Service) ingest(js jetstream.Msg, rt *nats.Msg) jetstream.Msg {
	if rt != nil {
		s.runtimeLine(rt.Subject, rt.Data)
		return nil
	}
	md, err := js.Metadata()
	if err != nil {
		s.log.Warn("event without metadata", "subject", js.Subject(), "err", err)
		return nil
	}
	if s.failed {
		return nil // the batch will be undone and come again
	}
	if md.Sequence.Stream <= s.lastSeq {
		// Already on disk: a redelivery after a lost ack.
		return js
	}
	s.event(js.Subject(), js.Data(), md.Timestamp)
	s.lastSeq = md.Sequence.Stream
	return js
}

// seqFile records the last DE_EVENTS sequence written to the store, so
// that a restart resumes right after it. Its name starts with a dot: no
// log name can reach it.
type seqFile struct {
	f     *os.File
	last  uint64
	known bool
	buf   []byte
}

const seqName = ".ingest-seq"

func openSeqFile(st *store) (*seqFile, error) {
	if fi, err := st.root.Lstat(seqName); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("logsvc: %s is not a regular file", seqName)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("logsvc: stat %s: %w", seqName, err)
	}
	f, err := st.root.OpenFile(seqName, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("logsvc: open %s: %w", seqName, err)
	}
	sf := &seqFile{f: f}
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if v, err := strconv.ParseUint(strings.TrimSpace(string(buf[:n])), 10, 64); err == nil {
		sf.last, sf.known = v, true
	}
	return sf, nil
}

// store overwrites the position in place: fixed width, one write.
func (sf *seqFile) store(seq uint64) error {
	if sf.known && seq == sf.last {
		return nil
	}
	sf.buf = fmt.Appendf(sf.buf[:0], "%020d\n", seq)
	if _, err := sf.f.WriteAt(sf.buf, 0); err != nil {
		return fmt.Errorf("logsvc: write %s: %w", seqName, err)
	}
	sf.last, sf.known = seq, true
	return nil
}

func (sf *seqFile) close() error { return sf.f.Close() }
