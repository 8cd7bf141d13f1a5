package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"
)

// Envelope is what one replica sends another.
type Envelope struct {
	Kind   string            `json:"kind"`             // "deliver", "kick", "end-sessions", "call", "reply", "event", ... (the caller's)
	From   string            `json:"from,omitempty"`   // sending replica (set by Send)
	To     string            `json:"to,omitempty"`     // a full JID, a bare JID or "" (the caller's)
	Stream string            `json:"stream,omitempty"` // target stream id, when the envelope is for one session
	XML    string            `json:"xml,omitempty"`    // a stanza, when it carries one
	Args   map[string]string `json:"args,omitempty"`
	ID     string            `json:"id,omitempty"` // for calls: the reply carries the same ID
}

// wire is an envelope as published: JSON, with whether the sender waits
// for a reply (Call) and whether it is one (Reply, on the reply channel).
type wire struct {
	Envelope
	Call  bool `json:"call,omitempty"`
	Reply bool `json:"reply,omitempty"`
}

type pendingCall struct {
	replica string
	ch      chan Envelope
}

// Send publishes env to replica's channel, with From set to this
// replica; delivered is false when no replica listened (PUBLISH answered
// 0: that replica is gone, or its subscription is down). Delivery is at
// most once: an envelope published while the receiver reconnects is lost.
func (c *Cluster) Send(ctx context.Context, replica string, env Envelope) (delivered bool, err error) {
	env.From = c.id
	n, err := c.publish(ctx, c.key("in:", replica), wire{Envelope: env})
	if err != nil {
		return false, fmt.Errorf("cluster: send %s to %s: %w", env.Kind, replica, err)
	}
	return n > 0, nil
}

// Call sends env (Kind set by the caller; ID too, or a random one is
// given) to replica and waits for the envelope its handler returns,
// bounded by ctx. It answers ErrNoReplica when nobody listens on the
// replica's channel, and ctx's error when no reply came in time (the
// handler returned nil, or the envelope or its reply was lost).
func (c *Cluster) Call(ctx context.Context, replica string, env Envelope) (Envelope, error) {
	env.From = c.id
	if env.ID == "" {
		env.ID = randomID()
	}
	p := &pendingCall{replica: replica, ch: make(chan Envelope, 1)}
	c.callMu.Lock()
	if _, dup := c.calls[env.ID]; dup {
		c.callMu.Unlock()
		return Envelope{}, fmt.Errorf("cluster: call %s to %s: id %q is waiting already", env.Kind, replica, env.ID)
	}
	c.calls[env.ID] = p
	c.callMu.Unlock()
	defer func() {
		c.callMu.Lock()
		delete(c.calls, env.ID)
		c.callMu.Unlock()
	}()
	n, err := c.publish(ctx, c.key("in:", replica), wire{Envelope: env, Call: true})
	if err != nil {
		return Envelope{}, fmt.Errorf("cluster: call %s to %s: %w", env.Kind, replica, err)
	}
	if n == 0 {
		return Envelope{}, fmt.Errorf("cluster: call %s to %s: %w", env.Kind, replica, ErrNoReplica)
	}
	select {
	case r := <-p.ch:
		return r, nil
	case <-ctx.Done():
		return Envelope{}, fmt.Errorf("cluster: call %s to %s: no reply: %w", env.Kind, replica, ctx.Err())
	}
}

// Broadcast publishes env, with From set, on the events channel, which
// every replica (this one included) hands to its Handle function.
func (c *Cluster) Broadcast(ctx context.Context, env Envelope) error {
	env.From = c.id
	if _, err := c.publish(ctx, c.key("ev", ""), wire{Envelope: env}); err != nil {
		return fmt.Errorf("cluster: broadcast %s: %w", env.Kind, err)
	}
	return nil
}

