package router

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/c2s"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// hooks are the capabilities the started modules declared (modules/iq.go,
// modules/stanza.go), in the order the modules started. They are set while
// the server starts and only read afterwards.
type hooks struct {
	// iqs, accountIQs and bareIQs are the IQ routes to the server JID, to
	// an account's own bare JID (or none), and to any local bare JID.
	iqs, accountIQs, bareIQs map[modules.Route]iqHandler
	messages                 []modules.MessageHook
	inbound                  []modules.InboundMessageHook
	outbound                 []modules.OutboundMessageHook
	rewriters                []modules.PresenceRewriter
	copies                   []modules.CopyHook
	offline                  modules.OfflineStore
	online                   []modules.OnlineHook
	reachable                []modules.ReachableHook
	presence                 []modules.PresenceHook
	subscriptions            []modules.SubscriptionHook
	interceptors             []modules.StanzaInterceptor
	// streamElements are the top-level non-stanza elements modules handle
	// (modules.StreamElementHandler), by name.
	streamElements map[xml.Name]modules.StreamElementHandler
	// services are the modules' own domains (modules.DomainHandler), by
	// domain.
	services map[string]modules.DomainHandler
}

// AddModule takes what a started module declares of the router's
// capabilities (modules/iq.go, modules/stanza.go): its IQ routes and its
// hooks. Disco features are the server's.
func (s *Router) AddModule(m modules.Module) error {
	h := &s.hooks
	if ih, ok := m.(modules.IQHandler); ok {
		if err := addRoutes(&h.iqs, ih.Routes(), ih, m.Name()); err != nil {
			return err
		}
	}
	if ah, ok := m.(modules.AccountIQHandler); ok {
		if err := addRoutes(&h.accountIQs, ah.AccountRoutes(), ah, m.Name()); err != nil {
			return err
		}
	}
	if bh, ok := m.(modules.BareJIDIQHandler); ok {
		if err := addRoutes(&h.bareIQs, bh.BareJIDRoutes(), bh, m.Name()); err != nil {
			return err
		}
	}
	if ih, ok := m.(modules.InboundMessageHook); ok {
		h.inbound = append(h.inbound, ih)
	}
	if ch, ok := m.(modules.CopyHook); ok {
		h.copies = append(h.copies, ch)
	}
	if pr, ok := m.(modules.PresenceRewriter); ok {
		h.rewriters = append(h.rewriters, pr)
	}
	if oh, ok := m.(modules.OutboundMessageHook); ok {
		h.outbound = append(h.outbound, oh)
	}
	if mh, ok := m.(modules.MessageHook); ok {
		h.messages = append(h.messages, mh)
	}
	if os, ok := m.(modules.OfflineStore); ok {
		if h.offline != nil {
			return fmt.Errorf("router: module %s: offline messages are kept by another module", m.Name())
		}
		h.offline = os
	}
	if oh, ok := m.(modules.OnlineHook); ok {
		h.online = append(h.online, oh)
	}
	if ph, ok := m.(modules.PresenceHook); ok {
		h.presence = append(h.presence, ph)
	}
	if rh, ok := m.(modules.ReachableHook); ok {
		h.reachable = append(h.reachable, rh)
	}
	if sh, ok := m.(modules.SubscriptionHook); ok {
		h.subscriptions = append(h.subscriptions, sh)
	}
	if si, ok := m.(modules.StanzaInterceptor); ok {
		h.interceptors = append(h.interceptors, si)
	}
	if eh, ok := m.(modules.StreamElementHandler); ok {
		if err := addStreamElements(h, eh, m.Name()); err != nil {
			return err
		}
	}
	if dh, ok := m.(modules.DomainHandler); ok {
		for _, d := range dh.Domains() {
			j, err := jid.New("", d, "")
			switch {
			case err != nil:
				return fmt.Errorf("router: module %s: domain %q: %w", m.Name(), d, err)
			case j.Domainpart() == s.domain.Domainpart():
				return fmt.Errorf("router: module %s: the server's own domain %s is not a service's", m.Name(), d)
			case h.services[j.Domainpart()] != nil:
				return fmt.Errorf("router: module %s: domain %s is served by another module", m.Name(), d)
			}
			if h.services == nil {
				h.services = make(map[string]modules.DomainHandler)
			}
			h.services[j.Domainpart()] = dh
		}
	}
	return nil
}

