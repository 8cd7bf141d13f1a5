package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/xdg-go/scram"
	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/storage"
)

// Mechanism names as advertised in <mechanisms/>.
const (
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	SCRAMSHA256     = "SCRAM-SHA-256"
	SCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	SCRAMSHA1       = "SCRAM-SHA-1"
	Plain           = "PLAIN"
)

// Channel-binding types (RFC 5929, RFC 9266) as advertised by XEP-0440.
const (
	CBExporter       = "tls-exporter"
	CBServerEndPoint = "tls-server-end-point"
	CBUnique         = "tls-unique"
)

// SASL failure conditions of RFC 6120 §6.5.
const (
	Aborted              = "aborted"
	AccountDisabled      = "account-disabled"
	EncryptionRequired   = "encryption-required"
	IncorrectEncoding    = "incorrect-encoding"
	InvalidAuthzID       = "invalid-authzid"
	InvalidMechanism     = "invalid-mechanism"
	MalformedRequest     = "malformed-request"
	NotAuthorized        = "not-authorized"
	TemporaryAuthFailure = "temporary-auth-failure"
)

// ErrChannelBindingType marks a failure caused by a -PLUS request for a
// channel-binding type this connection cannot provide (tls-unique on TLS 1.3).
var ErrChannelBindingType = errors.New("auth: channel-binding type not available on this connection")

// Failure ends a SASL exchange with an RFC 6120 §6.5 condition. Text is safe
// to send to the client; Err is the cause, for the log only.
type Failure struct {
	Condition string
	Text      string
	Err       error
}

func (f *Failure) Error() string {
	if f.Err != nil {
		return fmt.Sprintf("auth: %s: %v", f.Condition, f.Err)
	}
	return "auth: " + f.Condition
}

func (f *Failure) Unwrap() error { return f.Err }

func fail(cond string, err error) *Failure { return &Failure{Condition: cond, Err: err} }

// Authenticator runs SASL exchanges against a Store.
type Authenticator struct {
	store  storage.Store
	domain string
	opts   Options
	// secret keys the fake credentials of unknown users.
	secret []byte
	// Check, if set, may refuse an authenticated account (blocked, say) with
	// a failure such as not-authorized or account-disabled.
	Check func(ctx context.Context, a storage.Account) *Failure
}

// Options are the operator's choices of what is offered.
type Options struct {
	// PlainWithoutTLS offers PLAIN on unencrypted streams (benchmarks only).
	PlainWithoutTLS bool
	// ChannelBinding offers the SCRAM-*-PLUS mechanisms and advertises the
	// channel-binding types on TLS streams.
	ChannelBinding bool
	// Certificate is the server's own TLS certificate, which
	// tls-server-end-point binds to (RFC 5929 §4.1), for streams whose
	// Stream.ServerCertificate is not set; nil: that type is not offered on
	// them.
	Certificate *x509.Certificate
}

// NewAuthenticator returns an Authenticator for accounts of domain.
func NewAuthenticator(store storage.Store, domain string, opts Options) *Authenticator {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return &Authenticator{store: store, domain: domain, opts: opts, secret: secret}
}

// Mechanisms lists the mechanisms offered on a stream, strongest first.
func (a *Authenticator) Mechanisms(st Stream) []string {
	if st.TLS == nil {
		m := []string{SCRAMSHA256, SCRAMSHA1}
		if a.opts.PlainWithoutTLS {
			m = append(m, Plain)
		}
		return m
	}
	var m []string
	if len(a.ChannelBindingTypes(st)) > 0 {
		m = append(m, SCRAMSHA256Plus, SCRAMSHA1Plus)
	}
	return append(m, SCRAMSHA256, SCRAMSHA1, Plain)
}

// ChannelBindingTypes lists the channel-binding types the TLS connection can
// provide, for XEP-0440's <sasl-channel-binding/>: none when channel binding
// is turned off.
func (a *Authenticator) ChannelBindingTypes(st Stream) []string {
	if !a.opts.ChannelBinding {
		return nil
	}
	return a.connectionBindings(st)
}

// connectionBindings lists the channel-binding types the stream's TLS
// connection can provide.
func (a *Authenticator) connectionBindings(st Stream) []string {
	tlsState := st.TLS
	if tlsState == nil || !tlsState.HandshakeComplete {
		return nil
	}
	var types []string
	if _, err := scram.NewTLSExporterBinding(tlsState); err == nil {
		types = append(types, CBExporter)
	}
	if _, err := a.serverEndPoint(st); err == nil {
		types = append(types, CBServerEndPoint)
	}
	if len(tlsState.TLSUnique) > 0 {
		types = append(types, CBUnique)
	}
	return types
}

