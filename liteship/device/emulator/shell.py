"""A small ``/system/bin/sh`` for the emulated device: what liteship and ``adb`` send.

Commands are parsed with POSIX quoting rules (single quotes literal, double quotes with
``\\`` escapes, backslash escapes) and run in Python. No host shell is ever started, so a
file name like ``a;b $(touch pwned)`` is only ever a name. Command substitution, pipes and
background jobs are refused with a syntax error rather than guessed at.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat as stat_mod
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from liteship.device.emulator.faults import Faults
from liteship.device.emulator.fs import DeviceFS, FsError, normalize
from liteship.device.emulator.packages import ActivityManager, PackageManager

SH = "/system/bin/sh"


class ShellSyntaxError(Exception):
    pass


class _LastStatus:
    """Placeholder for ``$?`` inside a word, expanded when the command runs."""


LAST = _LastStatus()
Word = list  # list[str | _LastStatus]
OPERATORS = ("&&", "||", ";", "|", "&", "\n")
REDIRS = ("2>&1", "2>>", "2>", ">>", ">", "<")


def tokenize(src: str, env: dict[str, str]) -> list[tuple[str, object]]:
    """Tokens ("word", parts) | ("op", text) | ("redir", text)."""
    toks: list[tuple[str, object]] = []
    i, n = 0, len(src)
    parts: list[str | _LastStatus] = []
    in_word = False

    def end_word() -> None:
        nonlocal parts, in_word
        if in_word:
            toks.append(("word", parts))
        parts, in_word = [], False

    def dollar(j: int) -> int:
        """Expand ``$...`` at src[j] == '$'; returns the index after it."""
        nonlocal in_word
        in_word = True
        nxt = src[j + 1] if j + 1 < n else ""
        if nxt == "?":
            parts.append(LAST)
            return j + 2
        if nxt == "(":
            raise ShellSyntaxError("command substitution $(...) is not supported")
        if nxt == "{":
            close = src.find("}", j + 2)
            if close < 0:
                raise ShellSyntaxError("bad substitution")
            parts.append(env.get(src[j + 2:close], ""))
            return close + 1
        k = j + 1
        while k < n and (src[k].isalnum() or src[k] == "_"):
            k += 1
        if k == j + 1:
            parts.append("$")
            return k
        parts.append(env.get(src[j + 1:k], ""))
        return k

    while i < n:
        c = src[i]
        if c in " \t":
            end_word()
            i += 1
        elif c == "#" and not in_word:
            while i < n and src[i] != "\n":
                i += 1
        elif c == "'":
            close = src.find("'", i + 1)
            if close < 0:
                raise ShellSyntaxError("unterminated quoted string")
            parts.append(src[i + 1:close])
            in_word = True
            i = close + 1
        elif c == '"':
            in_word = True
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ShellSyntaxError("unterminated quoted string")
                c = src[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and src[i + 1] in '$`"\\\n':
                    buf.append(src[i + 1])
                    i += 2
                elif c == "`":
                    raise ShellSyntaxError("command substitution `...` is not supported")
                elif c == "$":
                    parts.append("".join(buf))
                    buf = []
                    i = dollar(i)
                else:
                    buf.append(c)
                    i += 1
            parts.append("".join(buf))
        elif c == "\\":
            if i + 1 < n and src[i + 1] != "\n":
                parts.append(src[i + 1])
                in_word = True
            i += 2
        elif c == "`":
            raise ShellSyntaxError("command substitution `...` is not supported")
        elif c == "$":
            i = dollar(i)
        elif c in "2<>" and any(src.startswith(r, i) for r in REDIRS) and (c != "2" or not in_word):
            r = next(r for r in REDIRS if src.startswith(r, i))
            end_word()
            toks.append(("redir", r))
            i += len(r)
        elif c in ";&|\n":
            end_word()
            op = src[i:i + 2] if src[i:i + 2] in ("&&", "||") else c
            toks.append(("op", op))
            i += len(op)
        elif c in "()":
            raise ShellSyntaxError(f"syntax error: '{c}' unexpected")
        else:
            parts.append(c)
            in_word = True
            i += 1
    end_word()
    return toks


@dataclass
class Simple:
    words: list[Word]
    redirs: list[tuple[str, Word | None]] = field(default_factory=list)


def parse(src: str, env: dict[str, str]) -> list[tuple[str, Simple]]:
    """A list of (connector, command); connector is how it joins the previous one."""
    out: list[tuple[str, Simple]] = []
    cur = Simple([])
    conn = ";"
    toks = tokenize(src, env)
    i = 0
    while i < len(toks):
        kind, val = toks[i]
        if kind == "word":
            cur.words.append(val)  # type: ignore[arg-type]
        elif kind == "redir":
            if val == "2>&1":
                cur.redirs.append(("2>&1", None))
            else:
                if i + 1 >= len(toks) or toks[i + 1][0] != "word":
                    raise ShellSyntaxError(f"syntax error: unexpected '{val}'")
                cur.redirs.append((str(val), toks[i + 1][1]))  # type: ignore[arg-type]
                i += 1
        else:
            if val in ("|", "&"):
                raise ShellSyntaxError(f"'{val}' (pipes and background jobs) is not supported")
            if not cur.words:
                if val in ("&&", "||") or out:
                    if val in ("&&", "||"):
                        raise ShellSyntaxError(f"syntax error: unexpected '{val}'")
                i += 1
                continue
            out.append((conn, cur))
            cur, conn = Simple([]), str(val) if val != "\n" else ";"
        i += 1
    if cur.words:
        out.append((conn, cur))
    elif conn in ("&&", "||"):
        raise ShellSyntaxError("syntax error: unexpected end of file")
    return out


Stdin = Callable[[int], bytes]


@dataclass
class Io:
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    #: stdout and stderr in the order they were written (what a v1 shell or exec: sends)
    merged: bytearray = field(default_factory=bytearray)

    def print(self, text: str = "", end: str = "\n") -> None:
        b = (text + end).encode("utf-8", "surrogateescape")
        self.out += b
        self.merged += b

    def eprint(self, text: str) -> None:
        b = (text + "\n").encode("utf-8", "surrogateescape")
        self.err += b
        self.merged += b


PROPS_DEFAULT = {
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.build.type": "user",
    "ro.product.manufacturer": "liteship",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    "ro.debuggable": "0",
    "ro.secure": "1",
    "ro.liteship.emulated": "1",
    "sys.boot_completed": "1",
    "persist.sys.timezone": "UTC",
}


class Shell:
    """One interpreter per device; ``run`` is thread-safe for independent commands."""

    def __init__(self, fs: DeviceFS, pm: PackageManager, am: ActivityManager, faults: Faults,
                 props: dict[str, str]) -> None:
        self.fs, self.pm, self.am, self.faults, self.props = fs, pm, am, faults, props
        self.env = {"PATH": "/product/bin:/apex/com.android.runtime/bin:/system/bin:/system/xbin",
                    "HOME": "/", "EXTERNAL_STORAGE": "/sdcard", "ANDROID_DATA": "/data",
                    "TMPDIR": "/data/local/tmp", "USER": "shell", "SHELL": SH}
        self.commands: dict[str, Callable[[list[str], Io, Stdin | None], int]] = {
            "getprop": self.c_getprop, "ls": self.c_ls, "mkdir": self.c_mkdir, "mv": self.c_mv,
            "rm": self.c_rm, "cat": self.c_cat, "stat": self.c_stat, "test": self.c_test,
            "[": self.c_bracket, "echo": self.c_echo, "df": self.c_df, "pm": self.c_pm,
            "cmd": self.c_cmd, "am": self.c_am, "true": lambda a, io, s: 0,
            "false": lambda a, io, s: 1, "touch": self.c_touch, "cp": self.c_cp,
            "id": self.c_id, "whoami": self.c_whoami, "sync": lambda a, io, s: 0,
            "sleep": self.c_sleep, "pidof": self.c_pidof, "exit": self.c_exit, "chmod": self.c_chmod,
        }

    # -- the interpreter -----------------------------------------------------------------

    def run(self, src: str, stdin: Stdin | None = None) -> tuple[bytes, bytes, int]:
        """(stdout, stderr, exit code)."""
        out, err, _merged, code = self.run_merged(src, stdin)
        return out, err, code

    def run_merged(self, src: str, stdin: Stdin | None = None) -> tuple[bytes, bytes, bytes, int]:
        """(stdout, stderr, both in write order, exit code)."""
        io = Io()
        try:
            program = parse(src, self.env)
        except ShellSyntaxError as e:
            io.eprint(f"{SH}: {e}")
            return bytes(io.out), bytes(io.err), bytes(io.merged), 2
        status = 0
        for conn, cmd in program:
            if conn == "&&" and status != 0:
                continue
            if conn == "||" and status == 0:
                continue
            try:
                status = self._run_simple(cmd, io, stdin, status)
            except _Exit as e:
                return bytes(io.out), bytes(io.err), bytes(io.merged), e.code
        return bytes(io.out), bytes(io.err), bytes(io.merged), status

    def _run_simple(self, cmd: Simple, io: Io, stdin: Stdin | None, last: int) -> int:
        def expand(w: Word) -> str:
            return "".join(str(last) if p is LAST else p for p in w)  # type: ignore[misc]

        argv = [expand(w) for w in cmd.words]
        sub = Io()
        out_target: tuple[str, str] | None = None
        err_target: str | None = None
        merge = False
        for op, w in cmd.redirs:
            if op == "2>&1":
                merge = True
            elif op in (">", ">>"):
                out_target = (op, expand(w))  # type: ignore[arg-type]
            elif op in ("2>", "2>>"):
                err_target = expand(w)  # type: ignore[arg-type]
            elif op == "<":
                io.eprint(f"{SH}: input redirection is not supported")
                return 2
        name = argv[0]
        fn = self.commands.get(name.rsplit("/", 1)[-1] if name.startswith("/system/bin/") else name)
        if fn is None:
            sub.eprint(f"{SH}: {name}: inaccessible or not found")
            code = 127
        else:
            code = fn(argv[1:], sub, stdin)
        err = bytes(sub.err)
        if merge:
            sub.out += err
            err = b""
        if err_target is not None and err_target != "/dev/null":
            self._write_redirect(err_target, err, append=False, io=io)
            err = b""
        elif err_target == "/dev/null":
            err = b""
        if out_target is not None:
            op, target = out_target
            if target != "/dev/null":
                if not self._write_redirect(target, bytes(sub.out), append=op == ">>", io=io):
                    code = 1
            out_shown = b""
        else:
            out_shown = bytes(sub.out)
        io.out += out_shown
        io.err += err
        if merge or out_target is not None or err_target is not None:
            io.merged += out_shown + err
        else:
            io.merged += sub.merged
        return code

    def _write_redirect(self, target: str, data: bytes, *, append: bool, io: Io) -> bool:
        try:
            p = self.fs.host(target, write=True)
            with open(p, "ab" if append else "wb") as f:
                f.write(data)
            return True
        except FsError as e:
            io.eprint(f"{SH}: can't create {target}: {e.strerror}")
        except OSError as e:
            io.eprint(f"{SH}: can't create {target}: {os.strerror(e.errno or errno.EIO)}")
        return False

    # -- helpers -------------------------------------------------------------------------

    def _host(self, path: str, *, write: bool = False) -> Path:
        return self.fs.host(path, write=write)

    @staticmethod
    def _flags(args: list[str], allowed: str) -> tuple[set[str], list[str]] | str:
        flags: set[str] = set()
        rest: list[str] = []
        only_args = False
        for a in args:
            if not only_args and a == "--":
                only_args = True
            elif not only_args and a.startswith("-") and len(a) > 1:
                for ch in a[1:]:
                    if ch not in allowed:
                        return ch
                    flags.add(ch)
            else:
                rest.append(a)
        return flags, rest

    # -- commands ------------------------------------------------------------------------

    def c_getprop(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        if args:
            io.print(self.props.get(args[0], args[1] if len(args) > 1 else ""))
        else:
            for k in sorted(self.props):
                io.print(f"[{k}]: [{self.props[k]}]")
        return 0

    def c_id(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        io.print("uid=2000(shell) gid=2000(shell) groups=2000(shell),1007(log),1011(adb),1015(sdcard_rw),3003(inet)")
        return 0

    def c_whoami(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        io.print("shell")
        return 0

    def c_sleep(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        try:
            time.sleep(min(float(args[0]), 30.0))
        except (IndexError, ValueError):
            io.eprint("sleep: needs 1 argument")
            return 1
        return 0

    def c_pidof(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        pids = [str(p) for p in (self.am.pid_of(a) for a in args if not a.startswith("-")) if p is not None]
        if pids:
            io.print(" ".join(pids))
            return 0
        return 1

    def c_exit(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        raise _Exit(int(args[0]) if args and args[0].isdigit() else 0)

    def c_echo(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        newline = True
        if args and args[0] == "-n":
            newline, args = False, args[1:]
        io.print(" ".join(args), end="\n" if newline else "")
        return 0

    def c_ls(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        f = self._flags(args, "la1dRAh")
        if isinstance(f, str):
            io.eprint(f"ls: Unknown option '{f}'")
            return 1
        flags, paths = f
        code = 0
        for p in paths or ["/"]:
            try:
                h = self._host(p)
                st = h.lstat()
            except FsError as e:
                io.eprint(f"ls: {p}: {e.strerror}")
                code = 1
                continue
            except FileNotFoundError:
                io.eprint(f"ls: {p}: No such file or directory")
                code = 1
                continue
            if stat_mod.S_ISDIR(st.st_mode) and "d" not in flags:
                names = sorted(os.listdir(h))
                if "a" not in flags and "A" not in flags:
                    names = [n for n in names if not n.startswith(".")]
                if len(paths) > 1:
                    io.print(f"{p}:")
                for n in names:
                    io.print(self._ls_line(h / n, n) if "l" in flags else n)
            else:
                io.print(self._ls_line(h, p) if "l" in flags else p)
        return code

    @staticmethod
    def _ls_line(h: Path, shown: str) -> str:
        st = h.lstat()
        kind = "d" if stat_mod.S_ISDIR(st.st_mode) else "-"
        perms = stat_mod.filemode(st.st_mode)[1:]
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(st.st_mtime))
        return f"{kind}{perms} 1 shell shell {st.st_size} {when} {shown}"

    def c_mkdir(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        f = self._flags(args, "pm")
        if isinstance(f, str):
            io.eprint(f"mkdir: Unknown option '{f}'")
            return 1
        flags, paths = f
        code = 0
        for p in paths:
            try:
                h = self._host(p, write=True)
                if "p" in flags:
                    h.mkdir(parents=True, exist_ok=True)
                else:
                    h.mkdir()
            except FsError as e:
                io.eprint(f"mkdir: '{p}': {e.strerror}")
                code = 1
            except OSError as e:
                io.eprint(f"mkdir: '{p}': {os.strerror(e.errno or errno.EIO)}")
                code = 1
        return code

    def c_mv(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        f = self._flags(args, "fin")
        if isinstance(f, str) or len(f[1]) < 2:
            io.eprint("mv: Need 2 arguments")
            return 1
        _, paths = f
        *srcs, dst = paths
        code = 0
        for s in srcs:
            try:
                hs = self._host(s, write=True)
                hd = self._host(dst, write=True)
                if not hs.exists() and not hs.is_symlink():
                    raise FsError(errno.ENOENT, s)
                if hd.is_dir():
                    hd = hd / hs.name
                os.replace(hs, hd)
            except FsError as e:
                io.eprint(f"mv: bad '{s}': {e.strerror}")
                code = 1
            except OSError as e:
                io.eprint(f"mv: rename '{s}' to '{dst}': {os.strerror(e.errno or errno.EIO)}")
                code = 1
        return code

    def c_cp(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        f = self._flags(args, "rRfpa")
        if isinstance(f, str) or len(f[1]) < 2:
            io.eprint("cp: Need 2 arguments")
            return 1
        flags, (*srcs, dst) = f
        code = 0
        for s in srcs:
            try:
                hs, hd = self._host(s), self._host(dst, write=True)
                if hd.is_dir():
                    hd = hd / hs.name
                if hs.is_dir():
                    if not flags & {"r", "R", "a"}:
                        io.eprint(f"cp: Skipped dir '{s}'")
                        code = 1
                        continue
                    shutil.copytree(hs, hd, dirs_exist_ok=True)
                else:
                    shutil.copyfile(hs, hd)
            except FsError as e:
                io.eprint(f"cp: '{s}': {e.strerror}")
                code = 1
            except OSError as e:
                io.eprint(f"cp: '{s}': {os.strerror(e.errno or errno.EIO)}")
                code = 1
        return code

    def c_rm(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        f = self._flags(args, "rRfdv")
        if isinstance(f, str):
            io.eprint(f"rm: Unknown option '{f}'")
            return 1
        flags, paths = f
        force = "f" in flags
        recursive = bool(flags & {"r", "R"})
        if not paths and not force:
            io.eprint("rm: Needs 1 argument")
            return 1
        code = 0
        for p in paths:
            try:
                h = self._host(p, write=True)
                if not h.exists() and not h.is_symlink():
                    if not force:
                        io.eprint(f"rm: {p}: No such file or directory")
                        code = 1
                    continue
                if h.is_dir() and not h.is_symlink():
                    if not recursive:
                        io.eprint(f"rm: {p}: is a directory")
                        code = 1
                        continue
                    if h == self.fs.root:
                        raise FsError(errno.EBUSY, p)
                    shutil.rmtree(h)
                else:
                    h.unlink()
            except FsError as e:
                io.eprint(f"rm: {p}: {e.strerror}")
                code = 1
            except OSError as e:
                io.eprint(f"rm: {p}: {os.strerror(e.errno or errno.EIO)}")
                code = 1
        return code

    def c_touch(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        code = 0
        for p in (a for a in args if not a.startswith("-")):
            try:
                h = self._host(p, write=True)
                h.touch()
            except FsError as e:
                io.eprint(f"touch: '{p}': {e.strerror}")
                code = 1
            except OSError as e:
                io.eprint(f"touch: '{p}': {os.strerror(e.errno or errno.EIO)}")
                code = 1
        return code

    def c_chmod(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        return 0 if len(args) >= 2 else 1

    def c_cat(self, args: list[str], io: Io, stdin: Stdin | None) -> int:
        code = 0
        for p in args:
            try:
                h = self._host(p)
                if h.is_dir():
                    raise FsError(errno.EISDIR, p)
                data = h.read_bytes()
                io.out += data
                io.merged += data
            except FsError as e:
                io.eprint(f"cat: {p}: {e.strerror}")
                code = 1
            except FileNotFoundError:
                io.eprint(f"cat: {p}: No such file or directory")
                code = 1
            except OSError as e:
                io.eprint(f"cat: {p}: {os.strerror(e.errno or errno.EIO)}")
                code = 1
        return code

    def c_stat(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        fmt = None
        paths: list[str] = []
        it = iter(args)
        for a in it:
            if a == "-c":
                fmt = next(it, None)
            elif a.startswith("-c") and len(a) > 2:
                fmt = a[2:]
            elif a.startswith("--format="):
                fmt = a.split("=", 1)[1]
            else:
                paths.append(a)
        if not paths:
            io.eprint("stat: Needs 1 argument")
            return 1
        code = 0
        for p in paths:
            try:
                h = self._host(p)
                st = h.lstat()
            except FsError as e:
                io.eprint(f"stat: '{p}': {e.strerror}")
                code = 1
                continue
            except FileNotFoundError:
                io.eprint(f"stat: '{p}': No such file or directory")
                code = 1
                continue
            if fmt is None:
                io.print(f"  File: {p}\n  Size: {st.st_size}")
                continue
            kind = "directory" if stat_mod.S_ISDIR(st.st_mode) else "regular file"
            repl = {"s": str(st.st_size), "n": p, "Y": str(int(st.st_mtime)), "F": kind,
                    "a": format(st.st_mode & 0o7777, "o"), "%": "%"}
            out, i = [], 0
            while i < len(fmt):
                if fmt[i] == "%" and i + 1 < len(fmt):
                    out.append(repl.get(fmt[i + 1], "?"))
                    i += 2
                else:
                    out.append(fmt[i])
                    i += 1
            io.print("".join(out))
        return code

    def c_test(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        if len(args) == 1:
            return 0 if args[0] else 1
        if len(args) == 2 and args[0] in ("-e", "-f", "-d", "-s", "-r", "-w"):
            try:
                h = self._host(args[1], write=args[0] == "-w")
            except FsError:
                return 1
            checks = {"-e": h.exists, "-f": h.is_file, "-d": h.is_dir, "-r": h.exists,
                      "-w": h.exists, "-s": lambda: h.is_file() and h.stat().st_size > 0}
            return 0 if checks[args[0]]() else 1
        if len(args) == 2 and args[0] in ("-n", "-z"):
            return 0 if bool(args[1]) == (args[0] == "-n") else 1
        if len(args) == 3 and args[1] in ("=", "!="):
            return 0 if (args[0] == args[2]) == (args[1] == "=") else 1
        io.eprint("test: unknown condition")
        return 2

    def c_bracket(self, args: list[str], io: Io, s: Stdin | None) -> int:
        if not args or args[-1] != "]":
            io.eprint("[: missing ]")
            return 2
        return self.c_test(args[:-1], io, s)

    def c_df(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        limit = self.fs.storage_limit_bytes
        if limit is None:
            total, free = shutil.disk_usage(self.fs.root)[0], shutil.disk_usage(self.fs.root)[2]
        else:
            total, free = limit, self.fs.free_bytes() or 0
        used = total - free
        pct = int(round(100 * used / total)) if total else 0
        io.print("Filesystem      1K-blocks    Used Available Use% Mounted on")
        io.print(f"/dev/fuse       {total // 1024:>9} {used // 1024:>7} {free // 1024:>9} {pct:>3}% /storage/emulated")
        return 0

    # -- package manager / activity manager ----------------------------------------------

    def c_cmd(self, args: list[str], io: Io, stdin: Stdin | None) -> int:
        if args and args[0] == "package":
            return self.c_pm(args[1:], io, stdin)
        if args and args[0] == "activity":
            return self.c_am(args[1:], io, stdin)
        io.eprint(f"cmd: Can't find service: {args[0] if args else ''}")
        return 20

    def c_pm(self, args: list[str], io: Io, stdin: Stdin | None) -> int:
        sub, rest = (args[0], args[1:]) if args else ("", [])
        if sub == "list" and rest[:1] == ["packages"]:
            filt = next((a for a in rest[1:] if not a.startswith("-")), "")
            for p in self.pm.packages():
                if filt in p:
                    io.print(f"package:{p}")
            return 0
        if sub == "path" and rest:
            if self.pm.is_installed(rest[0]):
                io.print(f"package:/data/app/{rest[0]}/base.apk")
                return 0
            return 1
        if sub == "install":
            return self._pm_install(rest, io, stdin)
        if sub == "uninstall" and rest:
            answer = self.pm.uninstall([a for a in rest if not a.startswith("-")][-1])
            io.print(answer)
            return 0 if answer == "Success" else 1
        if sub == "clear" and rest:
            io.print("Success")
            return 0
        io.eprint(f"Unknown command: {sub}" if sub else "usage: pm [list|path|install|uninstall] ...")
        return 1 if sub else 255

    def _pm_install(self, rest: list[str], io: Io, stdin: Stdin | None) -> int:
        replace = False
        size: int | None = None
        files: list[str] = []
        it = iter(rest)
        for a in it:
            if a == "-r":
                replace = True
            elif a == "-S":
                try:
                    size = int(next(it, ""))
                except ValueError:
                    io.eprint("Error: -S requires a size")
                    return 1
            elif a in ("-i", "--user", "--install-location", "--abi"):
                next(it, None)
            elif a.startswith("-"):
                continue
            else:
                files.append(a)
        replace = True if size is not None else replace  # `adb install` streams with the flags it was given
        if size is not None and not files:
            if stdin is None:
                io.print("Failure [INSTALL_FAILED_MEDIA_UNAVAILABLE: no data received]")
                return 1
            data = bytearray()
            while len(data) < size:
                chunk = stdin(size - len(data))
                if not chunk:
                    break
                data += chunk
            if len(data) != size:
                io.print(f"Failure [INSTALL_FAILED_INTERNAL_ERROR: received {len(data)} of {size} bytes]")
                return 1
            answer = self.pm.install_bytes(bytes(data), replace=True)
        elif files:
            try:
                h = self._host(files[-1])
                if not h.is_file():
                    raise FsError(errno.ENOENT, files[-1])
            except FsError:
                io.eprint(f"Error: Can't open file: {files[-1]}")
                io.print("Exception occurred while executing 'install':")
                return 1
            answer = self.pm.install_file(h, replace=replace)
        else:
            io.eprint("Error: must either specify a package size or an APK file")
            return 1
        io.print(answer)
        return 0 if answer == "Success" else 1

    def c_am(self, args: list[str], io: Io, _s: Stdin | None) -> int:
        sub, rest = (args[0], args[1:]) if args else ("", [])
        if sub in ("start", "start-activity"):
            component = None
            extras: dict[str, str] = {}
            it = iter(rest)
            for a in it:
                if a == "-n":
                    component = next(it, None)
                elif a in ("--es", "-e"):
                    k, v = next(it, None), next(it, None)
                    if k is None or v is None:
                        io.eprint(f"Error: Argument expected after \"{a}\"")
                        return 1
                    extras[k] = v
                elif a in ("-a", "-d", "-t", "-c", "--user"):
                    next(it, None)
            if component is None:
                io.eprint("Error: No intent supplied")
                return 1
            out, err, code = self.am.start(component, extras)
            io.print(out, end="")
            if err:
                io.eprint(err.rstrip("\n"))
            return code
        if sub == "force-stop" and rest:
            self.am.force_stop(rest[-1])
            return 0
        io.eprint(f"Unknown command: {sub}" if sub else "usage: am [start|force-stop] ...")
        return 1


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def default_props(serial: str, model: str, name: str, device: str) -> dict[str, str]:
    props = dict(PROPS_DEFAULT)
    props.update({"ro.serialno": serial, "ro.product.model": model, "ro.product.name": name,
                  "ro.product.device": device,
                  "ro.build.fingerprint": f"liteship/{name}/{device}:14/UQ1A/1:user/release-keys"})
    return props


__all__ = ["Shell", "ShellSyntaxError", "tokenize", "parse", "default_props", "normalize"]
