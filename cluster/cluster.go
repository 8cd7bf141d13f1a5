package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults of Options.
const (
	DefaultLease   = 20 * time.Second
	DefaultWorkers = 32
	DefaultQueue   = 1024
)

// MinLease is the shortest lease Open accepts: renewals every third of it
// must fit round trips to Redis.
const MinLease = 300 * time.Millisecond

// HandlerWait is how long an envelope that arrives before Handle is set
// waits for it before it is dropped with a log line.
const HandlerWait = 10 * time.Second

// Options configure Open.
type Options struct {
	// Addr is Redis's host:port (ignored with Sentinel).
	Addr string
	// Password is Redis's password (the server reads it from
	// ADHOCD_REDIS_PASSWORD); "" for none. With Sentinel it is the
	// master's (and its replicas').
	Password string
	// TLS, when not nil, is the TLS configuration of every connection;
	// nil is plain TCP.
	TLS *tls.Config
	// SentinelMaster, when not empty, is the name of the master that the
	// sentinels at SentinelAddrs watch: the client follows its failovers.
	SentinelMaster string
	SentinelAddrs  []string
	// SentinelPassword is the sentinels' own password ("" for none).
	SentinelPassword string
	// Domain is the XMPP domain: every key and channel starts with
	// "adhocd:{Domain}:" (a Redis Cluster hash tag: one slot).
	Domain string
	// Replica is this replica's id, unique in the cluster and never
	// reused (the caller makes it of the pod name and a boot epoch).
	Replica string
	// Address is what other replicas may show for this one
	// (informational: Replicas lists it).
	Address string
	// Lease is how long this replica's lease lasts without renewal
	// (DefaultLease when 0; at least MinLease). It is renewed, and dead
	// replicas are looked for, every Lease/3.
	Lease time.Duration
	// Workers is how many goroutines run the Handle function at once
	// (DefaultWorkers when 0).
	Workers int
	// Queue is how many received envelopes wait for a worker
	// (DefaultQueue when 0); when it is full the subscriber stops reading
	// and Redis buffers for it (up to its client-output-buffer-limit for
	// pub/sub, after which Redis drops the connection and what it held).
	Queue int
	// Log receives the package's log lines; nil discards them.
	Log *slog.Logger
}

// ReplicaInfo describes one live replica.
type ReplicaInfo struct {
	ID          string
	Address     string
	Started     time.Time
	LeaseExpiry time.Time
}

var (
	// ErrTooManySessions is Bind's answer when the account already has as
	// many sessions as allowed.
	ErrTooManySessions = errors.New("cluster: too many sessions for this account")
	// ErrFenced is the answer of Bind (and Update) while this replica has
	// no lease: it is fenced, or Redis lost the lease (a restart) and the
	// renewer has not re-registered it yet.
	ErrFenced = errors.New("cluster: this replica lost its lease")
	// ErrNoReplica is Call's answer when nobody listens on the replica's
	// channel: that replica is gone.
	ErrNoReplica = errors.New("cluster: no such replica listens")
	// ErrPresenceTooLong refuses an entry whose Presence is longer than
	// MaxPresence.
	ErrPresenceTooLong = errors.New("cluster: presence stanza longer than 8 KiB")
)

// MaxPresence is the longest Presence an entry may carry, in bytes.
const MaxPresence = 8 << 10

// Cluster is one replica's handle on the cluster: its directory entries,
// its lease and its channels. Its methods may be called from any
// goroutine.
type Cluster struct {
	rdb      *redis.Client
	id       string
	pfx      string // "adhocd:{domain}:"
	address  string
	started  time.Time
	leaseVal string // the lease key's value
	lease    time.Duration
	log      *slog.Logger
	workers  int

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of the Cluster
	wake   chan struct{}  // wakes the renewer at once

	subMu sync.Mutex
	subs  []*redis.PubSub // the two subscriptions, for Close
	// subsDown counts the subscriptions that lost their connection and
	// are not subscribed again yet (Up).
	subsDown atomic.Int32

	jobs       chan wire
	handler    sync.Mutex // guards fn and handlerSet's closing
	fn         func(context.Context, Envelope) *Envelope
	handlerSet chan struct{} // closed when Handle is first called

	callMu sync.Mutex
	calls  map[string]*pendingCall

	cbMu      sync.Mutex
	onReap    func(context.Context, string, []Entry)
	onFence   func()
	onRecover func(context.Context) []Entry
	onLost    func(context.Context, []Entry)

	// gate is held shared by Bind around its script, and exclusively by a
	// recovery while it marks itself started: so that no Bind that began
	// before the recovery writes into the directory after it.
	gate sync.RWMutex
	st   state

	closeOnce sync.Once
	closeErr  error
}

