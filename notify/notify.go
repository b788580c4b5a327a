// Package notify delivers the engine's notable events to webhooks: deployments
// started, succeeded and failed, auto-heal's actions and its meltdown guard,
// components DOWN for longer than a while, and certificates of the engine
// 30 and 7 days from their end. Each webhook has its own
// durable consumer on the event stream, so what was not delivered when the
// engine stopped is delivered after it starts again; failed deliveries are
// retried with a back-off and, past a limit, counted as dead letters.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// HeaderSignature carries "sha256=" and the hex HMAC-SHA256 of the body,
// keyed with the webhook's secret.
const HeaderSignature = "X-DE-Signature"

// consumerPrefix names every webhook's consumer on DE_EVENTS.
const consumerPrefix = "notify-"

// Options configure the notifier.
type Options struct {
	Res    *bus.Resources
	Logger *slog.Logger
	// File is <data>/notify.json, read when the config has no notify
	// property.
	File string
	// Policy says which addresses webhooks may reach: by default none of
	// the engine's own machine or link-local (serve --webhook-allow opens
	// networks).
	Policy contract.WebhookPolicy
	// Backoff is the wait after the first failed delivery, doubling up to
	// 5 minutes (default 2s); MaxAttempts bounds the deliveries of one
	// event before it is a dead letter (default 12: about 20 minutes).
	Backoff     time.Duration
	MaxAttempts int
	// Every is how often the webhooks are read again (default 5s).
	Every time.Duration
}

// Notifier is the running service.
type Notifier struct {
	o    Options
	log  *slog.Logger
	stop chan struct{}
	wg   sync.WaitGroup
	// client posts to webhooks, checking each address it dials.
	client *http.Client

	mu    sync.Mutex
	hooks map[string]*hook

	delivered, failed, dead *prometheus.CounterVec
}

type hook struct {
	mu       sync.Mutex
	w        contract.Webhook
	downWait time.Duration
	cc       jetstream.ConsumeContext
}

func (h *hook) get() (contract.Webhook, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.w, h.downWait
}

// Start reads the webhooks and follows the event stream for each.
func Start(ctx context.Context, o Options) (*Notifier, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Backoff <= 0 {
		o.Backoff = 2 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 12
	}
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	lbl := []string{"webhook"}
	n := &Notifier{o: o, log: o.Logger.With("service", "notify"), stop: make(chan struct{}), hooks: map[string]*hook{}, client: newClient(o.Policy),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "de_notify_delivered_total", Help: "Notifications a webhook accepted."}, lbl),
		failed:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "de_notify_failed_attempts_total", Help: "Deliveries that failed and will be tried again."}, lbl),
		dead:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "de_notify_dead_letters_total", Help: "Notifications given up after every attempt failed."}, lbl)}
	n.reconcile(ctx)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(o.Every)
		defer t.Stop()
		for {
			select {
			case <-n.stop:
				return
			case <-t.C:
				n.reconcile(context.Background())
			}
		}
	}()
	return n, nil
}

// Stop stops every consumer; what was not acknowledged comes back later.
func (n *Notifier) Stop() {
	close(n.stop)
	n.wg.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.hooks {
		h.cc.Stop()
	}
}

// Collectors export the delivery counters, dead letters among them.
func (n *Notifier) Collectors() []prometheus.Collector {
	return []prometheus.Collector{n.delivered, n.failed, n.dead}
}

// webhooks are the config's notify property, else <data>/notify.json.
func (n *Notifier) webhooks(ctx context.Context) (contract.NotifyConfig, error) {
	cfg, err := bus.LoadConfig(ctx, n.o.Res.Config)
	if err == nil && cfg.Properties.Notify != nil {
		return *cfg.Properties.Notify, nil
	}
	if err != nil && !bus.IsNotFound(err) {
		return contract.NotifyConfig{}, err
	}
	if n.o.File == "" {
		return contract.NotifyConfig{}, nil
	}
	b, err := os.ReadFile(n.o.File)
	if errors.Is(err, os.ErrNotExist) {
		return contract.NotifyConfig{}, nil
	}
	if err != nil {
		return contract.NotifyConfig{}, err
	}
	var nc contract.NotifyConfig
	if err := json.Unmarshal(b, &nc); err != nil {
		return contract.NotifyConfig{}, fmt.Errorf("%s: %w", n.o.File, err)
	}
	return nc, nil
}

// hookID names a webhook's consumer: the same URL and name keep theirs
// (and its undelivered events) across config changes.
func hookID(w contract.Webhook) string {
	sum := sha256.Sum256([]byte(w.Name + "\x00" + w.URL))
	return hex.EncodeToString(sum[:])[:16]
}

