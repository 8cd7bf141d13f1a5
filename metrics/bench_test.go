package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics"
)

// BenchmarkOneStage runs a one-stage command through the provider with
// instrumentation off (no observer) and on (counter, histogram and a span
// per request, Prometheus reader, traces not exported), so that the cost of
// the instrumentation shows as the ratio of the two.
func BenchmarkOneStage(b *testing.B) {
	requester := jid.MustParse("alice@localhost/bench")
	b.Run("off", func(b *testing.B) { adhoctest.BenchGreeting(b, adhoc.NewProvider(), requester, domain) })
	b.Run("on", func(b *testing.B) {
		tel, err := metrics.New(context.Background(), config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		adhoctest.BenchGreeting(b, adhoc.NewProvider(adhoc.WithObserver(tel.Commands())), requester, domain)
	})
}
