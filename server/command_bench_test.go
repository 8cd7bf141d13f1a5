package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/defaults"
)

// commandBenchBatch is how many command IQs the client writes at once.
const commandBenchBatch = 16

// BenchmarkServerOneStageCommand measures what the server spends on one
// execution of a one-stage command (XEP-0050): a bound client on plain TCP
// writes commandBenchBatch IQs at once and waits for as many results, found
// by counting "</iq>" in what it reads. There is no TLS, and the client
// does no XML work, so the time is nearly all the server's: decoding,
// routing, the provider, encoding and the writes.
//
// greeting is adhoc's demo greeting (a note); online-users-num is XEP-0133's
// get-online-users-num run by an administrator (a result form), the command
// of bench/compare's one-stage rows.
func BenchmarkServerOneStageCommand(b *testing.B) {
	b.Run("greeting", func(b *testing.B) { benchServerCommand(b, adhoctest.TimeNode) })
	b.Run("online-users-num", func(b *testing.B) {
		benchServerCommand(b, "http://jabber.org/protocol/admin#get-online-users-num")
	})
}

func benchServerCommand(b *testing.B, node string) {
	cfg := config.Default()
	cfg.Limits.Rate = config.Rate{} // the server's work, not its pacing
	cfg.Admins = []string{"alice@localhost"}
	cfg.Domain = "localhost"
	cfg.C2S.Listen = "127.0.0.1:0"
	cfg.S2S.Listen = "" // no federation listener
	cfg.C2S.RequireTLS = false
	cfg.C2S.AllowPlainWithoutTLS = true
	cfg.Storage.Path = b.TempDir()
	s, err := New(cfg, WithLogger(slog.New(slog.DiscardHandler)), WithModules(defaults.Modules()...), WithCommands(adhoctest.Greeting()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	if err := s.AddUser(ctx, "alice", "wonderland"); err != nil {
		b.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const header = `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`
	login := header +
		`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00wonderland")) + `</auth>` +
		header + `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource></bind></iq>`
	if _, err := io.WriteString(c, login); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var got []byte
	for !bytes.Contains(got, []byte(`</jid></bind></iq>`)) {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			b.Fatalf("login: %v (read %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	iq := `<iq type='set' id='c1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + node + `' action='execute'/></iq>`
	batch := []byte(strings.Repeat(iq, commandBenchBatch))
	end := []byte("</iq>")
	check := true
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(batch); err != nil {
			b.Fatal(err)
		}
		seen, tail := 0, 0
		var first []byte
		for seen < commandBenchBatch {
			n, err := c.Read(buf[tail:])
			if err != nil {
				b.Fatal(err)
			}
			data := buf[:tail+n]
			if check && first == nil {
				first = append(first, data...)
			}
			seen += bytes.Count(data, end)
			// Keep the last bytes, which may hold the start of "</iq>".
			tail = copy(buf, data[max(0, len(data)-len(end)+1):])
		}
		if check {
			check = false
			if !bytes.Contains(first, []byte(`status="completed"`)) {
				b.Fatalf("not a completed command: %q", first)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*commandBenchBatch), "ns/command")
}