func label(w contract.Webhook) string {
	if w.Name != "" {
		return w.Name
	}
	if w.Format == "slack" {
		return "slack"
	}
	if i := strings.Index(w.URL, "://"); i >= 0 {
		host := w.URL[i+3:]
		if j := strings.IndexAny(host, "/?#"); j >= 0 {
			host = host[:j]
		}
		if k := strings.LastIndexByte(host, '@'); k >= 0 {
			host = host[k+1:] // never a URL's credentials in a label
		}
		return host
	}
	return "webhook"
}

// filters are the events a webhook's consumer reads.
var filters = []string{
	subject.AllDeployStarted, subject.AllDeployFinished, subject.AllComponentDown, subject.AllHeal,
	subject.EngineEvent(contract.EventCertificate),
}

// reconcile starts a consumer for every webhook and removes those of
// webhooks that are gone.
func (n *Notifier) reconcile(ctx context.Context) {
	nc, err := n.webhooks(ctx)
	if err != nil {
		n.log.Warn("read the webhooks", "err", err)
		return
	}
	down := time.Duration(nc.DownAfterS) * time.Second
	if nc.DownAfterS == 0 {
		down = time.Minute
	}
	want := map[string]contract.Webhook{}
	for _, w := range nc.Webhooks {
		if w.URL != "" && w.URL != contract.Redacted {
			want[hookID(w)] = w
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, w := range want {
		if h, ok := n.hooks[id]; ok {
			h.mu.Lock()
			h.w, h.downWait = w, down
			h.mu.Unlock()
			continue
		}
		h := &hook{w: w, downWait: down}
		cons, err := n.o.Res.JS.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
			Durable:        consumerPrefix + id,
			Description:    "notifications for webhook " + label(w),
			FilterSubjects: filters,
			DeliverPolicy:  jetstream.DeliverNewPolicy,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        20 * time.Second,
			// One at a time: a webhook gets its events in order, and one
			// that is down holds back only its own.
			MaxAckPending: 1,
		})
		if err != nil {
			n.log.Error("webhook consumer", "webhook", label(w), "err", err)
			continue
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { n.handle(h, m) })
		if err != nil {
			n.log.Error("follow events for webhook", "webhook", label(w), "err", err)
			continue
		}
		h.cc = cc
		n.hooks[id] = h
		n.log.Info("webhook ready", "webhook", label(w))
	}
	for id, h := range n.hooks {
		if _, ok := want[id]; !ok {
			h.cc.Stop()
			delete(n.hooks, id)
		}
	}
	// Consumers of webhooks no longer configured, from this run or an
	// earlier one, go with their pending events.
	names := n.o.Res.Events.ConsumerNames(ctx)
	for name := range names.Name() {
		id, ok := strings.CutPrefix(name, consumerPrefix)
		if _, keep := want[id]; ok && !keep {
			_ = n.o.Res.Events.DeleteConsumer(ctx, name)
		}
	}
}

// handle delivers one event to one webhook, or schedules its retry.
func (n *Notifier) handle(h *hook, m jetstream.Msg) {
	w, downWait := h.get()
	lbl := label(w)
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	note, ok := describe(m.Subject(), m.Data())
	if !ok || !wanted(w.Events, note.Event) {
		_ = m.Ack()
		return
	}
	if note.Event == "component.down" {
		// Sent only when it is still down after downWait: not when an
		// "up" of the same instance came after it.
		t, _ := time.Parse(time.RFC3339Nano, note.Time)
		if wait := time.Until(t.Add(downWait)); wait > 0 {
			_ = m.NakWithDelay(wait)
			return
		}
		cs, err := subject.ParseComponent(m.Subject())
		if err == nil {
			up, err := n.o.Res.Events.GetLastMsgForSubject(context.Background(), subject.ComponentEvent(cs.Component, cs.IP, true))
			if err == nil && up.Sequence > meta.Sequence.Stream {
				_ = m.Ack()
				return
			}
		}
		note.Summary = fmt.Sprintf("%s (DOWN for more than %s)", note.Summary, downWait)
	}
	if err := n.post(w, note, meta.Sequence.Stream); err != nil {
		attempt := int(meta.NumDelivered)
		if attempt >= n.o.MaxAttempts {
			n.dead.WithLabelValues(lbl).Inc()
			n.log.Error("notification given up", "webhook", lbl, "event", note.Event, "attempts", attempt, "err", err)
			_ = m.Term()
			return
		}
		wait := n.o.Backoff
		for i := 1; i < attempt && wait < 5*time.Minute; i++ {
			wait *= 2
		}
		wait = min(wait, 5*time.Minute)
		n.failed.WithLabelValues(lbl).Inc()
		n.log.Warn("notification not delivered; trying again", "webhook", lbl, "event", note.Event, "attempt", attempt, "in", wait, "err", err)
		_ = m.NakWithDelay(wait)
		return
	}
	n.delivered.WithLabelValues(lbl).Inc()
	_ = m.Ack()
}

