// Package demo holds XEP-0050 demonstration commands: a three-stage wizard and a
// one-stage greeting, open to anyone. A server runs them with
// adhoc.demo_commands, to try a client's multi-stage command support
// against and to benchmark multi-stage flows; the tests and the interop
// runs use them as their workload.
package demo

import (
	"context"
	"fmt"
	"strings"

	"mellium.im/xmpp/form"

	"github.com/adhocd/adhocd/adhoc"
)

// WizardNode is the node of the wizard.
const WizardNode = "urn:adhocd:demo:wizard"

// GreetingNode is the node of the one-stage command.
const GreetingNode = "urn:adhocd:demo:greeting"

// Wizard is a three-stage command open to anyone: stage 1 asks a name
// (required) and a colour (list-single), stage 2 a contact JID (required)
// and a boolean, stage 3 a free comment and shows a summary of the earlier
// answers. It completes with a result form echoing what was submitted; a
// name of "fail" completes with an error note instead.
func Wizard() adhoc.Command {
	return adhoc.Command{
		Node:      WizardNode,
		Name:      "Demo wizard",
		Names:     map[string]string{"fr": "Assistant de démonstration"},
		Allow:     adhoc.Anyone(),
		Languages: []string{"en", "fr"},
		Stages: []adhoc.Stage{
			{Form: func(_ context.Context, r *adhoc.Request) (*form.Data, error) {
				title := "Who are you?"
				if r.Lang == "fr" {
					title = "Qui êtes-vous ?"
				}
				return form.New(
					form.Title(title),
					form.Text("name", form.Label("Name"), form.Required),
					form.List("color", form.Label("Colour"), form.Required,
						form.ListItem("Red", "red"), form.ListItem("Green", "green"), form.ListItem("Blue", "blue")),
				), nil
			}},
			{Form: func(_ context.Context, r *adhoc.Request) (*form.Data, error) {
				return form.New(
					form.Title("Hello "+r.Values.Get("name")),
					form.JID("contact", form.Label("Contact"), form.Required),
					form.Boolean("notify", form.Label("Notify them")),
				), nil
			}},
			{Form: func(_ context.Context, r *adhoc.Request) (*form.Data, error) {
				return form.New(
					form.Title("Confirm"),
					form.Instructions(fmt.Sprintf("%s likes %s and knows %s", r.Values.Get("name"), r.Values.Get("color"), r.Values.Get("contact"))),
					form.TextMulti("comment", form.Label("Comment")),
				), nil
			}},
		},
		Complete: func(_ context.Context, r *adhoc.Request) (*adhoc.Result, error) {
			if r.Values.Get("name") == "fail" {
				return &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteError, Text: "the name fail is not accepted: choose another"}}}, nil
			}
			return &adhoc.Result{
				Notes: []adhoc.Note{{Type: adhoc.NoteInfo, Text: "done"}},
				Form: form.New(
					form.Text("name", form.Value(r.Values.Get("name"))),
					form.Text("color", form.Value(r.Values.Get("color"))),
					form.Text("contact", form.Value(r.Values.Get("contact"))),
					form.Text("notify", form.Value(r.Values.Get("notify"))),
					form.Text("comment", form.Value(strings.Join(r.Values["comment"], "\n"))),
				),
			}, nil
		},
	}
}

// Greeting is a one-stage command open to anyone: it completes at once
// with a note greeting the requester.
func Greeting() adhoc.Command {
	return adhoc.Command{
		Node:  GreetingNode,
		Name:  "Greeting",
		Allow: adhoc.Anyone(),
		Complete: func(_ context.Context, r *adhoc.Request) (*adhoc.Result, error) {
			return &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteInfo, Text: "hello " + r.Requester.Bare().String()}}}, nil
		},
	}
}
