// Package cluster is what the replicas of one adhocd domain share in
// Redis: the directory of bound sessions (which replica holds which full
// JID, with its priority, availability and last presence), the replicas'
// leases and the reaping of dead replicas, and a bus on Redis pub/sub
// that carries envelopes (stanzas to deliver, kicks, calls and their
// replies, events) from one replica to another.
//
// The package does not decide what an envelope means, where a stanza
// goes, or what a reaped session's contacts are told: the router does,
// through Handle, OnReap, OnFence and OnRecover. Durable data (accounts,
// rosters, offline messages) is in PostgreSQL, not here: everything in
// Redis may be lost and is rebuilt from the replicas, whose in-process
// session tables are the truth.
//
// # Layout
//
// Every key and channel starts with "adhocd:{domain}:" — the braces make
// the domain a Redis Cluster hash tag, so all of a domain's keys are in
// one slot and the scripts may touch several of them.
//
//	key                      type         content
//	replica:<id>             string, PX   the lease: JSON {address, started}; it expires after Lease
//	                                      unless renewed (every Lease/3)
//	replicas                 zset         id → lease expiry (ms since 1970, Redis's clock): finds the dead
//	u:<user>                 hash         resource → entry JSON {user, resource, replica, stream,
//	                                      priority, available, presence, since}
//	own:<id>                 set          "user NUL resource" of every entry naming replica <id>
//	online                   set          users with at least one entry
//	reap:<id>                string, PX   "SET NX PX Lease" lock: the one survivor that reaps <id>
//	channel in:<id>          pub/sub      envelopes to replica <id> (Send, Call)
//	channel re:<id>          pub/sub      replies to replica <id>'s calls
//	channel ev               pub/sub      events for every replica (Broadcast)
//
// Envelopes are JSON: the Envelope's fields, with "call" (the sender
// waits for a reply) and "reply" flags.
//
// # Atomicity
//
// Every change of the directory is one Lua script (redis.NewScript:
// EVALSHA, EVAL when Redis has forgotten it): Bind (the resource conflict,
// the per-account cap, the owned sets of the new and the replaced
// replica, the online set), Update and Unbind (both only if the stored
// entry still has the caller's stream id), the lease's registration and
// renewal (the key and its zset score together), finding the dead
// (expired in the zset and without a lease key), reaping (entries still
// naming the dead replica, the online set, and the zset once the owned
// set is empty), and a recovery's pruning and writing back. Online reads
// both counts in one script so they agree. Bind and Update refuse to
// write without this replica's lease key, so that no entry outlives a
// reaped replica. The reads (Resources, ResourcesOf in one pipeline,
// Users, Replicas) are plain commands.
//
// # Failure semantics
//
// Pub/sub is at most once. PUBLISH answers how many subscribers got the
// message; Send reports 0 as delivered=false, which means the replica is
// gone (or its subscription is down this moment): the caller treats the
// session as unavailable for that stanza (a message goes to another
// resource or offline storage, an IQ gets an error, a presence is
// dropped). A message published while the receiver is reconnecting, or
// dropped by Redis because the receiver fell too far behind
// (client-output-buffer-limit pubsub), is lost without notice; the window
// is bounded by the subscriber's reconnection (go-redis reconnects at
// once after a connection error; a connection silent for a full lease,
// PINGs unanswered, is replaced) and, for a replica that is gone, by its
// lease. Redis Streams per replica would be the upgrade path to
// at-least-once.
//
// Leases: each replica's lease key lives Lease (default 20 s) and is
// renewed every Lease/3. Every replica runs the reaper every Lease/3: a
// replica whose zset expiry has passed (by Redis's clock) and whose lease
// key is gone is reaped by whoever wins reap:<id>, in chunks of 256
// sessions; the winner's OnReap fn gets the removed entries (to announce
// the users unavailable and record their logout). A crash of the reaper
// mid-way leaves the rest to the next winner once the lock expires; the
// entries it had removed are then announced by nobody.
//
// Fencing: a replica whose renewals have failed for a full lease (counted
// from the sending of the last one that succeeded, so never later than
// Redis lets the key expire) fences itself: OnFence's fn runs once (the
// server closes its streams with system-shutdown and turns not ready) and
// Bind answers ErrFenced. When Redis answers again the replica registers
// its lease again, prunes its entries that survived, and writes back the
// entries OnRecover's fn returns; then Bind works again.
//
// Rebuild: a Redis restart without persistence (or a Sentinel failover
// to a replica that had not seen the latest writes) empties the
// directory without any replica having fenced. The renewer notices its
// lease key missing (as does a Bind or an Update, which wake it) and
// recovers as after a fence, without OnFence: every replica writes its
// own sessions back. Until it has, Bind answers ErrFenced and Updates and
// Unbinds are kept and done again after the write-back. An entry written
// back loses to a session that another replica bound for the same
// resource meanwhile (OnLost: the caller closes its older one).
//
// # Concurrency
//
// Envelopes for this replica are handled by a pool of Options.Workers
// goroutines (default 32) fed by a queue of Options.Queue envelopes
// (default 1024); when both are busy the subscriber stops reading and
// Redis buffers. Replies to calls are read by a subscriber of their own,
// outside the pool, so that handlers may Call other replicas. The
// callbacks OnReap, OnFence and OnRecover run on the reaper and renewer
// goroutines, one at a time each.
//
// # Why hand-written
//
// The contract is small and specific to adhocd (a directory keyed by
// owner so that one pass cleans a dead replica, stream-guarded changes,
// leases with self-fencing), and go-redis gives all the primitives
// (scripts, pipelines, pub/sub with reconnection, Sentinel). The design
// follows what ejabberd, MongooseIM, Openfire and jackal teach about
// session tables (see docs and the scale-out design); no code here comes
// from another project.
package cluster
