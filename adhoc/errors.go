package adhoc

import (
	"encoding/xml"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

// Error is an XEP-0050 error: a stanza error with, where XEP-0050 names one,
// a specific condition in the commands namespace.
type Error struct {
	Stanza stanza.Error
	// Specific is the local name of the commands-namespace child, or "".
	Specific string
}

func (e Error) Error() string {
	s := fmt.Sprintf("adhoc: %s", e.Stanza.Condition)
	if e.Specific != "" {
		s += " (" + e.Specific + ")"
	}
	if t := e.Stanza.Text["en"]; t != "" {
		s += ": " + t
	}
	return s
}

// TokenReader renders the <error/> element with its specific child.
func (e Error) TokenReader() xml.TokenReader {
	if e.Specific == "" {
		return e.Stanza.TokenReader()
	}
	return e.Stanza.Wrap(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NS, Local: e.Specific}}))
}

func cmdErr(typ stanza.ErrorType, cond stanza.Condition, specific, text string) Error {
	e := Error{Stanza: stanza.Error{Type: typ, Condition: cond}, Specific: specific}
	if text != "" {
		e.Stanza.Text = map[string]string{"en": text}
	}
	return e
}

// The errors of XEP-0050 §4.6, with explanatory text.
func errMalformedAction(a string) Error {
	return cmdErr(stanza.Modify, stanza.BadRequest, "malformed-action", fmt.Sprintf("unknown action %q", a))
}

func errBadAction(a Action) Error {
	return cmdErr(stanza.Modify, stanza.BadRequest, "bad-action", fmt.Sprintf("the action %q is not allowed at this stage", a))
}

func errBadLocale(lang string) Error {
	return cmdErr(stanza.Modify, stanza.BadRequest, "bad-locale", fmt.Sprintf("the command cannot be served in %q", lang))
}

func errBadSessionID(text string) Error {
	return cmdErr(stanza.Modify, stanza.BadRequest, "bad-sessionid", text)
}

func errSessionExpired() Error {
	return cmdErr(stanza.Cancel, stanza.NotAllowed, "session-expired", "the session has ended or timed out")
}

func errForbidden() Error {
	return cmdErr(stanza.Cancel, stanza.Forbidden, "", "you may not run this command")
}

func errNotFound(node string) Error {
	return cmdErr(stanza.Cancel, stanza.ItemNotFound, "", fmt.Sprintf("no command %q here", node))
}

func errTooManySessions() Error {
	return cmdErr(stanza.Cancel, stanza.NotAllowed, "", "you have too many open command sessions: complete or cancel one first")
}

// errSessionChanged answers a stage submitted twice at once through two
// servers that share the session: one wins, the other is told to look
// again (RFC 6120 §8.3.3.4 conflict; the session goes on).
func errSessionChanged() Error {
	return cmdErr(stanza.Wait, stanza.Conflict, "", "the session was changed by another request at the same time: retry")
}

// PayloadError is a submission the stage cannot accept; it is answered with
// bad-payload and its message.
type PayloadError struct {
	Field string
	Msg   string
}

func (e *PayloadError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return fmt.Sprintf("field %q: %s", e.Field, e.Msg)
}

func errBadPayload(err error) Error {
	return cmdErr(stanza.Modify, stanza.BadRequest, "bad-payload", err.Error())
}

// Condition returns the name an error is counted under: the specific
// XEP-0050 condition if any, else the stanza condition.
func Condition(err error) string {
	switch e := err.(type) {
	case Error:
		if e.Specific != "" {
			return e.Specific
		}
		return string(e.Stanza.Condition)
	case stanza.Error:
		return string(e.Condition)
	}
	return string(stanza.InternalServerError)
}