// Stream is what an exchange needs to know of its stream.
type Stream struct {
	// TLS is the connection state, nil on an unencrypted stream.
	TLS *tls.ConnectionState
	// CBTypeRefused is set once a -PLUS attempt on this stream failed with
	// ErrChannelBindingType. A client that then retries without channel
	// binding says "y" (it supports binding, but none the server offered
	// worked); that is not a stripped advertisement, so "y" is accepted
	// instead of being refused as the downgrade RFC 5802 §6 guards against.
	// slixmpp 1.8 on TLS 1.3 does exactly this.
	CBTypeRefused bool
	// ServerCertificate is the certificate this stream's TLS handshake sent
	// (the server's certificate can be renewed while it runs), which
	// tls-server-end-point binds to; nil: Options.Certificate.
	ServerCertificate *x509.Certificate
}

// Exchange is one SASL authentication in progress.
type Exchange struct {
	a        *Authenticator
	mech     string
	st       Stream
	tlsState *tls.ConnectionState
	allowY   bool
	conv     *scram.ServerConversation
	account  storage.Account
	known    bool
	lookErr  error
	done     bool
}

// Start begins an exchange with the named mechanism. A *Failure is returned
// for a mechanism that is unknown or not offered on this stream.
func (a *Authenticator) Start(mech string, st Stream) (*Exchange, error) {
	tlsState := st.TLS
	offered := false
	for _, m := range a.Mechanisms(st) {
		if m == mech {
			offered = true
			break
		}
	}
	if !offered {
		if mech == Plain && tlsState == nil {
			return nil, fail(EncryptionRequired, errors.New("PLAIN without TLS"))
		}
		return nil, fail(InvalidMechanism, fmt.Errorf("mechanism %q not offered", mech))
	}
	return &Exchange{a: a, mech: mech, st: st, tlsState: tlsState, allowY: st.CBTypeRefused}, nil
}

// Mechanism returns the mechanism in use.
func (e *Exchange) Mechanism() string { return e.mech }

// Username returns the authenticated localpart once the exchange succeeded.
func (e *Exchange) Username() string {
	if !e.done {
		return ""
	}
	return e.account.Username
}

// Step consumes the client's data (the initial response or a <response/>) and
// returns what the server sends: a challenge while done is false, the
// additional data of <success/> once it is true. Any error is a *Failure and
// ends the exchange.
func (e *Exchange) Step(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	if e.done {
		return nil, false, fail(MalformedRequest, errors.New("exchange already finished"))
	}
	if e.mech == Plain {
		return e.plain(ctx, in)
	}
	return e.scramStep(ctx, in)
}

func (e *Exchange) plain(ctx context.Context, in []byte) ([]byte, bool, error) {
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 {
		return nil, false, fail(MalformedRequest, errors.New("PLAIN message is not authzid NUL authcid NUL passwd"))
	}
	authz, authc, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if err := e.lookup(ctx, authc); err != nil {
		return nil, false, err
	}
	if !e.known || !VerifyPassword(e.account, pass) {
		return nil, false, fail(NotAuthorized, errors.New("bad username or password"))
	}
	if err := e.finish(ctx, authz); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

func (e *Exchange) scramStep(ctx context.Context, in []byte) ([]byte, bool, error) {
	if e.conv == nil {
		conv, err := e.newConversation(ctx, in)
		if err != nil {
			return nil, false, err
		}
		e.conv = conv
	}
	resp, err := e.conv.Step(string(in))
	if err != nil {
		switch {
		case e.lookErr != nil:
			var f *Failure
			if errors.As(e.lookErr, &f) {
				return nil, false, f
			}
			return nil, false, fail(TemporaryAuthFailure, e.lookErr)
		case strings.Contains(resp, "invalid-proof") || e.conv.Done():
			return nil, false, fail(NotAuthorized, err)
		default:
			return nil, false, fail(MalformedRequest, err)
		}
	}
	if !e.conv.Done() {
		return []byte(resp), false, nil
	}
	if !e.conv.Valid() || !e.known {
		return nil, false, fail(NotAuthorized, errors.New("bad username or password"))
	}
	if err := e.finish(ctx, e.conv.AuthzID()); err != nil {
		return nil, false, err
	}
	return []byte(resp), true, nil
}

// newConversation chooses the channel binding from the client's gs2 header:
// -PLUS mechanisms must use p=TYPE with a type this connection provides; the
// plain mechanisms on TLS are bound to what was advertised so that a client
// answering "y" (a downgrade) is refused.
func (e *Exchange) newConversation(ctx context.Context, first []byte) (*scram.ServerConversation, error) {
	h, pick := hashFor(e.mech)
	srv, err := h.NewServer(func(username string) (scram.StoredCredentials, error) {
		if err := e.lookup(ctx, username); err != nil {
			return scram.StoredCredentials{}, err
		}
		c := pick(e.account)
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
			StoredKey:  c.StoredKey,
			ServerKey:  c.ServerKey,
		}, nil
	})
	if err != nil {
		return nil, fail(TemporaryAuthFailure, err)
	}
	plus := strings.HasSuffix(e.mech, "-PLUS")
	flag, _, _ := strings.Cut(string(first), ",")
	if plus != strings.HasPrefix(flag, "p=") {
		return nil, fail(MalformedRequest, fmt.Errorf("gs2 flag %q does not fit %s", flag, e.mech))
	}
	if e.tlsState == nil || (e.allowY && flag == "y") || !e.a.opts.ChannelBinding {
		// With channel binding off nothing is advertised, so a "y" is the
		// client's honest answer, not a stripped offer.
		return srv.NewConversation(), nil
	}
	want := CBExporter
	if plus {
		want = strings.TrimPrefix(flag, "p=")
	}
	cb, err := e.a.binding(want, e.st)
	if err != nil {
		if plus {
			return nil, &Failure{Condition: MalformedRequest, Err: fmt.Errorf("%w: %v", ErrChannelBindingType, err),
				Text: fmt.Sprintf("channel binding %s is not available on this connection, which offers %s; "+
					"retry with one of those, or without channel binding (%s)",
					want, strings.Join(e.a.connectionBindings(e.st), ", "), strings.TrimSuffix(e.mech, "-PLUS"))}
		}
		return srv.NewConversation(), nil
	}
	if plus {
		return srv.NewConversationWithChannelBindingRequired(cb), nil
	}
	return srv.NewConversationWithChannelBinding(cb), nil
}

