package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"mellium.im/xmpp/jid"
)

// DefaultComponentsListen is components.listen's default: loopback only,
// on the port XEP-0114 components connect to by custom.
const DefaultComponentsListen = "127.0.0.1:5347"

// maxSecretBytes bounds a component's secret file as read: a secret is a
// line of text, and a path naming something else (a device, a large file)
// must not be read whole.
const maxSecretBytes = 4096

// Components configures the XEP-0114 external components
// (modules/component): trusted programs that connect over TCP, each
// authenticated by a shared secret, and serve a domain of their own.
type Components struct {
	// Listen is the TCP address components connect to, host:port; empty:
	// no listener. Nothing listens while Services is empty.
	Listen string `yaml:"listen"`
	// Services are the components accepted, one per domain.
	Services []ComponentService `yaml:"services"`
}

// ComponentService is one external component: its domain and where its
// secret is read from at start, a file or an environment variable
// (exactly one of them), so that the secret is never written in
// config.yaml, never held in Config and never in a message.
type ComponentService struct {
	// Domain is the component's domain (gateway.example.org): the 'to' of
	// its stream header, and the domain of every address it sends from.
	Domain string `yaml:"domain"`
	// SecretFile is a file whose content, white space around it trimmed,
	// is the secret (a mounted Kubernetes Secret, say).
	SecretFile string `yaml:"secret_file"`
	// SecretEnv names an environment variable whose value is the secret.
	SecretEnv string `yaml:"secret_env"`
}

// DefaultComponents is the components section's default: the usual
// listener, no component.
func DefaultComponents() Components { return Components{Listen: DefaultComponentsListen} }

// Secret reads the component's secret from its file or its environment
// variable. An error names the file or the variable, never the value; an
// empty secret is an error.
func (s ComponentService) Secret() (string, error) {
	var secret string
	switch {
	case s.SecretFile != "":
		v, err := readSecretFile("secret_file", s.SecretFile)
		if err != nil {
			return "", fmt.Errorf("config: component %s: %w", s.Domain, err)
		}
		secret = v
	case s.SecretEnv != "":
		secret = strings.TrimSpace(os.Getenv(s.SecretEnv))
		if secret == "" {
			return "", fmt.Errorf("config: component %s: secret_env %s is not set or empty", s.Domain, s.SecretEnv)
		}
	default:
		return "", errors.New("config: component " + s.Domain + ": no secret_file or secret_env")
	}
	return secret, nil
}

// readSecretFile reads a secret from path, the value of the key named
// key: at most maxSecretBytes, white space around it trimmed (a file
// written with echo ends in a newline), and not empty. An error names the
// key and the file, never the content.
func readSecretFile(key, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	if len(b) > maxSecretBytes {
		return "", fmt.Errorf("%s %s: larger than %d bytes", key, path, maxSecretBytes)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("%s %s is empty", key, path)
	}
	return secret, nil
}

// resolve makes relative secret files absolute against base, the
// configuration file's folder, as Load does with the other paths.
func (c *Components) resolve(base string) {
	for i := range c.Services {
		if p := c.Services[i].SecretFile; p != "" && !filepath.IsAbs(p) {
			c.Services[i].SecretFile = filepath.Join(base, p)
		}
	}
}

// validate checks the section against the server's domain and the group
// chat service's; bad collects what is wrong. Secrets are not read here
// (the module reads them at start), so a check of the configuration never
// touches them.
func (c *Components) validate(domain string, muc MUC, bad func(format string, args ...any)) {
	if c.Listen != "" && len(c.Services) > 0 {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("components.listen %q: %v", c.Listen, err)
		}
	}
	mucDomain := ""
	if muc.Enabled {
		if j, err := jid.New("", muc.ServiceDomain(domain), ""); err == nil {
			mucDomain = j.Domainpart()
		}
	}
	seen := make(map[string]bool, len(c.Services))
	for i := range c.Services {
		s := &c.Services[i]
		j, err := jid.New("", s.Domain, "")
		switch {
		case s.Domain == "":
			bad("components.services[%d].domain: must be set", i)
			continue
		case err != nil || strings.ContainsAny(s.Domain, "@/"):
			bad("components.services[%d].domain %q: not a domain", i, s.Domain)
			continue
		}
		d := j.Domainpart()
		switch {
		case d == domain:
			bad("components.services[%d].domain %q: the server's own domain; a component needs one of its own", i, s.Domain)
		case d == mucDomain:
			bad("components.services[%d].domain %q: the group chat service's domain (muc.domain)", i, s.Domain)
		case seen[d]:
			bad("components.services[%d].domain %q: listed twice", i, s.Domain)
		}
		seen[d] = true
		s.Domain = d
		if (s.SecretFile == "") == (s.SecretEnv == "") {
			bad("components.services[%d] (%s): set exactly one of secret_file and secret_env", i, d)
		}
	}
}
