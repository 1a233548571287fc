#!/usr/bin/env python3
"""Drive a command inside a pseudo-terminal, like a user at a keyboard.

usage: pty_session.py STEPS_JSON -- COMMAND [ARGS...]

With PTY_SESSION_OWNER=UID in the environment the terminal is given to
that user (as a login's terminal is its user's).

STEPS_JSON is a list of steps, run in order:
  {"expect": "regex", "timeout": 10}   wait until the transcript matches
                                       (60 s unless given: a loaded machine)
  {"send": "text"}                     type text (\x03 is Ctrl-C)
  {"resize": [rows, cols]}             change the window size (SIGWINCH)
  {"sleep": 0.2}
  {"mode_at_exit": true}               after the command exits, print the
                                       terminal's permission bits as
                                       "[pty_session: mode 0620]"
At the end the driver waits for the command to exit, prints the transcript
to stdout and exits with the command's status (128+N for signal N).
A failed expectation prints the transcript and exits 99.
"""
import fcntl, json, os, pty, re, select, signal, struct, sys, termios, time

def main():
    steps = json.loads(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        # The terminal belongs to the user who runs in it, as a login's
        # does (the driver itself may run as root, the command as another
        # user through setpriv).
        owner = os.environ.get("PTY_SESSION_OWNER")
        if owner:
            os.fchown(0, int(owner), -1)
        os.execvp(argv[0], argv)
    buf = b""
    # The terminal's own name, from the master side (TIOCGPTN).
    ptn = struct.unpack("I", fcntl.ioctl(fd, getattr(termios, "TIOCGPTN", 0x80045430), b"\0" * 4))[0]
    report_mode = False
    def read_some(timeout):
        nonlocal buf
        r, _, _ = select.select([fd], [], [], timeout)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return False
            if not data:
                return False
            buf += data
        return True
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    for step in steps:
        if "expect" in step:
            deadline = time.time() + step.get("timeout", 60)
            pat = re.compile(step["expect"].encode())
            while not pat.search(buf):
                if time.time() > deadline or not read_some(0.1) and time.time() > deadline:
                    sys.stdout.write(buf.decode(errors="replace"))
                    sys.stdout.write(f"\n[pty_session: timed out waiting for {step['expect']!r}]\n")
                    os.kill(pid, signal.SIGKILL)
                    sys.exit(99)
        elif "send" in step:
            os.write(fd, step["send"].encode())
        elif "resize" in step:
            rows, cols = step["resize"]
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        elif "sleep" in step:
            time.sleep(step["sleep"])
        elif "mode_at_exit" in step:
            report_mode = True
    deadline = time.time() + 60
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            while read_some(0.05):
                pass
            sys.stdout.write(buf.decode(errors="replace"))
            if report_mode:
                mode = os.stat("/dev/pts/%d" % ptn).st_mode & 0o7777
                sys.stdout.write("\n[pty_session: mode %04o]\n" % mode)
            if os.WIFSIGNALED(status):
                sys.exit(128 + os.WTERMSIG(status))
            sys.exit(os.WEXITSTATUS(status))
        read_some(0.05)
    sys.stdout.write(buf.decode(errors="replace"))
    sys.stdout.write("\n[pty_session: command did not exit]\n")
    os.kill(pid, signal.SIGKILL)
    sys.exit(98)

main()
