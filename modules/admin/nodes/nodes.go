// Package nodes owns the command node names of the administration commands
// that package admin serves: the XEP-0133 Service Administration nodes
// (http://jabber.org/protocol/admin#add-user, …) and adhocd's own operator
// commands (urn:adhocd:admin#status, …).
//
// It is a leaf package, apart from package admin, so that a client that only
// names these commands (cmd/adhocctl) can import it without linking the
// server, its storage or the module machinery.
package nodes

import "slices"

// NS is the XEP-0133 namespace: the prefix of its command nodes, also the
// FORM_TYPE of its forms.
const NS = "http://jabber.org/protocol/admin"

// NSOperator is the node namespace of adhocd's own operator commands, also
// the FORM_TYPE of their forms.
const NSOperator = "urn:adhocd:admin"

// operatorNames are the operator commands package admin registers.
var operatorNames = []string{"status", "sessions", "s2s", "reload", "ping"}

// Admin returns the node of an XEP-0133 command name ("add-user").
func Admin(name string) string { return NS + "#" + name }

// Operator returns the node of an operator command name ("status").
func Operator(name string) string { return NSOperator + "#" + name }

// OperatorNames returns the names of adhocd's operator commands, in the
// order package admin registers them.
func OperatorNames() []string { return slices.Clone(operatorNames) }

// IsOperator reports whether name is one of adhocd's operator commands
// rather than an XEP-0133 one.
func IsOperator(name string) bool { return slices.Contains(operatorNames, name) }
