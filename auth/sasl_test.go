package auth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"github.com/adhocd/adhocd/account"
	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/tlscert"
)

// tlsState returns the server side of a real TLS 1.3 handshake over a pipe,
// and the client side, so that channel-binding data matches on both.
func tlsState(t *testing.T) (server, client *tls.ConnectionState) {
	t.Helper()
	cert, err := tlscert.SelfSigned("localhost", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}})
	cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	s, c := srv.ConnectionState(), cli.ConnectionState()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &s, &c
}

func newAuthenticator(t testing.TB) *auth.Authenticator {
	t.Helper()
	return newAuthenticatorWith(t, auth.Options{ChannelBinding: true})
}

// newAuthenticatorWith is an Authenticator with opts over a store that has
// alice, password wonderland.
func newAuthenticatorWith(t testing.TB, opts auth.Options) *auth.Authenticator {
	t.Helper()
	st, err := storage.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := account.New(st, "localhost", 4096, account.NoSessions{}).Add(context.Background(), "alice", "wonderland"); err != nil {
		t.Fatal(err)
	}
	return auth.NewAuthenticator(st, "localhost", opts)
}

// run drives one SCRAM exchange with the xdg-go client and returns the
// server's failure, if any.
func run(t *testing.T, a *auth.Authenticator, mech string, st auth.Stream, conv *scram.ClientConversation) error {
	t.Helper()
	ex, err := a.Start(mech, st)
	if err != nil {
		return err
	}
	ctx := context.Background()
	msg, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	for {
		out, done, err := ex.Step(ctx, []byte(msg))
		if err != nil {
			return err
		}
		if done {
			if _, err := conv.Step(string(out)); err != nil {
				t.Fatalf("client rejected the server's final message: %v", err)
			}
			if ex.Username() != "alice" {
				t.Fatalf("username %q", ex.Username())
			}
			return nil
		}
		if msg, err = conv.Step(string(out)); err != nil {
			t.Fatal(err)
		}
	}
}

