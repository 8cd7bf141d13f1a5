package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/storage"
)

// WithReload sets where Reload reads the configuration from (adhocd:
// config.Load of its config file).
func WithReload(load func() (config.Config, error)) Option {
	return func(s *Server) { s.reload = load }
}

// Reload reads the configuration again and applies, without a restart, what
// can change live: admins, limits and the admin section (idle_after, motd);
// then it reads the certificate files again (a renewal; the paths
// themselves need a restart). Limits apply to what happens next: new
// streams get the new stanza limits, the other limits are read as they are
// used. It returns the keys that changed but need a restart to apply; an
// error about the certificate comes after the configuration was applied,
// and the certificate in use stays.
func (s *Server) Reload(ctx context.Context) (needRestart []string, err error) {
	if s.reload == nil {
		return nil, errors.New("server: no configuration source to reload from")
	}
	cfg, err := s.reload()
	if err != nil {
		return nil, fmt.Errorf("server: reload: %w", err)
	}
	cur := s.cfg
	for _, k := range []struct {
		name     string
		old, new any
	}{
		{"domain", cur.Domain, cfg.Domain},
		{"c2s", cur.C2S, cfg.C2S},
		{"tls", cur.TLS, cfg.TLS},
		{"storage", cur.Storage, cfg.Storage},
		{"cluster", cur.Cluster, cfg.Cluster},
		{"metrics", cur.Metrics, cfg.Metrics},
		{"adhoc", cur.Adhoc, cfg.Adhoc},
		{"log", cur.Log, cfg.Log},
		{"websocket", cur.WebSocket, cfg.WebSocket},
		{"otel", cur.OTel, cfg.OTel},
		{"debug", cur.Debug, cfg.Debug},
		{"shutdown", cur.Shutdown, cfg.Shutdown},
		{"muc", cur.MUC, cfg.MUC},
		{"components", cur.Components, cfg.Components},
		{"http_upload", cur.HTTPUpload, cfg.HTTPUpload},
		{"s2s", cur.S2S, cfg.S2S},
	} {
		if !reflect.DeepEqual(k.old, k.new) {
			needRestart = append(needRestart, k.name)
		}
	}
	s.lim.Store(&cfg.Limits)
	if f, ok := s.store.(storage.DiskFloorSetter); ok {
		f.SetMinFreeDisk(cfg.Limits.MinFreeDiskBytes)
	}
	s.adminCfg.Store(&cfg.Admin)
	// Only the configured half: an edit-admin running meanwhile keeps its
	// stored admins.
	s.admins.Reconfigure(cfg.Admins)
	for _, fn := range s.onReload {
		fn(ctx, s.Config())
	}
	s.log.Info("configuration reloaded", "needs_restart", needRestart)
	return needRestart, s.ReloadCertificate()
}

func (h *host) Reload(ctx context.Context) ([]string, error) { return h.s.Reload(ctx) }

func (h *host) OnReload(fn func(context.Context, config.Config)) {
	h.s.onReload = append(h.s.onReload, fn)
}
