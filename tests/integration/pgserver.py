"""A throwaway PostgreSQL server for tests: initdb in a temporary folder,
postgres listening on 127.0.0.1 on a free port (its socket in the same
folder), one database, stopped and removed at the end. Runs the server as
the `postgres` user (runuser) when the test runs as root.

stdlib only. The binaries come from the Debian `postgresql` package
(scripts/install-deps.sh installs it)."""
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from xdnnode import free_port, wait_for


class PgUnavailable(RuntimeError):
    pass


def find_bindir():
    """The newest /usr/lib/postgresql/N/bin with initdb and postgres."""
    override = os.environ.get("XDN_PG_BINDIR")
    candidates = [override] if override else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0, reverse=True)
    for d in candidates:
        if d and all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "postgres", "pg_isready")):
            return d
    raise PgUnavailable(
        "PostgreSQL server binaries not found (looked for /usr/lib/postgresql/*/bin/initdb and "
        "postgres): install the Debian package 'postgresql' (scripts/install-deps.sh does) "
        "or set XDN_PG_BINDIR")


class PgServer:
    """`with PgServer() as pg:` gives pg.url (postgresql://...) of an empty database."""

    def __init__(self, dbname="xdn", log_dir=None):
        self.bindir = find_bindir()
        self.dbname = dbname
        self.port = free_port()
        self.dir = None
        self.proc = None
        self.log_dir = log_dir
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _as_server_user(self, cmd):
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable("running as root needs the 'postgres' user to run the server "
                                    "(created by the Debian package 'postgresql')")
            return ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def start(self, timeout=30):
        self.dir = tempfile.mkdtemp(prefix="xdn-pg-")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = os.path.join(self.dir, "data")
        init = subprocess.run(self._as_server_user([
            os.path.join(self.bindir, "initdb"), "-D", data, "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if init.returncode != 0:
            raise PgUnavailable("initdb failed: " + init.stdout.decode(errors="replace")[-2000:])
        self.log_path = os.path.join(self.log_dir or self.dir, f"postgres-{self.port}.log")
        self.log = open(self.log_path, "w")
        if os.geteuid() == 0 and not self.log_dir:
            os.chown(self.log_path, pwd.getpwnam("postgres").pw_uid, -1)
        self.proc = subprocess.Popen(self._as_server_user([
            os.path.join(self.bindir, "postgres"), "-D", data, "-k", self.dir,
            "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=50", "-c", "shared_buffers=16MB"]),
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        isready = os.path.join(self.bindir, "pg_isready")
        wait_for(lambda: self.proc.poll() is None and subprocess.run(
            [isready, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]).returncode == 0,
            timeout, f"PostgreSQL on port {self.port} to accept connections", interval=0.1)
        created = subprocess.run([os.path.join(self.bindir, "createdb"), "-h", "127.0.0.1",
                                  "-p", str(self.port), "-U", "postgres", self.dbname],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if created.returncode != 0:
            raise PgUnavailable("createdb failed: " + created.stdout.decode(errors="replace"))
        return self

    def create_database(self, name):
        """Creates another empty database; returns its URL."""
        created = subprocess.run([os.path.join(self.bindir, "createdb"), "-h", "127.0.0.1",
                                  "-p", str(self.port), "-U", "postgres", name],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if created.returncode != 0:
            raise PgUnavailable("createdb failed: " + created.stdout.decode(errors="replace"))
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def psql(self, sql, dbname=None):
        """Runs @sql with psql (when installed) and returns its output."""
        psql = shutil.which("psql") or os.path.join(self.bindir, "psql")
        out = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", dbname or self.dbname, "-At", "-c", sql],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return out.stdout.decode()

    def _server_pids(self):
        """The postmaster (child of runuser, or the process itself) and its
        children: each backend is in a session of its own, so signalling the
        process group does not reach them."""
        def children(pid):
            out = []
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == pid:
                    out.append(int(entry))
            return out
        top = [self.proc.pid] + children(self.proc.pid)
        return top + [c for p in top[1:] for c in children(p)]

    def pause(self):
        """Stops every server process (SIGSTOP): the server hangs, sockets stay open."""
        for pid in self._server_pids():
            os.kill(pid, signal.SIGSTOP)

    def resume(self):
        for pid in self._server_pids():
            os.kill(pid, signal.SIGCONT)

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        if getattr(self, "log", None):
            self.log.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
