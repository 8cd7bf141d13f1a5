package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"

	"github.com/adhocd/adhocd/cluster"
	"github.com/adhocd/adhocd/config"
)

// openCluster joins the cluster that cluster.redis names (docs/clustering.md);
// without one the server is a single process and this does nothing.
func (s *Server) openCluster(ctx context.Context) error {
	if !s.cfg.Cluster.Enabled() || s.cluster != nil {
		return nil
	}
	o, err := ClusterOptions(s.cfg, replicaID(s.cfg.Cluster.Replica), s.log.With("component", "cluster"))
	if err != nil {
		return err
	}
	cl, err := cluster.Open(ctx, o)
	if err != nil {
		return fmt.Errorf("server: join the cluster: %w", err)
	}
	s.cluster = cl
	s.log.Info("joined the cluster", "replica", cl.Replica())
	return nil
}

// ClusterOptions are the cluster.Options of cfg's cluster section for the
// replica id (the password from ADHOCD_REDIS_PASSWORD when set, the CA
// bundle read), for the server and for the tools that reach a cluster
// from outside (adhocd user).
func ClusterOptions(cfg config.Config, id string, log *slog.Logger) (cluster.Options, error) {
	c := cfg.Cluster
	o := cluster.Options{
		Addr:           c.Redis.Addr,
		Password:       c.Redis.Password,
		SentinelMaster: c.Redis.SentinelMaster,
		SentinelAddrs:  c.Redis.Sentinels(),
		Domain:         cfg.Domain,
		Replica:        id,
		Address:        cfg.C2S.Listen,
		Lease:          c.Lease.D(),
		Log:            log,
	}
	if p := os.Getenv(config.RedisPasswordEnv); p != "" {
		o.Password = p
	}
	if c.Redis.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.Redis.CAFile != "" {
			pem, err := os.ReadFile(c.Redis.CAFile)
			if err != nil {
				return o, fmt.Errorf("server: cluster.redis.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("server: cluster.redis.ca_file %s: no PEM certificate in it", c.Redis.CAFile)
			}
		}
		o.TLS = tc
	}
	return o, nil
}

// wireCluster hands the cluster's envelopes and events to the router.
func (s *Server) wireCluster() {
	if s.cluster == nil {
		return
	}
	s.cluster.Handle(s.handleEnvelope)
	s.cluster.OnReap(s.router.Reaped)
	s.cluster.OnFence(func() {
		s.log.Error("cluster: lost the directory for a full lease: closing every stream, not ready until it is back")
		s.router.Fence()
	})
	s.cluster.OnRecover(s.router.Entries)
	s.cluster.OnLost(s.router.Lost)
}

// closeCluster leaves the cluster (this replica's entries and lease go).
func (s *Server) closeCluster() error {
	if s.cluster == nil {
		return nil
	}
	err := s.cluster.Close()
	s.cluster = nil
	return err
}

// replicaID names this replica in the directory: the configured name or
// the host name (a pod's name), and a random boot epoch, so that a replica
// restarted under the same name is not taken for the one that was.
func replicaID(name string) string { return ReplicaID(name) }

// ReplicaID is a new id for a member of the cluster named name (the host
// name when empty), with a random boot epoch.
func ReplicaID(name string) string {
	if name == "" {
		name, _ = os.Hostname()
	}
	if name == "" {
		name = "adhocd"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// kindSettings is the event of a change of the administrators or access
// lists stored at run time (edit-admin, edit-blacklist, edit-whitelist):
// every other replica reads them again from the store. Args "what" is
// settingsAdmins or settingsAccess.
const (
	kindSettings   = "settings"
	settingsAdmins = "admins"
	settingsAccess = "access"
)

// settingsChanged tells the other replicas that what changed; with no
// cluster, nothing. A replica that misses the event (pub/sub is at most
// once) reads the settings again at its next restart or reload.
func (s *Server) settingsChanged(ctx context.Context, what string) {
	if s.cluster == nil {
		return
	}
	if err := s.cluster.Broadcast(ctx, cluster.Envelope{Kind: kindSettings, Args: map[string]string{"what": what}}); err != nil {
		s.log.Warn("cluster: announce a settings change", "what", what, "err", err)
	}
}

// handleEnvelope runs what another replica sent: settings events here,
// the rest in the router.
func (s *Server) handleEnvelope(ctx context.Context, env cluster.Envelope) *cluster.Envelope {
	if env.Kind != kindSettings {
		return s.router.HandleEnvelope(ctx, env)
	}
	if env.From == s.cluster.Replica() {
		return nil // applied when it was made
	}
	var err error
	switch what := env.Args["what"]; what {
	case settingsAdmins:
		err = s.loadAdmins(ctx)
	case settingsAccess:
		if err = s.loadAccess(ctx); err == nil {
			s.router.EndBlocked(s.IsAdmin)
		}
	default:
		s.log.Warn("cluster: unknown settings event", "what", what, "from", env.From)
	}
	if err != nil {
		s.log.Error("cluster: read changed settings", "from", env.From, "err", err)
	}
	return nil
}
