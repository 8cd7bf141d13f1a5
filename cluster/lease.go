package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// chunk is how many members or entries one reap, prune or restore script
// handles: a dead replica's thousands of sessions take several short
// scripts rather than one that stops Redis for long.
const chunk = 256

// register writes this replica's lease key and its expiry in the zset;
// with nx it refuses (false) a lease that exists.
func (c *Cluster) register(ctx context.Context, nx bool) (bool, error) {
	flag := ""
	if nx {
		flag = "nx"
	}
	n, err := registerScript.Run(ctx, c.rdb, []string{c.key("replica:", c.id), c.key("replicas", "")},
		c.leaseVal, c.lease.Milliseconds(), c.id, flag).Int64()
	return n == 1, err
}

// renewer extends the lease every Lease/3, fences this replica when a
// full lease has passed since the last renewal that succeeded was sent,
// and re-registers it (recover) when Redis answers again after a fence or
// has lost the lease.
func (c *Cluster) renewer() {
	defer c.wg.Done()
	tick := time.NewTicker(c.lease / 3)
	defer tick.Stop()
	fence := time.NewTimer(c.lease)
	defer fence.Stop()
	for {
		var fenceC <-chan time.Time
		c.st.mu.Lock()
		if !c.st.fenced {
			fence.Reset(time.Until(c.st.lastOK.Add(c.lease)))
			fenceC = fence.C
		}
		c.st.mu.Unlock()
		select {
		case <-c.ctx.Done():
			return
		case <-fenceC:
			c.checkFence()
		case <-tick.C:
			c.renewOnce()
		case <-c.wake:
			c.renewOnce()
		}
	}
}

// opCtx bounds one Redis call of the renewer: a third of the lease, and
// no later than the fence's deadline (but for a last short try), so that
// a hanging Redis cannot delay the fence.
func (c *Cluster) opCtx() (context.Context, context.CancelFunc) {
	d := c.lease / 3
	c.st.mu.Lock()
	if !c.st.fenced {
		if left := time.Until(c.st.lastOK.Add(c.lease)); left < d {
			d = max(left, 20*time.Millisecond)
		}
	}
	c.st.mu.Unlock()
	return context.WithTimeout(c.ctx, d)
}

func (c *Cluster) renewOnce() {
	c.st.mu.Lock()
	recovering := c.st.recovering
	c.st.mu.Unlock()
	if recovering {
		if err := c.recover(); err != nil && c.ctx.Err() == nil {
			if c.Fenced() {
				c.log.Debug("cluster: re-registering failed", "err", err)
			} else {
				c.log.Warn("cluster: re-registering failed", "err", err)
				c.checkFence()
			}
		}
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	t0 := time.Now()
	ok, err := c.renew(ctx)
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Debug("cluster: lease renewal failed", "err", err)
			c.checkFence()
		}
		return
	}
	c.st.mu.Lock()
	c.st.lastOK = t0
	c.st.mu.Unlock()
	if !ok {
		c.log.Warn("cluster: the lease is gone from Redis (restarted or failed over?): re-registering")
		c.startRecovery()
		if err := c.recover(); err != nil && c.ctx.Err() == nil {
			c.log.Warn("cluster: re-registering failed", "err", err)
		}
	}
}

func (c *Cluster) renew(ctx context.Context) (bool, error) {
	n, err := renewScript.Run(ctx, c.rdb, []string{c.key("replica:", c.id), c.key("replicas", "")},
		c.lease.Milliseconds(), c.id).Int64()
	return n == 1, err
}