// state is the lease's state, guarded by its mutex.
type state struct {
	mu         sync.Mutex
	lastOK     time.Time // when the last renewal that succeeded was sent
	fenced     bool
	recovering bool             // the lease is to be registered again and the sessions re-published
	unbinds    []unbindReq      // Unbind calls during a recovery, done again after it
	updates    map[string]Entry // Update calls during a recovery, by member, done after it
}

type unbindReq struct{ user, resource, stream string }

// Open connects to Redis, checks it answers, registers this replica's
// lease (refusing an id whose lease is live), subscribes to this
// replica's channels and the events channel, and starts the lease
// renewer, the reaper, the subscribers and the workers. It returns once
// the subscriptions are active: an envelope sent after Open returns
// reaches this replica.
func Open(ctx context.Context, o Options) (*Cluster, error) {
	if o.Domain == "" || strings.ContainsAny(o.Domain, "{}") {
		return nil, fmt.Errorf("cluster: domain %q: empty or with a brace", o.Domain)
	}
	if o.Replica == "" || strings.ContainsAny(o.Replica, "\x00") {
		return nil, fmt.Errorf("cluster: replica id %q: empty or with a NUL", o.Replica)
	}
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.Lease < MinLease {
		return nil, fmt.Errorf("cluster: lease %v shorter than %v", o.Lease, MinLease)
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{
		rdb:        newClient(o),
		id:         o.Replica,
		pfx:        "adhocd:{" + o.Domain + "}:",
		address:    o.Address,
		started:    time.Now(),
		lease:      o.Lease,
		log:        o.Log.With("replica", o.Replica),
		workers:    o.Workers,
		wake:       make(chan struct{}, 1),
		jobs:       make(chan wire, o.Queue),
		handlerSet: make(chan struct{}),
		calls:      make(map[string]*pendingCall),
	}
	v, _ := json.Marshal(leaseValue{Address: c.address, Started: c.started.UTC()})
	c.leaseVal = string(v)
	c.ctx, c.cancel = context.WithCancel(context.Background())

	fail := func(err error) (*Cluster, error) {
		c.cancel()
		c.closeSubs()
		c.wg.Wait()
		_ = c.rdb.Close()
		return nil, err
	}
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fail(fmt.Errorf("cluster: ping redis: %w", err))
	}
	t0 := time.Now()
	ok, err := c.register(ctx, true)
	if err != nil {
		return fail(fmt.Errorf("cluster: register replica %s: %w", c.id, err))
	}
	if !ok {
		return fail(fmt.Errorf("cluster: register replica %s: a live replica has that id", c.id))
	}
	c.st.lastOK = t0
	for range c.workers { // before the subscriptions, which may hand them envelopes
		c.wg.Add(1)
		go c.work()
	}
	if err := c.subscribe(ctx); err != nil {
		_ = c.rdb.Del(context.Background(), c.key("replica:", c.id)).Err()
		_ = c.rdb.ZRem(context.Background(), c.key("replicas", ""), c.id).Err()
		return fail(err)
	}
	c.wg.Add(2)
	go c.renewer()
	go c.reaper()
	c.log.Info("cluster: joined", "domain", o.Domain, "lease", c.lease)
	return c, nil
}

// leaseValue is the JSON of a replica's lease key.
type leaseValue struct {
	Address string    `json:"address"`
	Started time.Time `json:"started"`
}

