"""Runs Gajim 1.7 (Debian's gajim package) itself, in this process, with a
fresh profile and a test hook in its GLib main loop.

The profile (Gajim's settings.sqlite, written with Gajim's own Settings
class) has one account that connects to --host:--port with STARTTLS and
trusts --cafile alone (it goes into Gajim's certificate store). Gajim then
starts as /usr/bin/gajim does (gajim.gajim.main, with -c PROFILE -v). The
hook, polling every 100 ms, waits until the account is available, activates
Gajim's app action ACCOUNT-execute-command for --target (what the menu entry
"Execute Command…" does), waits until the Execute Command window shows its
command list, saves a screenshot of the whole X screen to --screenshot and
quits Gajim. Gajim's own log (-v: every stanza) goes to --log.

It prints, one per line:

    available <full JID>
    command <name>         (every row of the command list, in order)
    screenshot <path>

and exits 0, or prints "error <reason>" and exits 1.
"""

import argparse
import os
import shutil
import sys
import time

ACCOUNT = 'adhocd'


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument('--host', required=True)
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--cafile', required=True)
    p.add_argument('--profile', required=True, help='Gajim configuration folder')
    p.add_argument('--user', required=True)
    p.add_argument('--domain', required=True)
    p.add_argument('--password', required=True)
    p.add_argument('--resource', required=True)
    p.add_argument('--target', required=True, help='JID whose commands to list')
    p.add_argument('--screenshot', required=True)
    p.add_argument('--timeout', type=float, default=40)
    p.add_argument('--log', required=True, help="file for Gajim's -v log (stderr)")
    return p.parse_args()


def out(*words):
    print(*words, flush=True)


def write_profile(args):
    """Creates Gajim's settings database and certificate store in
    args.profile with Gajim's own code."""
    from gajim.common import configpaths
    configpaths.set_config_root(args.profile)
    configpaths.init()
    configpaths.create_paths()
    from gajim.common.settings import Settings
    s = Settings()
    s.init()
    # Passwords in the settings database: there is no keyring here.
    s.set_app_setting('use_keyring', False)
    s.set_app_setting('check_for_update', False)
    s.set_app_setting('show_help_start_chat', False)
    s.add_account(ACCOUNT)
    for key, value in [
        ('name', args.user),
        ('hostname', args.domain),
        ('password', args.password),
        ('savepass', True),
        ('resource', args.resource),
        ('use_custom_host', True),
        ('custom_host', args.host),
        ('custom_port', args.port),
        ('custom_type', 'START TLS'),
        ('active', True),
        ('autoconnect', True),
    ]:
        s.set_account_setting(ACCOUNT, key, value)
    s.save()
    s.shutdown()
    store = configpaths.get('CERT_STORE')
    shutil.copyfile(args.cafile, store / 'adhocd-test.pem')


class Hook:
    """The test's steps, run from Gajim's main loop."""

    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.timeout
        self.step = self.wait_available
        self.listed_at = None
        self.failed = False

    def poll(self):
        if time.monotonic() > self.deadline:
            self.fail(f'timed out in {self.step.__name__}')
            return False
        try:
            self.step()
        except Exception as e:  # report and quit rather than hang
            self.fail(f'{self.step.__name__}: {e!r}')
            return False
        return self.step is not None

    def fail(self, reason):
        self.failed = True
        w = self.adhoc_window()
        if w is not None:
            reason += f' (Execute Command shows its {w.get_current_page()!r} page)'
        out('error', reason)
        try:
            self.save_screenshot()  # what the screen showed, for the report
        except Exception as e:
            out('error', f'no screenshot: {e!r}')
        self.quit()

    def quit(self):
        from gajim.common import app
        app.app.quit()

    def wait_available(self):
        from gajim.common import app
        client = getattr(app, 'connections', {}).get(ACCOUNT)
        if client is None or not client.state.is_available:
            return
        out('available', str(client.get_own_jid()))
        app.app.activate_action(f'{ACCOUNT}-execute-command',
                                GLib.Variant('s', self.args.target))
        self.step = self.wait_list

    def adhoc_window(self):
        from gajim.gtk.adhoc import AdHocCommands
        for w in Gtk.Window.list_toplevels():
            if isinstance(w, AdHocCommands):
                return w
        return None

    def wait_list(self):
        w = self.adhoc_window()
        if w is not None and w.get_current_page() == 'error':
            self.fail('Gajim could not list the commands')
            self.step = None
            return
        if w is None or w.get_current_page() != 'commands':
            return
        if self.listed_at is None:
            self.listed_at = time.monotonic()
        # Let the page's slide transition end and the window be drawn.
        if time.monotonic() - self.listed_at < 1.0:
            return
        page = w.get_page('commands')
        for row in page._store:
            out('command', row[0])
        w.present()
        self.step = self.screenshot

    def screenshot(self):
        # Everything is drawn once the main loop is idle again.
        while Gtk.events_pending():
            Gtk.main_iteration_do(False)
        self.save_screenshot()
        self.step = None
        self.quit()

    def save_screenshot(self):
        root = Gdk.get_default_root_window()
        pixbuf = Gdk.pixbuf_get_from_window(root, 0, 0, root.get_width(), root.get_height())
        if pixbuf is None:
            raise RuntimeError('no pixels from the root window')
        pixbuf.savev(self.args.screenshot, 'png', [], [])
        out('screenshot', self.args.screenshot)


def main():
    args = parse_args()
    # Gajim's -v log, every stanza included, goes to a file the test reads.
    log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 2)
    os.close(log)
    global GLib, Gtk, Gdk
    import gi
    gi.require_version('Gtk', '3.0')
    gi.require_version('Gdk', '3.0')
    from gi.repository import GLib, Gtk, Gdk  # noqa: E402
    write_profile(args)
    hook = Hook(args)
    GLib.timeout_add(100, hook.poll)
    from gajim.gajim import main as gajim_main
    sys.argv = ['gajim', '-c', args.profile, '-v']
    try:
        gajim_main()
    except SystemExit:
        pass
    if hook.failed or hook.step is not None:
        if not hook.failed:
            out('error', f'Gajim quit in {hook.step.__name__}')
        sys.exit(1)


if __name__ == '__main__':
    main()
