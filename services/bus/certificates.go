package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// KeyCertificates is the key, in KVEngine, of the summary of every
// certificate the engine made or serves. The process that holds one (the
// one running the embedded NATS for the agents' pair, each API process for
// its own) writes it there at start and whenever it issues one, and the
// API reads it there: a split engine's API process holds none of the
// agents' certificates. Keys never go there.
const KeyCertificates = "certificates"

// certificateWarned prefixes the keys, in KVEngine, that remember which
// certificate was warned of at which threshold.
const certificateWarned = "certificate-warned."

// storedCertificates is KeyCertificates' record.
type storedCertificates struct {
	V     int                             `json:"v"`
	Certs map[string]contract.Certificate `json:"certificates"`
}

// LoadCertificates reads the certificates' summary, by name, with their
// seconds left counted at now; none stored is an empty list.
func LoadCertificates(ctx context.Context, kv jetstream.KeyValue, now time.Time) (contract.Certificates, error) {
	out := contract.Certificates{V: contract.Version, Certificates: []contract.Certificate{}}
	st, _, err := loadCertificates(ctx, kv)
	if err != nil {
		return out, err
	}
	for _, name := range contract.SortedKeys(st.Certs) {
		out.Certificates = append(out.Certificates, st.Certs[name].At(now))
	}
	return out, nil
}

func loadCertificates(ctx context.Context, kv jetstream.KeyValue) (storedCertificates, uint64, error) {
	st := storedCertificates{Certs: map[string]contract.Certificate{}}
	rev, err := loadJSON(ctx, kv, KeyCertificates, &st)
	if st.Certs == nil {
		st.Certs = map[string]contract.Certificate{}
	}
	return st, rev, err
}

// UpdateCertificates stores put (by name) and removes drop from the
// summary, compare-and-set: the API process and the one running NATS may
// write at once, and both keep theirs.
func UpdateCertificates(ctx context.Context, kv jetstream.KeyValue, put []contract.Certificate, drop ...string) error {
	return updateCertificates(ctx, kv, func(certs map[string]contract.Certificate) {
		for _, n := range drop {
			delete(certs, n)
		}
	}, put)
}

// ReplaceCertificates stores put in place of every certificate of the
// summary whose name begins with prefix (one holder's whole set, as a
// manifest's variables), compare-and-set as UpdateCertificates.
func ReplaceCertificates(ctx context.Context, kv jetstream.KeyValue, prefix string, put []contract.Certificate) error {
	return updateCertificates(ctx, kv, func(certs map[string]contract.Certificate) {
		for n := range certs {
			if strings.HasPrefix(n, prefix) {
				delete(certs, n)
			}
		}
	}, put)
}

// updateCertificates applies drop, then put, to the summary at the
// revision read, again when another writer came first.
func updateCertificates(ctx context.Context, kv jetstream.KeyValue, drop func(map[string]contract.Certificate), put []contract.Certificate) error {
	for try := 1; ; try++ {
		st, rev, err := loadCertificates(ctx, kv)
		if err != nil {
			return err
		}
		drop(st.Certs)
		for _, c := range put {
			c.SecondsLeft = 0 // counted when read
			st.Certs[c.Name] = c
		}
		st.V = contract.Version
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if _, err = PutAt(ctx, kv, KeyCertificates, b, rev); err == nil {
			return nil
		}
		if !IsConflict(err) || try >= maintenanceTries {
			return fmt.Errorf("store %s: %w", KeyCertificates, err)
		}
	}
}

// WarnCertificates raises, for each certificate with fewer days left at
// now than one of contract.CertificateWarnDays, an engine event of kind
// contract.EventCertificate (which notify sends to webhooks): once per
// certificate and threshold, remembered in kv, so that neither a restart
// nor another process holding the same certificate repeats it. A
// certificate is told by its name and expiry: one issued again with the
// same expiry (the agents' listener at each start) is the same to warn
// of, a renewed one is not. It returns the warnings it raised.
func WarnCertificates(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, certs []contract.Certificate, now time.Time) ([]string, error) {
	var raised []string
	var errs []error
	for _, c := range certs {
		days := c.WarnThreshold(now)
		if days == 0 {
			continue
		}
		if !validCertName(c.Name) {
			errs = append(errs, fmt.Errorf("certificate %q: not a certificate name", contract.Clip(c.Name)))
			continue
		}
		key := fmt.Sprintf("%s%s.%d.%d", certificateWarned, c.Name, days, c.NotAfter.Unix())
		if _, err := kv.Create(ctx, key, []byte(now.UTC().Format(time.RFC3339))); err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) {
				errs = append(errs, fmt.Errorf("remember the warning of certificate %s: %w", c.Name, err))
			}
			continue
		}
		msg := c.Expiring(days, now)
		c = c.At(now)
		if err := publishCertificateEvent(ctx, js, msg, c, days); err != nil {
			// Not raised: the next check tries again.
			_ = kv.Delete(ctx, key)
			errs = append(errs, err)
			continue
		}
		raised = append(raised, msg)
	}
	return raised, errors.Join(errs...)
}

func publishCertificateEvent(ctx context.Context, js jetstream.JetStream, msg string, c contract.Certificate, days int) error {
	b, err := json.Marshal(contract.EngineEvent{V: contract.Version, Kind: contract.EventCertificate, Time: time.Now().UTC(),
		Message: msg, Certificate: &c, WarnDays: days})
	if err != nil {
		return err
	}
	if _, err := js.Publish(ctx, subject.EngineEvent(contract.EventCertificate), b); err != nil {
		return fmt.Errorf("publish engine event: %w", err)
	}
	return nil
}

// validCertName tells whether a certificate's name can be part of a key:
// letters, digits, '-', '_' and '/' (a manifest's variable/<name>).
func validCertName(n string) bool {
	return n != "" && len(n) <= 128 && !strings.HasPrefix(n, "/") &&
		strings.Trim(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/") == ""
}