// service returns what takes the stanzas for to's domain when it is not
// the server's: the module serving it, or federation (remote.go); nil for
// none.
func (s *Router) service(to jid.JID) Remote {
	if h := s.served(to); h != nil {
		return h
	}
	if s.remoteDomain(to) {
		return s.remote
	}
	return nil
}

// toService hands a local session's stanza to the module serving its
// domain and answers the sender with the error it returns (a presence's
// too: the sender is found by its from).
func (s *Router) toService(ctx context.Context, h Remote, from jid.JID, el *wire.Element, to jid.JID) {
	err := h.HandleStanza(ctx, from, el, to)
	if err == nil {
		return
	}
	var se stanza.Error
	if !errors.As(err, &se) {
		var rendered interface{ TokenReader() xml.TokenReader }
		if errors.As(err, &rendered) {
			if c := s.sender(from); c != nil {
				_ = s.bounceWith(c, el, rendered.TokenReader())
			}
			return
		}
		s.log.Error("service stanza", "to", to.String(), "kind", el.Start.Name.Local, "err", err)
		se = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	s.sendError(from.String(), el, se)
}

// addStreamElements takes the names of a StreamElementHandler: none in
// jabber:client or XEP-0198's namespace, none another module declared.
func addStreamElements(h *hooks, eh modules.StreamElementHandler, name string) error {
	if h.streamElements == nil {
		h.streamElements = make(map[xml.Name]modules.StreamElementHandler)
	}
	for _, n := range eh.StreamElements() {
		switch {
		case n.Space == "" || n.Space == stanza.NSClient || n.Space == c2s.NSSM:
			return fmt.Errorf("router: module %s: stream element {%s}%s: not a namespace of its own", name, n.Space, n.Local)
		case h.streamElements[n] != nil:
			return fmt.Errorf("router: module %s: stream element {%s}%s is handled by another module", name, n.Space, n.Local)
		}
		h.streamElements[n] = eh
	}
	return nil
}

// iqHandler is what the IQ handler capabilities share.
type iqHandler interface {
	HandleIQ(ctx context.Context, iq modules.IQ) (xml.TokenReader, error)
}

func addRoutes(table *map[modules.Route]iqHandler, routes []modules.Route, h iqHandler, name string) error {
	if *table == nil {
		*table = make(map[modules.Route]iqHandler)
	}
	for _, r := range routes {
		if _, taken := (*table)[r]; taken {
			return fmt.Errorf("router: module %s: IQ %s {%s}%s is served by another module", name, r.Type, r.Payload.Space, r.Payload.Local)
		}
		(*table)[r] = h
	}
	return nil
}

// errRecipientOffline is the answer when a message can be neither delivered
// nor kept.
var errRecipientOffline = stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable,
	Text: map[string]string{"en": "the recipient is offline"}}

// keepOffline hands a message for user, who has no session to take it, to
// the module that keeps offline messages; without one the sender hears the
// recipient is offline.
func (s *Router) keepOffline(ctx context.Context, el *wire.Element, to jid.JID, user string) error {
	if s.hooks.offline == nil {
		return errRecipientOffline
	}
	return s.hooks.offline.KeepOffline(ctx, modules.Message{El: el, To: to}, user)
}

// messageInbound runs the modules' inbound message hooks on a message for
// the local account user, and returns what is to be delivered.
func (s *Router) messageInbound(ctx context.Context, el *wire.Element, to jid.JID, user string) *wire.Element {
	for _, h := range s.hooks.inbound {
		if changed := h.MessageInbound(ctx, modules.Message{El: el, To: to}, user); changed != nil {
			el = changed
		}
	}
	return el
}