func (c *Cluster) publish(ctx context.Context, channel string, w wire) (int64, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return 0, err
	}
	return c.rdb.Publish(ctx, channel, b).Result()
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Handle sets the function that receives this replica's envelopes (those
// sent to it and those broadcast); for a call, its returned Envelope
// (non-nil) is sent back as the reply (with the call's ID; Kind "reply"
// unless it sets one). It runs on a pool of Options.Workers goroutines
// (DefaultWorkers, 32), fed by a queue of Options.Queue envelopes
// (DefaultQueue, 1024); its context is cancelled by Close, which waits for
// it. Envelopes that arrive before Handle is set wait for it up to
// HandlerWait each (holding their worker), then are dropped with a log
// line. Replies to this replica's calls do not pass through the pool, so
// a handler may Call another replica.
func (c *Cluster) Handle(fn func(ctx context.Context, env Envelope) *Envelope) {
	c.handler.Lock()
	defer c.handler.Unlock()
	c.fn = fn
	select {
	case <-c.handlerSet:
	default:
		close(c.handlerSet)
	}
}

func (c *Cluster) handlerFunc() func(context.Context, Envelope) *Envelope {
	c.handler.Lock()
	defer c.handler.Unlock()
	return c.fn
}

// subscribe starts the two subscribers (this replica's channel with the
// events channel, and its reply channel) and returns when Redis has
// confirmed both subscriptions.
func (c *Cluster) subscribe(ctx context.Context) error {
	for _, s := range []struct {
		channels []string
		dispatch func(*redis.Message)
	}{
		{[]string{c.key("in:", c.id), c.key("ev", "")}, c.request},
		{[]string{c.key("re:", c.id)}, c.reply},
	} {
		ps, err := c.newSub(ctx, s.channels)
		if err != nil {
			return err
		}
		c.wg.Add(1)
		go c.receive(ps, s.channels, s.dispatch)
	}
	return nil
}

// newSub subscribes to channels and waits for Redis's confirmations. The
// subscription is in c.subs while it waits, so that Close ends the wait.
func (c *Cluster) newSub(ctx context.Context, channels []string) (ps *redis.PubSub, err error) {
	ps = c.rdb.Subscribe(ctx)
	c.subMu.Lock()
	if c.ctx.Err() != nil {
		c.subMu.Unlock()
		_ = ps.Close()
		return nil, redis.ErrClosed
	}
	c.subs = append(c.subs, ps)
	c.subMu.Unlock()
	defer func() {
		if err != nil {
			c.dropSub(ps)
			err = fmt.Errorf("cluster: subscribe %v: %w", channels, err)
		}
	}()
	if err := ps.Subscribe(ctx, channels...); err != nil {
		return nil, err
	}
	wait := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	deadline := time.Now().Add(wait)
	for n := 0; n < len(channels); {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("no confirmation in %v", wait)
		}
		msg, err := ps.ReceiveTimeout(ctx, left)
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			n++
		case *redis.Message: // published between the confirmations
			c.dispatchEarly(m)
		}
	}
	return ps, nil
}

// dropSub closes ps and forgets it.
func (c *Cluster) dropSub(ps *redis.PubSub) {
	c.subMu.Lock()
	for i, s := range c.subs {
		if s == ps {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			break
		}
	}
	c.subMu.Unlock()
	_ = ps.Close()
}

// dispatchEarly handles a message read while waiting for confirmations.
func (c *Cluster) dispatchEarly(m *redis.Message) {
	if m.Channel == c.key("re:", c.id) {
		c.reply(m)
		return
	}
	c.request(m)
}

func (c *Cluster) closeSubs() {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	for _, ps := range c.subs {
		_ = ps.Close()
	}
	c.subs = nil
}

// replaceSub closes ps (if any) and subscribes anew, for a subscription
// that went silent; nil when Close came first or Redis does not answer.
func (c *Cluster) replaceSub(ps *redis.PubSub, channels []string) *redis.PubSub {
	if ps != nil {
		c.dropSub(ps)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.lease)
	defer cancel()
	nps, err := c.newSub(ctx, channels)
	if err != nil {
		return nil
	}
	return nps
}