func client(t *testing.T, password string) *scram.Client {
	t.Helper()
	c, err := scram.SHA256.NewClient("alice", password, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func condition(err error) string {
	var f *auth.Failure
	if errors.As(err, &f) {
		return f.Condition
	}
	return "not a failure: " + err.Error()
}

func TestChannelBindingAndDowngrade(t *testing.T) {
	srvTLS, cliTLS := tlsState(t)
	a := newAuthenticatorWith(t, auth.Options{ChannelBinding: true, Certificate: cliTLS.PeerCertificates[0]})
	if got := strings.Join(a.ChannelBindingTypes(auth.Stream{TLS: srvTLS}), " "); got != "tls-exporter tls-server-end-point" {
		t.Fatalf("binding types on TLS 1.3: %s", got)
	}
	if got := a.Mechanisms(auth.Stream{TLS: srvTLS}); got[0] != auth.SCRAMSHA256Plus {
		t.Fatalf("mechanisms on TLS: %v", got)
	}
	if got := a.Mechanisms(auth.Stream{}); strings.Contains(strings.Join(got, " "), "PLUS") || strings.Contains(strings.Join(got, " "), "PLAIN") {
		t.Fatalf("mechanisms without TLS: %v", got)
	}
	exporter, err := scram.NewTLSExporterBinding(cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	stream := auth.Stream{TLS: srvTLS}

	if err := run(t, a, auth.SCRAMSHA256Plus, stream, client(t, "wonderland").NewConversationWithChannelBinding(exporter)); err != nil {
		t.Fatalf("SCRAM-SHA-256-PLUS with tls-exporter: %v", err)
	}
	// tls-server-end-point binds to the server's certificate, which the
	// client sees as its peer's.
	endPoint, err := scram.NewTLSServerEndpointBinding(cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t, a, auth.SCRAMSHA256Plus, stream, client(t, "wonderland").NewConversationWithChannelBinding(endPoint)); err != nil {
		t.Fatalf("SCRAM-SHA-256-PLUS with tls-server-end-point: %v", err)
	}
	// The certificate the stream's own handshake sent wins over the
	// configured one: after a renewal, a stream that began before it binds
	// to the certificate it got.
	renewed, err := tlscert.SelfSigned("localhost", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	renewedLeaf, err := x509.ParseCertificate(renewed.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	b := newAuthenticatorWith(t, auth.Options{ChannelBinding: true, Certificate: renewedLeaf})
	if err := run(t, b, auth.SCRAMSHA256Plus, stream, client(t, "wonderland").NewConversationWithChannelBinding(endPoint)); err == nil {
		t.Fatal("tls-server-end-point bound to a certificate the stream never saw")
	}
	older := auth.Stream{TLS: srvTLS, ServerCertificate: cliTLS.PeerCertificates[0]}
	if err := run(t, b, auth.SCRAMSHA256Plus, older, client(t, "wonderland").NewConversationWithChannelBinding(endPoint)); err != nil {
		t.Fatalf("tls-server-end-point with the stream's own certificate: %v", err)
	}
	if err := run(t, a, auth.SCRAMSHA256, stream, client(t, "wonderland").NewConversation()); err != nil {
		t.Fatalf("SCRAM-SHA-256 without binding (n flag): %v", err)
	}
	// "y": the client supports binding but saw no -PLUS. We offered it, so
	// this is the downgrade RFC 5802 §6 guards against.
	yConv := client(t, "wonderland").NewConversationAdvertisingChannelBinding()
	if err := run(t, a, auth.SCRAMSHA256, stream, yConv); err == nil {
		t.Fatal("a y-flag exchange was accepted although -PLUS was offered")
	}
	// tls-unique does not exist on TLS 1.3: the -PLUS attempt is refused...
	unique := scram.NewTLSUniqueBinding([]byte("not-a-real-tls-unique"))
	err = run(t, a, auth.SCRAMSHA256Plus, stream, client(t, "wonderland").NewConversationWithChannelBinding(unique))
	if condition(err) != auth.MalformedRequest || !errors.Is(err, auth.ErrChannelBindingType) {
		t.Fatalf("tls-unique on TLS 1.3: %v", err)
	}
	// The failure tells the client what this connection has and that it
	// may retry without binding.
	var f *auth.Failure
	if errors.As(err, &f); f == nil || !strings.Contains(f.Text, "which offers "+strings.Join(a.ChannelBindingTypes(auth.Stream{TLS: srvTLS}), ", ")) || !strings.Contains(f.Text, "without channel binding") {
		t.Fatalf("the failure's text does not name the binding types or the retry: %q", f.Text)
	}
	// ...and the honest y-flag retry that follows on that stream succeeds.
	stream.CBTypeRefused = true
	if err := run(t, a, auth.SCRAMSHA256, stream, client(t, "wonderland").NewConversationAdvertisingChannelBinding()); err != nil {
		t.Fatalf("y-flag retry after a refused binding type: %v", err)
	}
	// A wrong password and an unknown user fail alike.
	if err := run(t, a, auth.SCRAMSHA256, stream, client(t, "wrong").NewConversation()); condition(err) != auth.NotAuthorized {
		t.Fatalf("wrong password: %v", err)
	}
	ghost, _ := scram.SHA256.NewClient("ghost", "wonderland", "")
	if err := run(t, a, auth.SCRAMSHA256, stream, ghost.NewConversation()); condition(err) != auth.NotAuthorized {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestChannelBindingOff: with channel binding turned off (for bots that give
// up at the first SASL failure) no -PLUS mechanism and no binding type is
// offered, and a client that supports binding says "y", which is then its
// honest answer and is accepted.
func TestChannelBindingOff(t *testing.T) {
	a := newAuthenticatorWith(t, auth.Options{})
	srvTLS, _ := tlsState(t)
	if got := strings.Join(a.Mechanisms(auth.Stream{TLS: srvTLS}), " "); strings.Contains(got, "PLUS") || !strings.Contains(got, auth.SCRAMSHA256) {
		t.Fatalf("mechanisms with channel binding off: %s", got)
	}
	if got := a.ChannelBindingTypes(auth.Stream{TLS: srvTLS}); len(got) != 0 {
		t.Fatalf("binding types advertised with channel binding off: %v", got)
	}
	if _, err := a.Start(auth.SCRAMSHA256Plus, auth.Stream{TLS: srvTLS}); condition(err) != auth.InvalidMechanism {
		t.Fatalf("-PLUS started with channel binding off: %v", err)
	}
	stream := auth.Stream{TLS: srvTLS}
	if err := run(t, a, auth.SCRAMSHA256, stream, client(t, "wonderland").NewConversationAdvertisingChannelBinding()); err != nil {
		t.Fatalf("y flag with nothing offered: %v", err)
	}
}

// BenchmarkSCRAMExchange measures the server's side of one SCRAM-SHA-256
// exchange in process (4096 iterations): the cost a login puts on the CPU
// apart from TLS and the network.
func BenchmarkSCRAMExchange(b *testing.B) {
	a := newAuthenticator(b)
	c, _ := scram.SHA256.NewClient("alice", "wonderland", "")
	ctx := context.Background()
	for b.Loop() {
		ex, err := a.Start(auth.SCRAMSHA256, auth.Stream{})
		if err != nil {
			b.Fatal(err)
		}
		conv := c.NewConversation()
		msg, _ := conv.Step("")
		for {
			out, done, err := ex.Step(ctx, []byte(msg))
			if err != nil {
				b.Fatal(err)
			}
			if done {
				break
			}
			msg, _ = conv.Step(string(out))
		}
	}
}
