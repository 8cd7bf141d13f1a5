// Package interop holds tests of adhocd against XMPP clients nobody here
// wrote, so that the server is checked against someone else's reading of the
// RFCs and not only against the mellium.im client in server/servertest.
//
// The tests run Debian's python3-slixmpp under /usr/bin/python3 (not whatever
// python3 is first on PATH, which may lack Debian's packages). Each test
// starts a real server on loopback with servertest and runs a script from
// testdata against it, with a deadline.
//
// On a developer machine without python3-slixmpp the tests are skipped. When
// the environment variable CI is set (as .ci/run does with CI=true) a missing
// slixmpp is a failure instead, so CI never passes by silently skipping.
package interop