// wanted tells whether a webhook's filter takes an event; a trailing *
// matches a prefix.
func wanted(filter []string, event string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if f == event || (strings.HasSuffix(f, "*") && strings.HasPrefix(event, strings.TrimSuffix(f, "*"))) {
			return true
		}
	}
	return false
}

// newClient posts to webhooks. Every address it dials, each of a name's
// addresses included, is checked against the policy after resolution, so a
// name that resolves (or is rebound) to a refused address reaches nothing.
// Redirects are not followed and no proxy is used: either would take the
// request to an address the dialler does not see.
func newClient(p contract.WebhookPolicy) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: dialControl(p)}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, ForceAttemptHTTP2: true,
			TLSHandshakeTimeout: 5 * time.Second, MaxIdleConns: 16, IdleConnTimeout: 90 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// dialControl refuses a connection to an address p refuses: it runs once
// the address is resolved, before the socket connects.
func dialControl(p contract.WebhookPolicy) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s is not an IP address", contract.ErrWebhookAddress, address)
		}
		return p.CheckAddr(ap.Addr())
	}
}

// post sends one notification; anything but a 2xx answer is a failure. A
// URL naming a refused address is not dialled at all.
func (n *Notifier) post(w contract.Webhook, note contract.Notification, seq uint64) error {
	if err := n.o.Policy.CheckURL(w.URL); err != nil {
		return fmt.Errorf("webhook URL: %w", err)
	}
	var body []byte
	if w.Format == "slack" {
		body, _ = json.Marshal(map[string]string{"text": "[deployment-engine] " + note.Summary})
	} else {
		body, _ = json.Marshal(note)
	}
	req, err := http.NewRequest(http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("bad webhook URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "deployment-engine")
	req.Header.Set("X-DE-Event", note.Event)
	req.Header.Set("X-DE-Delivery", fmt.Sprint(seq))
	if w.Secret != "" {
		req.Header.Set(HeaderSignature, Sign([]byte(w.Secret), body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// Only the cause: a webhook's URL may carry its credential.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return fmt.Errorf("POST to the webhook: %w", uerr.Err)
		}
		return fmt.Errorf("POST to the webhook failed")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 3 {
		return fmt.Errorf("the webhook answered %s: redirects are not followed, give the final URL", resp.Status)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return nil
}

// Sign is the signature header's value for body: "sha256=" and the hex
// HMAC-SHA256 keyed with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// describe turns an event into a notification; ok is false for events
// that are not notified.
func describe(subj string, data []byte) (contract.Notification, bool) {
	note := contract.Notification{V: contract.Version, Subject: subj}
	kind, err := subject.ParseEvent(subj)
	if err != nil {
		return note, false
	}
	switch kind.Family {
	case subject.FamilyDeploy:
		var ev contract.DeploymentEvent
		if json.Unmarshal(data, &ev) != nil {
			return note, false
		}
		note.Data, note.Time = ev, ev.Time.UTC().Format(time.RFC3339Nano)
		switch {
		case kind.Kind == string(subject.DeployStarted):
			note.Event, note.Summary = "deployment.started", "deployment "+ev.ID+" started"
		case ev.State == contract.DeploySucceeded:
			note.Event, note.Summary = "deployment.succeeded", fmt.Sprintf("deployment %s succeeded (%d changed)", ev.ID, ev.Changed)
		case ev.State == contract.DeployFailed:
			note.Event, note.Summary = "deployment.failed", "deployment "+ev.ID+" failed: "+ev.Error
		default:
			return note, false
		}
	case subject.FamilyComponent:
		var ev contract.ComponentEvent
		if json.Unmarshal(data, &ev) != nil || ev.Up {
			return note, false
		}
		note.Data, note.Time = ev, ev.Time.UTC().Format(time.RFC3339Nano)
		note.Event, note.Summary = "component.down", fmt.Sprintf("%s on %s is DOWN: %s", ev.Component, ev.IP, ev.Reason)
	case subject.FamilyHeal:
		var ev contract.HealEvent
		if json.Unmarshal(data, &ev) != nil || ev.Kind == "" {
			return note, false
		}
		note.Data, note.Time = ev, ev.Time.UTC().Format(time.RFC3339Nano)
		note.Event, note.Summary = "heal."+ev.Kind, "auto-heal: "+ev.Message
	case subject.FamilyEngine:
		// Of the engine's own operations, only a certificate near its end
		// is notified.
		var ev contract.EngineEvent
		if kind.Kind != contract.EventCertificate || json.Unmarshal(data, &ev) != nil || ev.Kind != contract.EventCertificate {
			return note, false
		}
		note.Data, note.Time = ev, ev.Time.UTC().Format(time.RFC3339Nano)
		note.Event, note.Summary = "certificate.expiring", ev.Message
	default:
		return note, false
	}
	return note, true
}