// leaseMissing is what Bind and Update do when their script finds no
// lease: mark the recovery due and wake the renewer.
func (c *Cluster) leaseMissing() {
	c.startRecovery()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// startRecovery marks a recovery due, once no Bind is running: Binds
// from now on answer ErrFenced, Unbinds and Updates are kept to be done
// again after it.
func (c *Cluster) startRecovery() {
	c.gate.Lock()
	c.st.mu.Lock()
	c.st.recovering = true
	c.st.mu.Unlock()
	c.gate.Unlock()
}

// checkFence fences this replica when its last successful renewal was
// sent a full lease ago or more: by then Redis has let the lease expire
// and another replica may reap this one's sessions. OnFence's fn runs
// once, on the renewer.
func (c *Cluster) checkFence() {
	c.st.mu.Lock()
	if c.st.fenced || time.Since(c.st.lastOK) < c.lease {
		c.st.mu.Unlock()
		return
	}
	c.st.fenced = true
	c.st.recovering = true
	c.st.mu.Unlock()
	c.log.Error("cluster: could not renew the lease for a full lease: fenced", "lease", c.lease)
	c.cbMu.Lock()
	fn := c.onFence
	c.cbMu.Unlock()
	if fn != nil {
		fn()
	}
}

// recover registers the lease again and makes the directory's entries of
// this replica those OnRecover's fn returns: stale ones pruned, the
// others written back unless another replica's session took their
// resource (OnLost). Then the Unbinds and Updates that came meanwhile are
// done again, and Bind is open again.
func (c *Cluster) recover() error {
	t0 := time.Now()
	if err := c.op(func(ctx context.Context) error {
		_, err := c.register(ctx, false)
		return err
	}); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	c.st.mu.Lock()
	c.st.lastOK = t0
	wasFenced := c.st.fenced
	c.st.mu.Unlock()

	c.cbMu.Lock()
	onRecover, onLost := c.onRecover, c.onLost
	c.cbMu.Unlock()
	var entries []Entry
	if onRecover != nil {
		ctx, cancel := context.WithTimeout(c.ctx, c.lease)
		entries = onRecover(ctx)
		cancel()
	}
	keep := make(map[string]Entry, len(entries))
	for _, e := range entries {
		if err := check(e); err != nil {
			c.log.Warn("cluster: OnRecover returned an entry the directory cannot hold", "err", err)
			continue
		}
		e.Replica = c.id
		if e.Since.IsZero() {
			e.Since = time.Now()
		}
		keep[member(e.User, e.Resource)] = e
	}

	// Stale entries: in the owned set, not among the sessions open here.
	var owned []string
	if err := c.op(func(ctx context.Context) (err error) {
		owned, err = c.rdb.SMembers(ctx, c.key("own:", c.id)).Result()
		return err
	}); err != nil {
		return fmt.Errorf("owned set: %w", err)
	}
	var stale []any
	for _, m := range owned {
		if _, ok := keep[m]; !ok {
			stale = append(stale, m)
		}
	}
	pruned := 0
	for len(stale) > 0 {
		n := min(len(stale), chunk)
		args := append([]any{c.pfx, c.id}, stale[:n]...)
		var r int
		if err := c.op(func(ctx context.Context) (err error) {
			r, err = pruneScript.Run(ctx, c.rdb, c.selfKeys(), args...).Int()
			return err
		}); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		if r < 0 {
			return errNoLease
		}
		pruned += r
		stale = stale[n:]
		if err := c.keepAlive(); err != nil {
			return err
		}
	}

	list := make([]Entry, 0, len(keep))
	for _, e := range keep {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool {
		return member(list[i].User, list[i].Resource) < member(list[j].User, list[j].Resource)
	})
	var lost []Entry
	for rest := list; len(rest) > 0; {
		n := min(len(rest), chunk)
		args := []any{c.pfx, c.id}
		for _, e := range rest[:n] {
			args = append(args, e.User, e.Resource, e.Stream, encodeEntry(e))
		}
		var r []int64
		if err := c.op(func(ctx context.Context) (err error) {
			r, err = restoreScript.Run(ctx, c.rdb, c.selfKeys(), args...).Int64Slice()
			return err
		}); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if len(r) == 0 || r[0] < 0 {
			return errNoLease
		}
		for _, k := range r[1:] {
			lost = append(lost, rest[k-1])
		}
		rest = rest[n:]
		if err := c.keepAlive(); err != nil {
			return err
		}
	}

	// What came meanwhile, until nothing more comes.
	for {
		c.st.mu.Lock()
		unbinds, updates := c.st.unbinds, c.st.updates
		c.st.unbinds, c.st.updates = nil, nil
		if len(unbinds) == 0 && len(updates) == 0 {
			c.st.recovering = false
			c.st.fenced = false
			c.st.mu.Unlock()
			break
		}
		c.st.mu.Unlock()
		if err := c.replay(unbinds, updates); err != nil {
			c.st.mu.Lock()
			c.st.unbinds = append(unbinds, c.st.unbinds...)
			if c.st.updates == nil {
				c.st.updates = updates
			} else {
				for m, e := range updates {
					if _, newer := c.st.updates[m]; !newer {
						c.st.updates[m] = e
					}
				}
			}
			c.st.mu.Unlock()
			return err
		}
	}
	c.log.Info("cluster: registered again", "after_fence", wasFenced, "sessions", len(list)-len(lost), "pruned", pruned, "lost", len(lost))
	if len(lost) > 0 {
		if onLost != nil {
			ctx, cancel := context.WithTimeout(c.ctx, c.lease)
			defer cancel()
			onLost(ctx, lost)
		} else {
			for _, e := range lost {
				c.log.Warn("cluster: a session's resource was taken while re-registering", "user", e.User, "resource", e.Resource, "stream", e.Stream)
			}
		}
	}
	return nil
}

func (c *Cluster) selfKeys() []string {
	return []string{c.key("own:", c.id), c.key("online", ""), c.key("replica:", c.id)}
}

// op runs one Redis call of a recovery, bounded by opCtx.
func (c *Cluster) op(f func(ctx context.Context) error) error {
	ctx, cancel := c.opCtx()
	defer cancel()
	return f(ctx)
}

// keepAlive renews the lease during a long recovery.
func (c *Cluster) keepAlive() error {
	c.st.mu.Lock()
	due := time.Since(c.st.lastOK) >= c.lease/3
	c.st.mu.Unlock()
	if !due {
		return nil
	}
	t0 := time.Now()
	var ok bool
	if err := c.op(func(ctx context.Context) (err error) {
		ok, err = c.renew(ctx)
		return err
	}); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if !ok {
		return errNoLease
	}
	c.st.mu.Lock()
	c.st.lastOK = t0
	c.st.mu.Unlock()
	return nil
}

// replay does again the Unbinds and Updates of a recovery, in that order.
func (c *Cluster) replay(unbinds []unbindReq, updates map[string]Entry) error {
	for _, u := range unbinds {
		if err := c.op(func(ctx context.Context) error { return c.unbind(ctx, u.user, u.resource, u.stream) }); err != nil {
			return fmt.Errorf("unbind %s/%s again: %w", u.user, u.resource, err)
		}
	}
	for _, e := range updates {
		var n int64
		if err := c.op(func(ctx context.Context) (err error) {
			n, err = c.update(ctx, e)
			return err
		}); err != nil {
			return fmt.Errorf("update %s/%s again: %w", e.User, e.Resource, err)
		}
		if n < 0 {
			return errNoLease
		}
	}
	return nil
}

// reaper looks for dead replicas every Lease/3 (and once at the start)
// and reaps those whose reap lock it wins.
func (c *Cluster) reaper() {
	defer c.wg.Done()
	t := time.NewTicker(c.lease / 3)
	defer t.Stop()
	for {
		c.reapDead()
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Cluster) reapDead() {
	ctx, cancel := context.WithTimeout(c.ctx, c.lease)
	defer cancel()
	dead, err := deadScript.Run(ctx, c.rdb, []string{c.key("replicas", "")}, c.pfx, c.id).StringSlice()
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Debug("cluster: looking for dead replicas failed", "err", err)
		}
		return
	}
	for _, id := range dead {
		won, err := c.rdb.SetNX(ctx, c.key("reap:", id), c.id, c.lease).Result()
		if err != nil || !won {
			continue
		}
		gone, err := c.reap(ctx, id)
		quiet := errors.Is(err, errAlive) || errors.Is(err, errReaped)
		if err != nil && !quiet {
			c.log.Warn("cluster: reaping failed", "dead", id, "err", err)
		}
		if quiet && len(gone) == 0 {
			continue
		}
		c.log.Info("cluster: reaped a dead replica", "dead", id, "sessions", len(gone))
		c.cbMu.Lock()
		fn := c.onReap
		c.cbMu.Unlock()
		if fn != nil {
			fn(c.ctx, id, gone)
		}
	}
}