func (a *Authenticator) binding(typ string, st Stream) (scram.ChannelBinding, error) {
	switch typ {
	case CBExporter:
		return scram.NewTLSExporterBinding(st.TLS)
	case CBServerEndPoint:
		return a.serverEndPoint(st)
	case CBUnique:
		if len(st.TLS.TLSUnique) == 0 {
			return scram.ChannelBinding{}, errors.New("tls-unique is not available on this connection")
		}
		return scram.NewTLSUniqueBinding(st.TLS.TLSUnique), nil
	}
	return scram.ChannelBinding{}, fmt.Errorf("unsupported channel-binding type %q", typ)
}

// serverEndPoint is the tls-server-end-point binding: the hash of the
// server's certificate, with the hash RFC 5929 §4.1 picks for its signature
// algorithm. xdg-go/scram hashes the peer's certificate, which is the right
// one on a client; on the server it is given our own.
func (a *Authenticator) serverEndPoint(st Stream) (scram.ChannelBinding, error) {
	cert := st.ServerCertificate
	if cert == nil {
		cert = a.opts.Certificate
	}
	if cert == nil {
		return scram.ChannelBinding{}, errors.New("no server certificate for tls-server-end-point")
	}
	return scram.NewTLSServerEndpointBinding(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}})
}

// lookup loads the account named by the client. An unknown user gets
// credentials derived from a server secret so that the exchange fails at the
// proof exactly as a wrong password does.
func (e *Exchange) lookup(ctx context.Context, name string) error {
	j, err := jid.New(name, e.a.domain, "")
	if err != nil || name == "" {
		e.lookErr = fail(NotAuthorized, fmt.Errorf("invalid username %q", name))
		return e.lookErr
	}
	acct, err := e.a.store.Account(ctx, j.Localpart())
	switch {
	case err == nil:
		e.account, e.known = acct, true
	case errors.Is(err, storage.ErrNotFound):
		e.account = e.fakeAccount(j.Localpart())
	default:
		e.lookErr = fail(TemporaryAuthFailure, err)
		return e.lookErr
	}
	return nil
}

func (e *Exchange) fakeAccount(name string) storage.Account {
	mac := hmac.New(sha256.New, e.a.secret)
	mac.Write([]byte(name))
	sum := mac.Sum(nil)
	c := storage.Credential{Salt: sum[:SaltSize], Iterations: 4096, StoredKey: sum, ServerKey: sum}
	return storage.Account{Username: name, SHA1: c, SHA256: c}
}

// finish applies the checks that follow a correct password: the authzid, a
// disabled account, and the Authenticator's own Check.
func (e *Exchange) finish(ctx context.Context, authz string) error {
	if authz != "" {
		want := e.account.Username + "@" + e.a.domain
		if j, err := jid.Parse(authz); err != nil || j.Bare().String() != want || j.Resourcepart() != "" {
			return fail(InvalidAuthzID, fmt.Errorf("authzid %q is not %q", authz, want))
		}
	}
	if e.account.Disabled {
		return fail(AccountDisabled, fmt.Errorf("account %q is disabled", e.account.Username))
	}
	if e.a.Check != nil {
		if f := e.a.Check(ctx, e.account); f != nil {
			return f
		}
	}
	e.done = true
	return nil
}