// newClient makes the go-redis client: standalone, or following a
// Sentinel master. Command deadlines come from the contexts (a renewal is
// bounded by a third of the lease), and, without one, from read and write
// timeouts of a third of the lease up to 3 s.
func newClient(o Options) *redis.Client {
	timeout := min(max(o.Lease/3, 200*time.Millisecond), 3*time.Second)
	if o.SentinelMaster != "" {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            o.SentinelMaster,
			SentinelAddrs:         o.SentinelAddrs,
			SentinelPassword:      o.SentinelPassword,
			Password:              o.Password,
			TLSConfig:             o.TLS,
			DialTimeout:           min(o.Lease/2, 5*time.Second),
			ReadTimeout:           timeout,
			WriteTimeout:          timeout,
			ContextTimeoutEnabled: true,
		})
	}
	return redis.NewClient(&redis.Options{
		Addr:                     o.Addr,
		Password:                 o.Password,
		TLSConfig:                o.TLS,
		DialTimeout:              min(o.Lease/2, 5*time.Second),
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// key returns the name of a key or channel: the prefix, kind, and id.
func (c *Cluster) key(kind, id string) string { return c.pfx + kind + id }

// Replica returns this replica's id.
func (c *Cluster) Replica() string { return c.id }

// Fenced reports whether this replica has fenced itself (it could not
// renew its lease for a full lease) and has not re-registered since.
func (c *Cluster) Fenced() bool {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	return c.st.fenced
}

// Up reports whether this replica takes part in the cluster: not fenced,
// and subscribed to its channels (after a cut, go-redis subscribes again
// on its own, a moment after the lease may be back): what a readiness
// probe should follow, since stanzas sent to a replica that is not
// subscribed reach no one.
func (c *Cluster) Up() bool { return !c.Fenced() && c.subsDown.Load() == 0 }

// OnReap sets what runs on the one replica that wins the reaping of a dead
// replica (its lease expired): fn gets the dead replica's id and its
// entries, already removed from the directory, to announce those users
// unavailable and record their logout. It runs on the reaper goroutine,
// once per reaped replica (with an empty gone when it held no sessions);
// the reaper looks for the next dead replica when fn returns.
func (c *Cluster) OnReap(fn func(ctx context.Context, dead string, gone []Entry)) {
	c.cbMu.Lock()
	c.onReap = fn
	c.cbMu.Unlock()
}

// OnFence sets what runs, once per outage, when this replica could not
// renew its lease for a full lease and fences itself: the server closes
// its streams (system-shutdown) and turns not ready. From then on Bind
// answers ErrFenced until the replica has re-registered.
func (c *Cluster) OnFence(fn func()) {
	c.cbMu.Lock()
	c.onFence = fn
	c.cbMu.Unlock()
}

// OnRecover sets what runs when this replica registers its lease again:
// after a fence, when Redis answers again, and after Redis lost the lease
// (a restart without persistence, a failover to a replica that had not
// seen it) without a fence. fn returns the entries of every session still
// open here: every session whose Bind has returned successfully and whose
// Unbind has not been called (a caller that adds a session to its own
// table before calling Bind meets that). The directory's entries of this
// replica become exactly those: stale ones are removed, the returned ones
// written back, except where another replica's session holds the same
// resource now (see OnLost). Bind answers ErrFenced until that is done;
// Unbind and Update calls meanwhile are applied after it. fn runs on the
// renewer goroutine and should return promptly.
func (c *Cluster) OnRecover(fn func(ctx context.Context) []Entry) {
	c.cbMu.Lock()
	c.onRecover = fn
	c.cbMu.Unlock()
}

// OnLost sets what runs after a recovery with the entries OnRecover
// returned that could not be written back because a session of another
// replica took their resource in the meantime: the newer session wins,
// and the caller closes these (conflict). Without fn they are logged.
func (c *Cluster) OnLost(fn func(ctx context.Context, lost []Entry)) {
	c.cbMu.Lock()
	c.onLost = fn
	c.cbMu.Unlock()
}

// Close leaves the cluster gracefully: it stops the goroutines (waiting
// for running handlers, whose context it cancels, and callbacks: so it
// must not be called from one), deletes this replica's lease, removes its
// entries from the directory, and closes the client. Entries removed here
// are not given to anyone's OnReap: the caller ends its sessions (and
// announces them) before Close. Envelopes still queued are dropped.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.closeSubs()
		c.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.rdb.Del(ctx, c.key("replica:", c.id)).Err()
		if err == nil {
			if _, err = c.reap(ctx, c.id); errors.Is(err, errReaped) {
				err = nil // reaped while fenced: nothing left
			}
		}
		if err != nil {
			c.closeErr = fmt.Errorf("cluster: leave: %w", err)
		}
		if err := c.rdb.Close(); err != nil && c.closeErr == nil {
			c.closeErr = fmt.Errorf("cluster: close: %w", err)
		}
		c.log.Info("cluster: left")
	})
	return c.closeErr
}

// closeAbruptly stops the goroutines and the client as a crash would:
// the lease and the entries stay in Redis until the lease expires and
// another replica reaps them. For tests.
func (c *Cluster) closeAbruptly() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.closeSubs()
		c.wg.Wait()
		_ = c.rdb.Close()
	})
}

// sleep waits d or until Close; it reports whether d passed.
func (c *Cluster) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}