// errAlive stops a reap: the replica's lease exists again; errReaped:
// another replica has reaped it.
var (
	errAlive  = errors.New("cluster: the replica is alive")
	errReaped = errors.New("cluster: the replica is reaped already")
)

// reap removes the entries of replica id (whose lease key is gone) in
// chunks, and the replica from the zset, and returns the removed entries.
// Close reaps this replica so, after deleting its lease.
func (c *Cluster) reap(ctx context.Context, id string) ([]Entry, error) {
	keys := []string{c.key("own:", id), c.key("replicas", ""), c.key("online", ""), c.key("replica:", id)}
	ctx, cancel := context.WithTimeout(ctx, 4*c.lease)
	defer cancel()
	var gone []Entry
	for {
		r, err := reapScript.Run(ctx, c.rdb, keys, c.pfx, id, chunk).Slice()
		if err != nil {
			return gone, err
		}
		if len(r) == 0 {
			return gone, fmt.Errorf("cluster: reap %s: empty answer", id)
		}
		state, _ := r[0].(int64)
		switch state {
		case -1:
			return gone, errAlive
		case -2:
			return gone, errReaped
		}
		for _, v := range r[1:] {
			s, _ := v.(string)
			e, err := decodeEntry(s)
			if err != nil {
				c.log.Warn("cluster: reaped an unreadable entry", "dead", id, "err", err)
				continue
			}
			gone = append(gone, e)
		}
		if state == 1 {
			return gone, nil
		}
	}
}
