package modules

import "fmt"

// The XEP-0004 data-form booleans that configuration forms (PEP nodes,
// group chat rooms) render and read.

// FormBool renders b as a form value: "1" or "0".
func FormBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ParseFormBool reads a form boolean: "1" or "true", "0" or "false".
func ParseFormBool(s string) (bool, error) {
	switch s {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}
