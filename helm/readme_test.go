package helm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The chart README's values table lies between these two lines.
const (
	tableBegin = "<!-- values:begin (generated from values.yaml by TestChartREADME; do not edit) -->"
	tableEnd   = "<!-- values:end -->"
)

// TestChartREADME regenerates the values table of helm/adhocd/README.md from
// the comments of values.yaml and fails when the checked-in README differs;
// UPDATE_CHART_README=1 rewrites the README instead. Every value must be
// described, by its own comment or by its section's.
func TestChartREADME(t *testing.T) {
	values, err := os.ReadFile(filepath.Join(chartDir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := os.ReadFile(filepath.Join(chartDir(), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	table, err := valuesTable(values, schema)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(chartDir(), "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(readme), tableBegin+"\n")
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s lacks the lines %q and %q around the values table", path, tableBegin, tableEnd)
	}
	want := before + tableBegin + "\n" + table + tableEnd + after
	if want == string(readme) {
		return
	}
	if os.Getenv("UPDATE_CHART_README") == "1" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the values table of %s", path)
		return
	}
	t.Errorf("the values table of %s is not the one values.yaml gives: run UPDATE_CHART_README=1 go test ./helm/ -run TestChartREADME\nwant:\n%s", path, table)
}

// TestValuesTable checks the generator on a small values file: nesting,
// sections, free-form objects (no properties in the schema), inline
// comments, flow defaults, escaping, and the refusal of undescribed values.
func TestValuesTable(t *testing.T) {
	schema := []byte(`{"properties": {
		"a": {"properties": {"b": {}, "c": {}, "d": {}}},
		"labels": {"type": "object"},
		"list": {}, "bare": {}}}`)
	got, err := valuesTable([]byte(`# File comment.

# Section a.
a:
  # B, with a | bar, SCRAM-*-PLUS and <path>.
  b: "x"
  c: [1, 2] # C.
  d: "|"

# Labels,
# on two lines.
labels:
  k: v
# A list.
list:
  - one
`), schema)
	if err != nil {
		t.Fatal(err)
	}
	want := "| Key | Default | Description |\n| --- | --- | --- |\n" +
		"| `a` | | Section a. |\n" +
		"| `a.b` | `\"x\"` | B, with a \\| bar, SCRAM-\\*-PLUS and &lt;path&gt;. |\n" +
		"| `a.c` | `[1, 2]` | C. |\n" +
		"| `a.d` | `\"\\|\"` | |\n" +
		"| `labels` | `{k: v}` | Labels, on two lines. |\n" +
		"| `list` | `[one]` | A list. |\n"
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
	if _, err := valuesTable([]byte("a:\n  b: 1\n# Bare.\nbare: 1\nlist: []\n"), schema); err == nil || !strings.Contains(err.Error(), "a.b") || !strings.Contains(err.Error(), "list") {
		t.Fatalf("undescribed values a.b and list were not refused: %v", err)
	}
}

// valuesTable returns the Markdown table of the values in values (YAML with
// comments): one row per value, and one per commented section. A mapping is
// a section when the schema gives its properties, else a single value (as
// annotations and podSecurityContext are). A value's description is its
// comment; a value without one must be in a commented section.
func valuesTable(values, schema []byte) (string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return "", fmt.Errorf("values.yaml: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return "", errors.New("values.yaml is not a mapping")
	}
	var s schemaNode
	if err := json.Unmarshal(schema, &s); err != nil {
		return "", fmt.Errorf("values.schema.json: %w", err)
	}
	var b strings.Builder
	b.WriteString("| Key | Default | Description |\n| --- | --- | --- |\n")
	var undescribed []string
	var walk func(m *yaml.Node, prefix string, s schemaNode, described bool)
	walk = func(m *yaml.Node, prefix string, s schemaNode, described bool) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			text := comment(k.HeadComment, k.LineComment, v.LineComment)
			if i >= 2 && prefix == "" {
				// A comment after a blank line may be taken as the foot of the
				// value before it: it belongs to this key.
				text = comment(m.Content[i-1].FootComment, text)
			}
			sub, ok := s.Properties[k.Value]
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 && ok && len(sub.Properties) > 0 {
				if text != "" {
					fmt.Fprintf(&b, "| `%s` | | %s|\n", key, cell(text))
				}
				walk(v, key+".", sub, described || text != "")
				continue
			}
			if text == "" && !described {
				undescribed = append(undescribed, key)
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s|\n", key, strings.ReplaceAll(flow(v), "|", `\|`), cell(text))
		}
	}
	walk(doc.Content[0], "", s, false)
	if len(undescribed) > 0 {
		return "", fmt.Errorf("values.yaml: no comment describes %s", strings.Join(undescribed, ", "))
	}
	return b.String(), nil
}

// schemaNode is the part of values.schema.json the table needs.
type schemaNode struct {
	Properties map[string]schemaNode `json:"properties"`
}

// comment joins YAML comments into one line of text without the #s.
func comment(parts ...string) string {
	var words []string
	for _, p := range parts {
		for line := range strings.SplitSeq(p, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
			if line != "" {
				words = append(words, line)
			}
		}
	}
	return strings.Join(words, " ")
}

// flow returns a value as one line of YAML (flow style, no comments).
func flow(n *yaml.Node) string {
	var strip func(n *yaml.Node) *yaml.Node
	strip = func(n *yaml.Node) *yaml.Node {
		c := *n
		c.HeadComment, c.LineComment, c.FootComment = "", "", ""
		if c.Kind == yaml.MappingNode || c.Kind == yaml.SequenceNode {
			c.Style = yaml.FlowStyle
		}
		c.Content = nil
		for _, child := range n.Content {
			c.Content = append(c.Content, strip(child))
		}
		return &c
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(strip(n)); err != nil {
		return n.Value
	}
	s := strings.TrimSpace(buf.String())
	if s == `""` || s == "''" {
		return `""`
	}
	return strings.Join(strings.Fields(s), " ")
}

// cell returns text as a Markdown table cell followed by a space: the
// characters Markdown would take for emphasis, HTML or a column escaped.
func cell(s string) string {
	if s == "" {
		return ""
	}
	return strings.NewReplacer("|", `\|`, "*", `\*`, "<", "&lt;", ">", "&gt;").Replace(s) + " "
}