// personal reports whether a module says el is for the session it was
// addressed to alone (modules.CopyHook).
func (s *Router) personal(el *wire.Element) bool {
	for _, h := range s.hooks.copies {
		if h.Personal(modules.Message{El: el}) {
			return true
		}
	}
	return false
}

// hasCopy reports whether a module gave c a copy of el, a message for
// another session of user (modules.CopyHook).
func (s *Router) hasCopy(el *wire.Element, user string, c *session) bool {
	for _, h := range s.hooks.copies {
		if h.HasCopy(modules.Message{El: el}, user, c) {
			return true
		}
	}
	return false
}

// rewritePresence runs the modules' presence rewriters on a presence a
// session sent, and returns what is to be routed.
func (s *Router) rewritePresence(ctx context.Context, c *session, el *wire.Element) *wire.Element {
	for _, r := range s.hooks.rewriters {
		if changed := r.RewritePresence(ctx, c, el); changed != nil {
			el = changed
		}
	}
	return el
}

// messageOutbound runs the modules' outbound message hooks on a message a
// session sent, before it is delivered.
func (s *Router) messageOutbound(ctx context.Context, c *session, el *wire.Element, to jid.JID) {
	for _, h := range s.hooks.outbound {
		h.MessageOutbound(ctx, modules.Message{El: el, To: to, Sender: c})
	}
}

// messageSent and messageReceived run the modules' message hooks.
func (s *Router) messageSent(ctx context.Context, c *session, el *wire.Element, to jid.JID) {
	for _, h := range s.hooks.messages {
		h.MessageSent(ctx, modules.Message{El: el, To: to, Sender: c})
	}
}

func (s *Router) messageReceived(ctx context.Context, el *wire.Element, to jid.JID, user string, got ...*session) {
	if len(s.hooks.messages) == 0 {
		return
	}
	sessions := make([]modules.Session, len(got))
	for i, c := range got {
		sessions[i] = c
	}
	for _, h := range s.hooks.messages {
		h.MessageReceived(ctx, modules.Message{El: el, To: to}, user, sessions)
	}
}

// presenceBroadcast runs the modules' presence hooks.
func (s *Router) presenceBroadcast(ctx context.Context, c *session, el *wire.Element, initial bool) {
	for _, h := range s.hooks.presence {
		h.PresenceBroadcast(ctx, c, el, initial)
	}
}

// sessionOnline and sessionReachable run the modules' presence hooks.
func (s *Router) sessionOnline(ctx context.Context, c *session) {
	for _, h := range s.hooks.online {
		h.SessionOnline(ctx, c)
	}
}

func (s *Router) sessionReachable(ctx context.Context, c *session) {
	for _, h := range s.hooks.reachable {
		h.SessionReachable(ctx, c)
	}
}

// subscriptionApproved runs the modules' subscription hooks once owner, a
// local account, approved contact's presence subscription.
func (s *Router) subscriptionApproved(ctx context.Context, owner, contact jid.JID) {
	for _, h := range s.hooks.subscriptions {
		h.SubscriptionApproved(ctx, owner, contact)
	}
}

// interceptIn runs the modules' InterceptIn on a stanza a session sent; a
// stanza.Error stops it.
func (s *Router) interceptIn(ctx context.Context, c *session, el *wire.Element, to jid.JID) error {
	for _, ic := range s.hooks.interceptors {
		if err := ic.InterceptIn(ctx, c, el, to); err != nil {
			return err
		}
	}
	return nil
}

// interceptOut reports whether every module's InterceptOut lets el reach dst.
func (s *Router) interceptOut(dst *session, el *wire.Element) bool {
	for _, ic := range s.hooks.interceptors {
		if !ic.InterceptOut(dst, el) {
			return false
		}
	}
	return true
}