// receive reads a subscription until Close. go-redis reconnects and
// subscribes again after a connection error (Redis restarted, the network
// cut); a connection that stays silent — no message and no answer to the
// PING sent after a third of a lease of silence — for a full lease is
// replaced.
func (c *Cluster) receive(ps *redis.PubSub, channels []string, dispatch func(*redis.Message)) {
	defer c.wg.Done()
	interval := c.lease / 3
	last := time.Now()
	down := false
	setDown := func(v bool) {
		if v != down {
			down = v
			if v {
				c.subsDown.Add(1)
			} else {
				c.subsDown.Add(-1)
			}
		}
	}
	defer setDown(false)
	for c.ctx.Err() == nil {
		if ps == nil {
			setDown(true)
			if !c.sleep(min(interval, 250*time.Millisecond)) {
				return
			}
			if ps = c.replaceSub(nil, channels); ps != nil {
				last = time.Now()
				setDown(false) // newSub read the confirmations
			}
			continue
		}
		msg, err := ps.ReceiveTimeout(c.ctx, interval)
		if c.ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(last) >= c.lease {
					c.log.Warn("cluster: subscription silent, subscribing anew", "channels", channels)
					ps = c.replaceSub(ps, channels)
					last = time.Now()
				} else {
					_ = ps.Ping(c.ctx)
				}
				continue
			}
			if !down {
				c.log.Warn("cluster: subscription lost, reconnecting", "channels", channels, "err", err)
			}
			setDown(true)
			if !c.sleep(min(interval, 250*time.Millisecond)) {
				return
			}
			continue
		}
		last = time.Now()
		switch m := msg.(type) {
		case *redis.Subscription:
			if down {
				c.log.Info("cluster: subscribed again", "channel", m.Channel)
			}
			setDown(false)
		case *redis.Message:
			dispatch(m)
			last = time.Now() // a wait for a worker is not silence
		}
	}
}

// request queues an envelope for the workers, waiting while the queue is
// full.
func (c *Cluster) request(m *redis.Message) {
	var w wire
	if err := json.Unmarshal([]byte(m.Payload), &w); err != nil {
		c.log.Warn("cluster: dropped an unreadable envelope", "channel", m.Channel, "err", err)
		return
	}
	select {
	case c.jobs <- w:
	case <-c.ctx.Done():
	}
}

// reply hands a reply to the call waiting for it.
func (c *Cluster) reply(m *redis.Message) {
	var w wire
	if err := json.Unmarshal([]byte(m.Payload), &w); err != nil {
		c.log.Warn("cluster: dropped an unreadable reply", "err", err)
		return
	}
	c.callMu.Lock()
	p := c.calls[w.ID]
	c.callMu.Unlock()
	if p == nil || p.replica != w.From {
		c.log.Debug("cluster: reply without a waiting call", "id", w.ID, "from", w.From)
		return
	}
	select {
	case p.ch <- w.Envelope:
	default: // a second reply
	}
}

// work runs the handler for queued envelopes until Close.
func (c *Cluster) work() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case w := <-c.jobs:
			c.handle(w)
		}
	}
}

func (c *Cluster) handle(w wire) {
	fn := c.handlerFunc()
	if fn == nil {
		t := time.NewTimer(HandlerWait)
		select {
		case <-c.handlerSet:
			t.Stop()
			fn = c.handlerFunc()
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
		}
		if fn == nil {
			c.log.Warn("cluster: dropped an envelope: no handler", "kind", w.Kind, "from", w.From)
			return
		}
	}
	r := c.run(fn, w.Envelope)
	if !w.Call || r == nil || w.From == "" {
		return
	}
	out := wire{Envelope: *r, Reply: true}
	out.ID, out.From = w.ID, c.id
	if out.Kind == "" {
		out.Kind = "reply"
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.lease)
	defer cancel()
	if _, err := c.publish(ctx, c.key("re:", w.From), out); err != nil {
		c.log.Warn("cluster: reply lost", "kind", w.Kind, "to", w.From, "err", err)
	}
}

// run calls fn, turning a panic into a log line (one envelope's failure
// must not end the replica).
func (c *Cluster) run(fn func(context.Context, Envelope) *Envelope, env Envelope) (r *Envelope) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("cluster: handler panicked", "kind", env.Kind, "from", env.From, "panic", p, "stack", string(debug.Stack()))
			r = nil
		}
	}()
	return fn(c.ctx, env)
}
